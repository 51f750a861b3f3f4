"""PNG figures of the engine: training curves, confusion matrix, accuracy vs throughput.

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
Neurocomputing 2025, https://arxiv.org/abs/2407.05128 — plot accuracy against speed per attention block.

Figures are built with ``matplotlib.figure.Figure`` and never through ``pyplot``: no GUI backend, no
global figure state, safe in worker processes and on headless machines (the Agg canvas renders PNGs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scsa.engine.io import atomic_write

__all__ = ["plot_compare", "plot_confusion", "plot_curves"]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig, path: str | Path) -> Path:
    return atomic_write(path, lambda f: fig.savefig(f, format="png"))


def plot_curves(history: Sequence[Mapping[str, float]], path: str | Path, title: str = "") -> Path:
    """Loss (left) and top-1 accuracy (right) per epoch, train and val."""
    fig = _figure(10, 4)
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in history]
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        points = [(r["epoch"], r[key]) for r in history if key in r]
        if points:
            ax_loss.plot(*zip(*points), marker="o", label=label)
    for key, label in (("train_top1", "train top-1"), ("val_top1", "val top-1"), ("val_top5", "val top-5")):
        points = [(r["epoch"], r[key]) for r in history if key in r]
        if points:
            ax_acc.plot(*zip(*points), marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        if epochs:
            ax.set_xticks(sorted(set(epochs)))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_confusion(confusion: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path) -> Path:
    """Row-normalised confusion matrix (rows: true class, columns: predicted), counts in the cells."""
    import numpy as np

    counts = np.asarray(confusion, dtype=np.int64)
    n = len(classes)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = min(4 + 0.45 * n, 30)
    fig = _figure(size + 1, size)
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    if n <= 40:  # beyond that, tick labels and numbers are unreadable anyway
        ax.set_xticks(range(n), labels=list(classes), rotation=90)
        ax.set_yticks(range(n), labels=list(classes))
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    color = "white" if rates[i, j] > 0.5 else "black"
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set(xlabel="predicted", ylabel="true", title=f"confusion matrix ({int(counts.sum())} images)")
    return _save(fig, path)


def plot_compare(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    """Best val top-1 against eval throughput, one point per block.

    Error bars: the std over seeds; with one seed, ±1 standard error of an accuracy measured on
    ``val_images`` images (the least noise there is), so that the plot does not suggest a ranking.
    """
    fig = _figure(7, 5)
    ax = fig.subplots()
    one_seed = any(row["seeds"] < 2 for row in rows)
    for row in rows:
        x, y = row["throughput"], row["best_top1_mean"]
        if one_seed:
            p = min(max(y / 100.0, 0.0), 1.0)
            err = 100.0 * math.sqrt(p * (1.0 - p) / max(row["val_images"], 1))
        else:
            err = row["best_top1_std"] or 0.0
        ax.errorbar([x], [y], yerr=[err], fmt="o", capsize=4, label=row["attention"])
        ax.annotate(row["attention"], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=9)
    bars = "±1 sampling s.e. (one seed)" if one_seed else f"std over {rows[0]['seeds']} seeds"
    ax.set(
        xlabel="eval throughput (images/s)",
        ylabel=f"best val top-1 (%), error bars: {bars}",
        title=title or "accuracy vs speed",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)
