"""One detector, each attention block, the same recipe and seeds: the paper's detection table for your data.

Each (attention, seed) is one :func:`~scsa.tasks.detection.train.train_detector` run in
``out_dir/<attention>/seed<k>``. The table has params, GFLOPs (MACs of one eval forward at the input size,
counted by ``torch.utils.flop_counter``; RoIAlign and NMS are not matmuls and are not counted), eval FPS at
batch 1 on the run's device, and best-epoch mAP, AP50, AP75, APs/m/l (percent). With one seed nothing is
ranked (the spread between seeds is unknown); with several, gaps within twice the combined std are ties.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from scsa.engine import TrainerOptions
from scsa.engine.plots import plot_tradeoff
from scsa.engine.report import format_mean_std, markdown_table, mean_std, verdicts
from scsa.io import write_csv, write_json, write_text
from scsa.tasks.detection.train import DetectConfig, train_detector

__all__ = ["COMPARE_KEYS", "compare_detectors", "measure_detector"]

COMPARE_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large")


class _ListInput(torch.nn.Module):
    """A detector called on a batch tensor, for the profilers that feed one."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return self.model(list(x))


def measure_detector(
    model: torch.nn.Module, image_size: int, iters: int = 5, device: str = "cpu"
) -> dict[str, float]:
    """Params, GFLOPs (MACs) and eval images/s at batch 1 of a detector at ``image_size`` × ``image_size``."""
    from scsa.tools.profile import count_flops

    wrapped = _ListInput(model).eval().to(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NMS has no fake-tensor kernel: counted on a real input, as said
        macs = count_flops(wrapped, (1, 3, image_size, image_size))
    x = torch.rand(1, 3, image_size, image_size, device=device)
    with torch.no_grad():
        wrapped(x)
        start = time.perf_counter()
        for _ in range(iters):
            wrapped(x)
        fps = iters / (time.perf_counter() - start)
    return {"params": sum(p.numel() for p in model.parameters()), "gflops": macs / 1e9, "fps": fps}


def compare_detectors(
    config: DetectConfig,
    options: TrainerOptions,
    out_dir: str | Path,
    attentions: Sequence[str] = ("none", "se", "eca", "cbam", "scsa"),
    seeds: int = 1,
) -> list[dict[str, Any]]:
    """Train ``config`` once per attention and seed, write ``compare.{md,csv,json,png}`` and return the rows."""
    out_dir = Path(out_dir)
    rows = []
    for attention in attentions:
        runs = []
        for k in range(seeds):
            cfg = replace(config, attention=attention)
            result = train_detector(
                cfg, replace(options, seed=options.seed + k), out_dir / attention / f"seed{k}"
            )
            runs.append(result)
        model = runs[0].module.model
        size = int(runs[0].module.info["model"].get("max_size") or 128)
        cost = measure_detector(model, min(size, 512))
        row: dict[str, Any] = {"attention": attention, "seeds": seeds, **cost}
        for key in COMPARE_KEYS:
            values = [100 * float(r.best[key]) for r in runs]
            row[f"{key}_mean"], row[f"{key}_std"] = mean_std(values)
        row["wall_time_s"] = sum(r.wall_time_s for r in runs)
        row["val_images"] = runs[0].module.info.get("n_val")
        rows.append(row)
    for row, verdict in zip(rows, verdicts(rows, key="map", n_key=None)):
        row["verdict"] = verdict
    head = ["attention", "params (M)", "GFLOPs", "FPS", "mAP", "AP50", "AP75", "APs", "APm", "APl", "verdict"]
    table = [
        [r["attention"], f"{r['params'] / 1e6:.2f}", f"{r['gflops']:.2f}", f"{r['fps']:.1f}"]
        + [format_mean_std(r[f"{k}_mean"], r[f"{k}_std"], 1) for k in COMPARE_KEYS]
        + [r["verdict"]]
        for r in rows
    ]
    note = (
        f"{config.detector}, {config.backbone or 'recipe backbone'}, recipe {config.recipe}, data {config.data}, "
        f"{seeds} seed(s); AP in percent at the best epoch (APs/m/l: -100 = no objects of that size). "
        + (
            "One seed: differences are not ranked (seed-to-seed spread unknown)."
            if seeds < 2
            else "verdict: a gap to the best larger than twice the combined std over seeds, else tie."
        )
    )
    md = markdown_table(head, table) + "\n\n" + note + "\n"
    write_text(out_dir / "compare.md", md)
    write_csv(out_dir / "compare.csv", rows)
    write_json(out_dir / "compare.json", {"note": note, "rows": rows})
    plot_tradeoff(
        rows,
        out_dir / "compare.png",
        x="fps",
        y="map_mean",
        label="attention",
        y_std="map_std",
        xlabel="eval images/s (batch 1)",
        ylabel="mAP (%)",
        title=f"{config.detector}: mAP vs speed",
    )
    print(md)
    return rows
