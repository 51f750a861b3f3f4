"""Eigen-CAM of a detector's backbone + FPN, from a module and from a detection checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("scsa.tasks.detection")
pytestmark = pytest.mark.slow

SPEC = {"detector": "fasterrcnn", "backbone": "resnet18", "attention": "scsa", "min_size": 64, "max_size": 64}


def _checkpoint(tmp_path):
    from scsa.tasks.detection.model import build_detector

    torch.manual_seed(0)
    model = build_detector(**SPEC, num_classes=3, norm_layer="bn").eval()
    path = tmp_path / "det.ckpt"
    info = {"task": "detect", "model": {**SPEC, "norm_layer": "bn"}, "classes": ["a", "b"]}
    torch.save({"scsa": info, "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)
    return model, path


def test_eigencam_of_a_detector_follows_the_object(tmp_path):
    import scsa.explain as E

    model, path = _checkpoint(tmp_path)
    image = torch.zeros(3, 64, 64, dtype=torch.uint8)
    image[:, 6:30, 6:30] = 255
    cam = E.detection_cam(model, image)
    assert cam.shape == (64, 64) and cam.std() > 0.01
    assert np.allclose(E.detection_cam(path, image), cam, atol=1e-4)
    with pytest.raises(ValueError, match="gradient-free"):
        E.detection_cam(model, image, method="gradcam")

    from scsa.cli import app

    Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / "square.png")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["explain", "cam", "-c", str(path), str(tmp_path / "square.png"), "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert (out / "cam_eigencam.png").stat().st_size > 1000 and "fasterrcnn resnet18+scsa" in res.output
