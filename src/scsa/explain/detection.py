"""Eigen-CAM of detectors (``scsa detect train`` checkpoints, torchvision detectors on our backbones).

Gradient-free, as pytorch-grad-cam's Faster R-CNN tutorial does it: the first principal component of
the backbone+FPN activations, every FPN level upsampled to the coarsest one's grid... here to the
finest, so small objects keep their detail, and concatenated along the channels.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scsa.explain._model import ImageLike, load_image

__all__ = ["detection_cam", "explain_detection", "fpn_reshape"]

DETECTION_METHODS = ("eigencam", "kpcacam")


def fpn_reshape(features: Mapping[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """FPN outputs (a dict of levels) -> one (B, levels·C, H, W) map at the finest level's size."""
    if isinstance(features, torch.Tensor):
        return features
    levels = list(features.values())
    size = levels[0].shape[-2:]
    return torch.cat(
        [F.interpolate(v.abs(), size=size, mode="bilinear", align_corners=False) for v in levels], 1
    )


def detection_cam(
    detector: nn.Module | str | Path, image: ImageLike, method: str = "eigencam", layer: str = "backbone"
) -> np.ndarray:
    """The (H, W) map in [0, 1] of ``method`` (``eigencam`` or ``kpcacam``) at ``layer`` of a detector.

    ``detector``: a torchvision detector module or a ``scsa detect train`` checkpoint path. ``layer``:
    ``"backbone"`` (the backbone with its FPN, the default) or any module path (``"backbone.body"``)."""
    from scsa.explain.gradcam import cam_method

    if method.lower() not in DETECTION_METHODS:
        raise ValueError(
            f"detection maps are gradient-free: method must be one of {DETECTION_METHODS}, got {method!r}"
        )
    if isinstance(detector, (str, Path)):
        from scsa.explain._checkpoints import load_detector

        detector, _ = load_detector(detector)
    detector.eval()
    modules = dict(detector.named_modules())
    if layer not in modules:
        raise ValueError(f"the detector has no module {layer!r}")
    img = load_image(image)
    device = next(detector.parameters()).device
    x = (img.float() / 255.0)[None].to(device)  # the detector's transform normalises and resizes
    cls = cam_method(method)
    with cls(model=detector, target_layers=[modules[layer]], reshape_transform=fpn_reshape) as cam:
        # gradient-free: the target is never called, but the library asks for one per image
        heat = cam(input_tensor=x, targets=[lambda _out: 0])
    return np.nan_to_num(np.asarray(heat[0], dtype=np.float32), nan=0.0)


def explain_detection(
    detector: nn.Module,
    image: ImageLike,
    name: str,
    classes: list[str] | None = None,
    method: str = "eigencam",
    layer: str = "backbone",
):
    """A :class:`scsa.explain.CamResult` for a detector: the map, and its best box's class and score."""
    from scsa.explain.gradcam import CamResult

    img = load_image(image)
    heat = detection_cam(detector, img, method, layer)
    with torch.no_grad():
        det = detector([(img.float() / 255.0).to(next(detector.parameters()).device)])[0]
    if len(det["scores"]):
        label, score = int(det["labels"][0]), float(det["scores"][0])
        cname = classes[label - 1] if classes and 0 < label <= len(classes) else str(label)
    else:
        cname, score, label = "no box", 0.0, -1
    return CamResult(heat, img.permute(1, 2, 0).numpy(), label, cname, score, name, method.lower(), layer)
