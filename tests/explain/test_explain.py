"""Grad-CAM, ERF, SSIM and the `scsa explain` commands on two briefly trained mnist5k models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

import scsa.explain as E
from scsa.data import load_mnist5k

from .conftest import IMAGE_SIZE

pytestmark = pytest.mark.slow

CANVAS = 64  # a 16-pixel digit in one corner of a 64×64 blank canvas: 1/16 of the area
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _digits(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    _, _, vx, vy = load_mnist5k()
    small = F.interpolate(vx[:n].float(), size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True)
    return small.round().clamp(0, 255).to(torch.uint8), vy[:n]


def _on_canvas(digit: torch.Tensor, corner: int) -> tuple[torch.Tensor, np.ndarray]:
    canvas = torch.zeros(3, CANVAS, CANVAS, dtype=torch.uint8)
    r = 0 if corner in (0, 1) else CANVAS - IMAGE_SIZE
    c = 0 if corner in (0, 2) else CANVAS - IMAGE_SIZE
    canvas[:, r : r + IMAGE_SIZE, c : c + IMAGE_SIZE] = digit
    box = np.zeros((CANVAS, CANVAS), dtype=bool)
    box[r : r + IMAGE_SIZE, c : c + IMAGE_SIZE] = True
    return canvas, box


@pytest.mark.parametrize("attention", ["scsa", "none"])
def test_gradcam_points_at_a_digit_in_a_corner_of_a_blank_canvas(checkpoints, attention):
    model = E.resolve(checkpoints[attention])
    digits, labels = _digits(8)
    hits, ratios = 0, []
    for i in range(len(digits)):
        image, box = _on_canvas(digits[i], i % 4)
        cam = E.gradcam(model, image, target=int(labels[i]))  # default layer: the last stage
        assert cam.shape == (CANVAS, CANVAS) and cam.dtype == np.float32
        hits += bool(box[np.unravel_index(cam.argmax(), cam.shape)])  # the pointing game
        ratios.append(cam[box].mean() / max(cam[~box].mean(), 1e-12))  # mass per pixel, in / out
    assert hits >= 0.75 * len(digits), f"{attention}: the peak fell inside the box for {hits}/{len(digits)}"
    assert np.median(ratios) > 2.0, (
        f"{attention}: Grad-CAM mass per pixel inside/outside {np.round(ratios, 2)}"
    )


def test_gradcam_inputs_methods_and_layers(checkpoints, tmp_path):
    digit = _digits(1)[0][0]
    path = tmp_path / "d.png"
    Image.fromarray(digit.permute(1, 2, 0).numpy()).save(path)
    base = E.resolve(checkpoints["none"])
    a = E.gradcam(checkpoints["none"], path)  # a checkpoint path works too
    b = E.gradcam(base, Image.open(path))
    c = E.gradcam(base, digit.float() / 255)
    assert a.shape == (IMAGE_SIZE, IMAGE_SIZE) and np.allclose(a, b) and np.allclose(a, c, atol=1e-4)
    model = E.resolve(checkpoints["scsa"])
    for method in ("gradcam++", "eigencam", "layercam"):
        cam = E.gradcam(model, digit, method=method, layer="layer3")
        assert cam.shape == (IMAGE_SIZE, IMAGE_SIZE) and 0.0 <= cam.min() <= cam.max() <= 1.0
    with pytest.raises(ValueError, match="unknown CAM method 'nope'"):
        E.gradcam(model, digit, method="nope")
    with pytest.raises(ValueError, match="stage 9 does not exist"):
        E.gradcam(model, digit, layer=9)
    with pytest.raises(ValueError, match="does not exist"):
        E.gradcam(model, tmp_path / "missing.png")
    with pytest.raises(ValueError, match="target class 10 does not exist"):
        E.gradcam(model, digit, target=10)
    result = E.explain_image(model, digit)
    assert result.score == pytest.approx(E.explain_image(model, digit, target=result.target).score, abs=1e-6)


def test_erf_of_stage_4_is_wider_than_of_stage_2(checkpoints):
    for attention in ("none", "scsa"):
        r = E.erf(checkpoints[attention], "mnist5k", stages=(2, 4), n=8, size=48)
        assert r.maps[2].shape == (48, 48) and r.images == 8
        for t in (0.2, 0.5):
            assert r.ratios[4][t][1] > r.ratios[2][t][1], (attention, r.ratios)
    rows = E.erf_table([r])
    assert [row["layer"] for row in rows] == ["layer2", "layer4"] and {"r20", "r30", "r50", "r99"} <= set(
        rows[0]
    )


def test_erf_ratios_of_known_maps():
    point = np.zeros((9, 9))
    point[4, 4] = 1.0
    assert E.erf_ratios(point)[0.99] == (1, 1 / 9)
    flat = np.ones((9, 9))
    assert E.erf_ratios(flat, (0.5, 1.0)) == {0.5: (7, 7 / 9), 1.0: (9, 1.0)}


def test_ssim_table(checkpoints):
    rows = E.ssim_table([checkpoints["scsa"], checkpoints["none"]], "mnist5k", stage=1, n=32)
    assert [r["model"] for r in rows] == ["resnet18+scsa", "resnet18 (baseline)"]
    assert all(r["layer"] == "layer1" and r["images"] == 32 and -1.0 <= r["ssim"] <= 1.0 for r in rows)
    images = E.load_images("mnist5k", 4)
    assert E.ssim(checkpoints["none"], images, stage=1) == pytest.approx(
        E.ssim(checkpoints["none"], images, stage=1)
    )


def _png_ok(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000, path
    pixels = np.asarray(Image.open(path).convert("RGB"))
    assert pixels.std() > 1.0, f"{path} is a constant image"


def _tables_ok(out, stem, n_rows) -> list[dict]:
    rows = json.loads((out / f"{stem}.json").read_text())
    assert len(rows) == n_rows
    lines = (out / f"{stem}.csv").read_text().strip().splitlines()
    assert len(lines) == n_rows + 1 and lines[0].split(",")[0] == next(iter(rows[0]))
    return rows


def test_every_command_writes_pictures_and_tables(checkpoints, tmp_path):
    from scsa.cli import app

    digits, _ = _digits(2)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        image, _ = _on_canvas(digits[i], i)
        Image.fromarray(image[:, :32, :32].permute(1, 2, 0).numpy()).save(folder / f"d{i}.png")
    a, b = str(checkpoints["scsa"]), str(checkpoints["none"])
    run = CliRunner().invoke
    out = tmp_path / "out"

    res = run(app, ["explain", "cam", "-c", a, "-c", b, str(folder), "-o", str(out), "--method", "gradcam++"])
    assert res.exit_code == 0, res.output
    _png_ok(out / "cam_gradcam++.png")
    rows = _tables_ok(out, "cam", 4)
    assert {r["model"] for r in rows} == {"resnet18+scsa", "resnet18 (baseline)"}

    res = run(
        app,
        ["explain", "erf", "-c", a, "-c", b, "-n", "4", "--stages", "2,4", "--size", "32", "-o", str(out)],
    )
    assert res.exit_code == 0, res.output
    _png_ok(out / "erf.png")
    _tables_ok(out, "erf", 4)

    res = run(app, ["explain", "maps", "-c", a, str(folder / "d0.png"), "-o", str(out), "--attention"])
    assert res.exit_code == 0, res.output
    _png_ok(out / "maps_d0.png")
    rows = _tables_ok(out, "maps", 8)
    assert rows[0]["block"] == "layer1.0.attn" and 0 < rows[0]["gate_min"] <= rows[0]["gate_max"] < 1

    res = run(app, ["explain", "ssim", "-c", a, "-c", b, "-n", "16", "--stage", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    _png_ok(out / "ssim.png")
    _tables_ok(out, "ssim", 2)

    res = run(app, ["explain", "maps", "-c", b, str(folder / "d0.png"), "-o", str(out)])
    assert res.exit_code == 2 and "no SCSA" in res.output
