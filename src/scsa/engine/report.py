"""Pieces of every task's comparison table: mean ± std over seeds and noise-aware verdicts.

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
Neurocomputing 2025, https://arxiv.org/abs/2407.05128 — compare attention blocks by one metric each
(top-1, mAP, mIoU); these helpers refuse to rank blocks whose differences are within the noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["format_mean_std", "markdown_table", "mean_std", "sampling_error", "verdicts"]


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample std (``None`` for a single value: the spread of one run is unknown)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def format_mean_std(mean: float, std: float | None, digits: int = 2) -> str:
    """``"97.20 ± 0.30"``, or ``"97.20"`` without a std."""
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def sampling_error(percent: float, n: int) -> float:
    """One binomial standard error (percentage points) of a proportion of ``percent`` % measured on
    ``n`` items: the least noise such a measurement has."""
    p = min(max(percent / 100.0, 0.0), 1.0)
    return 100.0 * math.sqrt(p * (1.0 - p) / max(int(n or 0), 1))


def verdicts(
    rows: Sequence[Mapping[str, Any]], key: str = "best_top1", n_key: str | None = "val_images"
) -> list[str]:
    """``"best"``, ``"tie"`` or ``"-x.xx"`` per row: is the gap to the best larger than the noise?

    Rows hold ``{key}_mean``, ``{key}_std`` and ``seeds``. A row's noise is its std over seeds, and at
    least the binomial standard error of a percentage measured on ``row[n_key]`` items (``n_key=None``
    for metrics that are not proportions, such as mAP). A gap counts only when it exceeds twice the
    combined noise of the two rows (about a 95% two-sided test for normal errors). With a single seed
    the spread between seeds is unknown (on small data larger than the sampling error), so no row is
    judged: every verdict is ``"n/a"``.
    """
    if any(row["seeds"] < 2 for row in rows):
        return ["n/a"] * len(rows)

    def noise(row: Mapping[str, Any]) -> float:
        floor = sampling_error(row[f"{key}_mean"], row.get(n_key, 0)) if n_key is not None else 0.0
        return max(row.get(f"{key}_std") or 0.0, floor)

    best = max(rows, key=lambda r: r[f"{key}_mean"])
    out = []
    for row in rows:
        gap = best[f"{key}_mean"] - row[f"{key}_mean"]
        if row is best:
            out.append("best")
        elif gap <= 2.0 * math.hypot(noise(row), noise(best)):
            out.append("tie")
        else:
            out.append(f"-{gap:.2f}")
    return out


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; the first column left-aligned, the others right-aligned (numbers)."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in cells) + " |" for cells in rows]
    return "\n".join(lines)
