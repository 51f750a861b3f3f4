"""The pictures of :mod:`scsa.explain`: matplotlib ``Figure`` objects drawn with the Agg canvas.

Never ``pyplot`` (no global state, no GUI backend, safe in threads and on servers); the bundled
DejaVu font only, so nothing is ever fetched.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from scsa.explain.erf import ErfResult
from scsa.explain.gradcam import CamResult

__all__ = ["cam_figure", "erf_figure", "feature_maps_figure", "maps_figure", "overlay", "save_figure"]


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 80) -> Path:
    """Write ``fig`` as a PNG, atomically."""
    from scsa.io import atomic_write

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """``image`` (H, W, 3) uint8 blended with ``heat`` (H, W) in [0, 1] through ``cmap``: float (H, W, 3)."""
    from matplotlib import colormaps

    colours = colormaps[cmap](np.clip(heat, 0.0, 1.0))[..., :3]
    return (1.0 - alpha) * image.astype(np.float64) / 255.0 + alpha * colours


def cam_figure(results: Sequence[Sequence[CamResult]], title: str = "") -> Figure:
    """Rows = images, columns = models; each panel titled with model, class and score."""
    rows, cols = len(results), max(len(r) for r in results)
    fig = _figure(2.2 * cols, 2.3 * rows + (0.3 if title else 0))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, row in enumerate(results):
        for j, r in enumerate(row):
            ax = axes[i][j]
            ax.imshow(overlay(r.image, r.cam))
            ax.set_title(f"{r.model_name}\nclass {r.class_name} ({r.score:.2f})", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def erf_figure(results: Sequence[ErfResult], title: str = "") -> Figure:
    """Rows = models, columns = stages: ``log10(1 + ERF)`` heat maps, one colour scale per stage."""
    stages = list(results[0].maps)
    fig = _figure(2.3 * len(stages), 2.3 * len(results) + (0.3 if title else 0))
    axes = fig.subplots(len(results), len(stages), squeeze=False)
    for j, s in enumerate(stages):
        vmax = max(float(r.log_map(s).max()) for r in results if s in r.maps) or 1.0
        for i, r in enumerate(results):
            ax = axes[i][j]
            im = ax.imshow(r.log_map(s), cmap="RdYlGn_r", vmin=0.0, vmax=vmax)
            r50 = r.ratios.get(s, {}).get(0.5)
            extra = f", r50 {r50[1]:.2f}" if r50 else ""
            ax.set_title(f"{r.model_name}\n{r.stage_names[s]}{extra}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=axes[:, j].tolist(), shrink=0.7, location="bottom")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def maps_figure(
    image: np.ndarray,
    records: Mapping[str, Mapping[str, torch.Tensor]],
    title: str = "",
    max_channels: int = 64,
) -> Figure:
    """One row per block: its spatial gate ``a_h ⊗ a_w`` (channel mean) over the image, its channel
    gate as bars (the first ``max_channels`` channels), and the C×C attention where recorded."""
    names = list(records)
    has_attn = any("attention" in records[n] for n in names)
    cols = 2 + int(has_attn)
    fig = _figure(2.6 * cols, 1.9 * len(names) + (0.3 if title else 0))
    axes = fig.subplots(len(names), cols, squeeze=False)
    h, w = image.shape[:2]
    for i, name in enumerate(names):
        rec = records[name]
        ax = axes[i][0]
        if "spatial" in rec:
            sp = rec["spatial"][:1, None].float()  # (1, 1, h', w')
            sp = F.interpolate(sp, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
            lo, hi = float(sp.min()), float(sp.max())
            ax.imshow(overlay(image, (sp - lo) / (hi - lo) if hi > lo else np.zeros_like(sp)))
            ax.set_title(f"{name}: a_h⊗a_w [{lo:.2f}, {hi:.2f}]", fontsize=7)
        else:
            ax.imshow(image)
            ax.set_title(f"{name}: no spatial gate", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        ax = axes[i][1]
        if "channel_gate" in rec:
            g = rec["channel_gate"][0].flatten().float().numpy()
            k = min(len(g), max_channels)
            ax.bar(np.arange(k), g[:k], width=1.0, color="tab:blue")
            ax.set_ylim(0, max(1e-6, float(g.max()) * 1.05))
            ax.set_title(f"channel gate (first {k} of {len(g)})", fontsize=7)
            ax.tick_params(labelsize=6)
        else:
            ax.axis("off")
        if has_attn:
            ax = axes[i][2]
            if "attention" in rec:
                a = rec["attention"][0, 0].float().numpy()
                ax.imshow(a, cmap="viridis")
                ax.set_title(f"C×C attention, head 0 ({a.shape[0]}×{a.shape[1]})", fontsize=7)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def feature_maps_figure(
    images: np.ndarray,
    fmaps: Sequence[np.ndarray],
    names: Sequence[str],
    rows: Sequence[Mapping[str, object]] | None = None,
) -> Figure:
    """First row the images (N, H, W, 3), then one row per model: its channel-mean maps (N, H, W)."""
    n = len(images)
    fig = _figure(1.5 * n + 0.4, 1.5 * (1 + len(fmaps)))
    axes = fig.subplots(1 + len(fmaps), n, squeeze=False)
    for j in range(n):
        axes[0][j].imshow(images[j])
        for i, fm in enumerate(fmaps):
            axes[i + 1][j].imshow(fm[j], cmap="gray", vmin=0.0, vmax=1.0)
    axes[0][0].set_title("input", fontsize=8, loc="left")
    for i, name in enumerate(names):
        extra = f", SSIM {rows[i]['ssim']:.3f}" if rows and "ssim" in rows[i] else ""
        axes[i + 1][0].set_title(f"{name}{extra}", fontsize=8, loc="left")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig
