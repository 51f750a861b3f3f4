"""The comparison report: the markdown table and the noise-aware verdicts of ``scsa compare``.

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
Neurocomputing 2025, https://arxiv.org/abs/2407.05128 — report each block's accuracy with its
parameters, FLOPs and throughput; this module lays out such a table for our runs, and refuses to rank
blocks whose differences are within the noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from scsa.engine.report import format_mean_std
from scsa.engine.report import verdicts as _verdicts

__all__ = ["METRICS", "format_report", "format_table", "verdicts"]

METRICS = ("best_top1", "final_top1", "best_top5", "final_top5")


def verdicts(rows: Sequence[Mapping[str, Any]], key: str = "best_top1") -> list[str]:
    """The engine's noise-aware verdicts (:func:`scsa.engine.report.verdicts`) on top-1, whose sampling
    error is that of an accuracy on ``val_images`` images."""
    return _verdicts(rows, key, n_key="val_images")


def _fmt(row: Mapping[str, Any], name: str) -> str:
    return format_mean_std(row[f"{name}_mean"], row[f"{name}_std"])


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The comparison as a markdown table (one row per attention)."""
    base = next((r for r in rows if r["attention"] == "none"), None)
    head = [
        "attention",
        "params (M)",
        "Δparams (K)",
        "MACs (M)",
        "img/s",
        "best top-1 (%)",
        "final top-1 (%)",
        "best top-5 (%)",
        "final top-5 (%)",
        "time (s)",
        "vs best top-1",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for row, verdict in zip(rows, verdicts(rows)):
        delta = f"{(row['params'] - base['params']) / 1e3:+.1f}" if base else "-"
        cells = [
            row["attention"],
            f"{row['params'] / 1e6:.3f}",
            delta,
            f"{row['macs'] / 1e6:.1f}",
            f"{row['throughput']:.0f}",
            *(_fmt(row, name) for name in METRICS),
            f"{row['wall_time_s']:.0f}",
            verdict,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_report(
    rows: Sequence[Mapping[str, Any]], setup: Mapping[str, Any], seeds: int, quick: bool
) -> str:
    """``compare.md``: the setup line, the table, and what the noise allows one to read from it."""
    if seeds == 1:
        noise = (
            "One seed per block: the spread between seeds is unknown, so the table judges no block "
            "(`vs best` is n/a). Do not rank blocks from it; rerun with `--seeds 3` (or more), ideally "
            "with more data and epochs, to get mean ± std and tie/gap verdicts."
        )
    else:
        noise = (
            f"{seeds} seeds per block: accuracies are mean ± std over seeds. A block is a *tie* with the "
            "best unless its gap is larger than twice the combined noise (std over seeds, at least the "
            "validation sampling error)."
        )
    if quick:
        noise = (
            "`--quick` trains a few steps per block: a smoke run that shows every block trains, not how "
            "well; blocks that start slower look worse here. " + noise
        )
    n = max(rows[0]["val_images"], 1)
    p = min(max(statistics.fmean(r["best_top1_mean"] for r in rows) / 100.0, 0.0), 1.0)
    se = 100.0 * math.sqrt(p * (1.0 - p) / n)
    lines = [
        f"# Attention comparison: {setup['model']} on {setup['data']}",
        "",
        ", ".join(f"{k}: {v}" for k, v in setup.items()),
        "",
        format_table(rows),
        "",
        f"**Noise.** {noise} Single runs on small data are noise: on {n} validation images the sampling "
        f"error alone is ±{se:.1f} points (1 s.e. at {p:.0%} accuracy), and the spread between seeds adds to it.",
        "",
        "Params and MACs (multiply-accumulates per image) are exact. Throughput is eval images/s on "
        f"{setup['device']} (batch {setup['throughput_batch']}) and depends on the machine and its load.",
        "",
    ]
    return "\n".join(lines)
