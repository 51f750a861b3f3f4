"""A corrupt image stops a run with its name, unless --skip-bad-images leaves it out and counts it."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from scsa.cli import app
from scsa.tasks.classification import BadImageError, TrainConfig, train


@pytest.fixture
def corrupt_folder(image_folder):
    bad = image_folder / "train" / "class1" / "005.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage after a PNG signature")
    truncated = image_folder / "val" / "class2" / "099.jpg"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(truncated, quality=95)
    truncated.write_bytes(truncated.read_bytes()[:400])
    return image_folder, [bad, truncated]


def _cfg(data, out, **kw) -> TrainConfig:
    return TrainConfig(
        data=str(data),
        out_dir=str(out),
        overrides={"epochs": 1, "batch_size": 16, "image_size": 8},
        checkpoints="none",
        progress=False,
        **kw,
    )


def test_corrupt_image_stops_the_run_naming_the_file(corrupt_folder, tmp_path, make_net):
    data, _ = corrupt_folder
    with pytest.raises(BadImageError, match=r"cannot read image file '.*(class1/005\.png|class2/099\.jpg)'"):
        train(_cfg(data, tmp_path / "run"), model=make_net())


def test_skip_bad_images_leaves_them_out_and_counts_them(corrupt_folder, tmp_path, make_net):
    data, bad = corrupt_folder
    result = train(_cfg(data, tmp_path / "run", skip_bad_images=True), model=make_net())
    assert sorted(result.skipped_images) == sorted(str(p) for p in bad)
    assert result.history[-1]["val_images"] == 24  # 24 readable val images; the truncated one is left out
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["skipped_images"] == 2
    assert (tmp_path / "run" / "skipped_images.txt").read_text().split() == sorted(str(p) for p in bad)


def test_cli_reports_the_bad_file(corrupt_folder, tmp_path):
    data, _ = corrupt_folder
    args = ["train", "-d", str(data), "-o", str(tmp_path / "cli"), "--epochs", "1", "--image-size", "8"]
    res = CliRunner().invoke(app, [*args, "--batch-size", "16", "--attention", "none", "--no-progress"])
    assert res.exit_code == 2, res.output
    assert "cannot read image file" in res.output and "--skip-bad-images" in res.output
