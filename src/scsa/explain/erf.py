"""Effective receptive fields (ERF) as in RepLKNet (Ding et al., https://arxiv.org/abs/2203.06717).

For each image, the gradient of the centre pixel of a stage's output (summed over channels) with
respect to the input; its absolute value is summed over the colour channels and the images. Shown as
``log10(1 + x)``; summarised by RepLKNet's scalar: the side of the smallest centred square holding
``t`` % of the (log-scaled, max-normalised, as in RepLKNet's ``analyze_erf.py``) contribution,
relative to the image side. Si et al. (https://arxiv.org/abs/2407.05128) compare ResNet-50 with and
without SCSA this way at ``layer2``-``layer4``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from scsa.explain._data import load_images
from scsa.explain._model import ImageLike, ModelLike, resolve, stage_module, stage_outputs

__all__ = ["ERF_THRESHOLDS", "ErfResult", "erf", "erf_ratios", "erf_table"]

ERF_THRESHOLDS = (0.2, 0.3, 0.5, 0.99)


@dataclass
class ErfResult:
    """``maps[stage]``: (H, W) float64, the summed absolute input gradient of that stage's centre."""

    model_name: str
    maps: dict[int, np.ndarray]
    stage_names: dict[int, str]
    images: int
    size: tuple[int, int]
    ratios: dict[int, dict[float, tuple[int, float]]] = field(default_factory=dict)

    def log_map(self, stage: int) -> np.ndarray:
        """``log10(1 + x)`` of the stage's map, what the heat maps show."""
        return np.log10(1.0 + self.maps[stage])


def erf(
    model: ModelLike,
    images: str | Path | torch.Tensor | Sequence[ImageLike],
    stages: Sequence[int] = (2, 3, 4),
    n: int = 300,
    size: int | None = None,
    batch_size: int = 16,
    split: str = "val",
) -> ErfResult:
    """The ERF of ``stages`` of ``model`` over the first ``n`` of ``images``.

    ``images``: ``"mnist5k"``, a folder, a (N, C, H, W) tensor or a list of images (see
    :func:`scsa.explain.load_images`); ``size`` resizes them (square) first: RepLKNet uses inputs
    much larger than the stages' receptive fields (1024 px for ImageNet models). The images of a
    batch are independent in eval mode (BatchNorm uses its running statistics), so one backward of
    the batch's summed centre pixels gives every image's gradient at once."""
    if not stages:
        raise ValueError("stages must name at least one stage")
    ex = resolve(model)
    batch = load_images(images, n, split=split, size=size)
    device = next(ex.model.parameters()).device
    h, w = batch.shape[-2:]
    maps = {s: np.zeros((h, w), dtype=np.float64) for s in stages}
    names = {s: stage_module(ex.model, s)[0] for s in stages}
    for start in range(0, len(batch), batch_size):
        x = ex.normalize(batch[start : start + batch_size].to(device)).requires_grad_(True)
        for s in stages:  # one stage at a time: forward_intermediates stops early at it
            (out,) = stage_outputs(ex.model, x, [s])
            centre = out[:, :, out.shape[2] // 2, out.shape[3] // 2].sum()
            (grad,) = torch.autograd.grad(centre, x)
            maps[s] += grad.abs().sum(dim=(0, 1)).double().cpu().numpy()
    result = ErfResult(ex.name, maps, names, len(batch), (int(h), int(w)))
    result.ratios = {s: erf_ratios(result.log_map(s)) for s in stages}
    return result


def erf_ratios(
    log_map: np.ndarray, thresholds: Sequence[float] = ERF_THRESHOLDS
) -> dict[float, tuple[int, float]]:
    """``t -> (side, side / image side)`` of the smallest centred square holding ``t`` of the map's sum.

    RepLKNet's measure: the map is normalised by its maximum first; the square grows from the centre
    pixel by one pixel on each side (odd sides) and is the whole image when nothing smaller holds
    ``t``. The side ratio is relative to the shorter image side."""
    data = np.asarray(log_map, dtype=np.float64)
    peak = data.max()
    h, w = data.shape
    total = data.sum()
    out: dict[float, tuple[int, float]] = {}
    for t in thresholds:
        if not 0.0 < t <= 1.0:
            raise ValueError(f"every threshold must be in (0, 1], got {t}")
        side = min(h, w)
        if peak > 0 and total > 0:
            d = data / peak
            total_n = d.sum()
            for i in range(0, min(h, w) // 2 + 1):
                area = d[max(0, h // 2 - i) : h // 2 + 1 + i, max(0, w // 2 - i) : w // 2 + 1 + i].sum()
                if area / total_n >= t:
                    side = min(2 * i + 1, min(h, w))
                    break
        out[t] = (side, side / min(h, w))
    return out


def erf_table(results: Sequence[ErfResult]) -> list[dict[str, object]]:
    """One row per model and stage: the side ratio for every threshold (``r20``, ``r30``, ...)."""
    rows: list[dict[str, object]] = []
    for r in results:
        for s, ratios in r.ratios.items():
            row: dict[str, object] = {
                "model": r.model_name,
                "stage": s,
                "layer": r.stage_names[s],
                "images": r.images,
                "size": f"{r.size[0]}x{r.size[1]}",
            }
            for t, (_, ratio) in ratios.items():
                row[f"r{round(t * 100)}"] = round(ratio, 4)
            rows.append(row)
    return rows
