"""SSIM between an image and a stage's feature map: how much spatial structure the stage keeps.

Si et al. (https://arxiv.org/abs/2407.05128) average, over a data set, the SSIM between the input
and the channel mean of a stage's output upsampled to the image (their claim: SCSA keeps more of
the image's structure). Both are grey maps min-max scaled to [0, 1] per image; the SSIM is
torchmetrics' ``StructuralSimilarityIndexMeasure`` (Gaussian 11×11 window, data range 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from scsa.explain._data import load_images
from scsa.explain._model import ImageLike, ModelLike, resolve, stage_module, stage_outputs

__all__ = ["feature_map", "ssim", "ssim_table"]


def _unit(t: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) min-max scaled to [0, 1] per image (a constant image becomes 0)."""
    lo = t.amin(dim=(1, 2, 3), keepdim=True)
    hi = t.amax(dim=(1, 2, 3), keepdim=True)
    return (t - lo) / (hi - lo).clamp_min(1e-12)


def feature_map(model: ModelLike, images: torch.Tensor, stage: int = 1) -> torch.Tensor:
    """The stage's channel-mean feature map upsampled (bilinear) to the images, in [0, 1]: (B, 1, H, W).

    ``images``: ``uint8`` (B, 3, H, W)."""
    ex = resolve(model)
    device = next(ex.model.parameters()).device
    with torch.no_grad():
        (out,) = stage_outputs(ex.model, ex.normalize(images.to(device)), [stage])
    fmap = out.float().mean(dim=1, keepdim=True)
    fmap = F.interpolate(fmap, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return _unit(fmap).cpu()


def ssim(
    model: ModelLike,
    data: str | Path | torch.Tensor | Sequence[ImageLike],
    stage: int = 1,
    n: int | None = None,
    split: str = "val",
    size: int | None = None,
    batch_size: int = 64,
) -> float:
    """Mean SSIM between the (grey) input images and stage ``stage``'s upsampled channel-mean map."""
    from torchmetrics.image import StructuralSimilarityIndexMeasure

    ex = resolve(model)
    batch = load_images(data, n, split=split, size=size)
    metric = StructuralSimilarityIndexMeasure(data_range=1.0)
    for start in range(0, len(batch), batch_size):
        imgs = batch[start : start + batch_size]
        grey = _unit(imgs.float().mean(dim=1, keepdim=True))
        metric.update(feature_map(ex, imgs, stage), grey)
    return float(metric.compute())


def ssim_table(
    models: Sequence[ModelLike],
    data: str | Path | torch.Tensor | Sequence[ImageLike],
    stage: int = 1,
    n: int | None = None,
    split: str = "val",
    size: int | None = None,
) -> list[dict[str, object]]:
    """One row per model: ``model``, ``stage``, ``layer``, ``images``, ``ssim``."""
    batch = load_images(data, n, split=split, size=size)
    rows: list[dict[str, object]] = []
    for m in models:
        ex = resolve(m)
        rows.append(
            {
                "model": ex.name,
                "stage": stage,
                "layer": stage_module(ex.model, stage)[0],
                "images": len(batch),
                "ssim": round(ssim(ex, batch, stage), 4),
            }
        )
    return rows
