"""PNG figures every task uses: training curves, confusion matrix, metric vs speed (one point per block).

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
Neurocomputing 2025, https://arxiv.org/abs/2407.05128 — plot accuracy against speed per attention block.

Figures are built with ``matplotlib.figure.Figure`` and never through ``pyplot``: no GUI backend, no
global figure state, safe in worker processes and on headless machines (the Agg canvas renders PNGs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scsa.engine.report import sampling_error
from scsa.io import atomic_write

__all__ = ["curve_keys", "plot_confusion", "plot_curves", "plot_tradeoff"]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig, path: str | Path) -> Path:
    return atomic_write(path, lambda f: fig.savefig(f, format="png"))


_BOOKKEEPING = ("epoch", "step", "lr", "epoch_time_s")


def curve_keys(history: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """``(losses, others)``: the rows' float keys (ints are counts, such as ``val_images``), bookkeeping
    (epoch, step, lr, time) left out; a key with ``loss`` in its name is a loss."""
    keys: list[str] = []
    for row in history:
        for key, value in row.items():
            is_float = isinstance(value, float) and not isinstance(value, bool)
            if is_float and key not in _BOOKKEEPING and key not in keys:
                keys.append(key)
    losses = [k for k in keys if "loss" in k]
    return losses, [k for k in keys if k not in losses]


def plot_curves(history: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    """Every float metric of the rows against the epoch: losses on the left panel, the other metrics
    (accuracy, mAP, mIoU...) on the right. With several validations per epoch, against the step."""
    fig = _figure(10, 4)
    ax_loss, ax_metric = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in history]
    x_key = "epoch" if len(set(epochs)) == len(epochs) or "step" not in history[0] else "step"
    losses, others = curve_keys(history)
    for ax, keys in ((ax_loss, losses), (ax_metric, others)):
        for key in keys:
            points = [(r[x_key], r[key]) for r in history if isinstance(r.get(key), (int, float))]
            if points:
                ax.plot(*zip(*points), marker="o", label=key)
    ax_loss.set(xlabel=x_key, ylabel="loss", title="losses")
    ax_metric.set(xlabel=x_key, ylabel="value", title="metrics")
    for ax, keys in ((ax_loss, losses), (ax_metric, others)):
        if x_key == "epoch" and epochs:
            ax.set_xticks(sorted(set(epochs)))
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=8)
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


def plot_tradeoff(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    x: str,
    y: str,
    label: str,
    y_std: str | None = None,
    n_key: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str = "",
) -> Path:
    """One point per row: ``y`` (a percentage) against ``x``, labelled by ``row[label]``.

    Error bars: ``row[y_std]`` (the std over seeds) when every row has more than one seed; otherwise
    ±1 standard error of a proportion measured on ``row[n_key]`` items (the least noise there is), so
    that the plot does not suggest a ranking. Without ``n_key`` and seeds, no error bars.
    """
    fig = _figure(7, 5)
    ax = fig.subplots()
    one_seed = any(row.get("seeds", 1) < 2 for row in rows)
    for row in rows:
        px, py = row[x], row[y]
        if not one_seed and y_std is not None:
            err, bars = row.get(y_std) or 0.0, f"std over {rows[0]['seeds']} seeds"
        elif n_key is not None:
            err, bars = sampling_error(py, row.get(n_key, 0)), "±1 sampling s.e. (one seed)"
        else:
            err, bars = 0.0, ""
        ax.errorbar([px], [py], yerr=[err], fmt="o", capsize=4, label=row[label])
        ax.annotate(str(row[label]), (px, py), textcoords="offset points", xytext=(6, 4), fontsize=9)
    ylabel = ylabel or y
    if rows and bars:
        ylabel += f", error bars: {bars}"
    ax.set(xlabel=xlabel or x, ylabel=ylabel, title=title or f"{y} vs {x}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)
