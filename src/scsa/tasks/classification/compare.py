"""``compare``: the SCSA paper's experiment for any data — one backbone, each attention block, same recipe.

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
Neurocomputing 2025, https://arxiv.org/abs/2407.05128 — Tables 2-4 train one backbone with each
attention block and compare accuracy against parameters, FLOPs and throughput.

For every attention and seed, :func:`scsa.tasks.classification.train` runs the same configuration; the complexity
report (:mod:`scsa.tools.profile`) measures the same model. Outputs in ``out_dir``: ``compare.md``,
``compare.csv``, ``compare.json`` and ``compare.png`` (rewritten after each block, so an interrupted
comparison keeps what it finished), and one training run folder per block and seed.

Small data is noisy: a block is only called better when its lead over the others is larger than the
noise, estimated as the spread over seeds and at least the sampling error of the validation accuracy.
Otherwise it is a tie (see :func:`scsa.tasks.classification.report.verdicts`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_only

from scsa.engine import quiet_lightning
from scsa.engine.plots import plot_tradeoff
from scsa.engine.report import mean_std
from scsa.io import write_csv, write_json, write_text
from scsa.tasks.classification.data import MNIST5K
from scsa.tasks.classification.recipes import get_recipe
from scsa.tasks.classification.report import METRICS, format_report, verdicts
from scsa.tasks.classification.train import TrainConfig, TrainResult, build_model, train

__all__ = [
    "CPU_MNIST5K",
    "DEFAULT_ATTENTIONS",
    "QUICK",
    "CompareConfig",
    "CompareResult",
    "compare",
    "verdicts",
]

DEFAULT_ATTENTIONS = ("none", "se", "cbam", "eca", "ca", "ema", "scsa")
# mnist5k on a CPU: resnet18 trains at about 100 images/s at 16x16 on 2 cores (a quarter of that at
# 32x32), so the default comparison of 7 blocks fits in 10 minutes only at 16x16, with 2 epochs of
# 16 batches (1,024 of the 4,000 training digits, a new draw each epoch) and the full 1,000 val digits.
# Runs this short need precise BatchNorm statistics before validation (see scsa.tasks.classification.precise_bn).
CPU_MNIST5K: dict[str, Any] = {"image_size": 16, "epochs": 2, "limit_train_batches": 16, "precise_bn": 8}
# --quick: what the README's first command runs; a smoke run of about 1-2 minutes on 2 CPU cores.
QUICK: dict[str, Any] = {"epochs": 1, "limit_train_batches": 12, "limit_val_batches": 4, "precise_bn": 4}
_RECIPE_KEYS = {"image_size", "epochs"}


@dataclass
class CompareConfig:
    """A comparison: ``train`` settings shared by every run, the attentions, and the seeds.

    ``overrides`` replaces recipe values (``epochs``, ``batch_size``, ``lr``, ...); ``train_options``
    are further :class:`TrainConfig` fields (``precision``, ``devices``, ``strategy``, ...).
    Explicit settings win over two sets of defaults: :data:`CPU_MNIST5K` for ``mnist5k`` on a CPU,
    and :data:`QUICK` (one short epoch on a part of the data) with ``quick``. Runs keep no checkpoints
    unless ``train_options["checkpoints"]`` asks for them.
    """

    data: str = "mnist5k"
    model: str = "resnet18"
    attentions: Sequence[str] = DEFAULT_ATTENTIONS
    recipe: str = "small"
    seeds: int = 1
    first_seed: int = 0
    quick: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    train_options: dict[str, Any] = field(default_factory=dict)
    out_dir: str = "runs/compare"
    throughput_batch: int | None = None


@dataclass
class CompareResult:
    """Aggregated rows (one per attention), every run, and the markdown table."""

    rows: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    markdown: str
    out_dir: Path


def _check(cfg: CompareConfig) -> None:
    from scsa.attention import list_attentions

    if isinstance(cfg.seeds, bool) or not isinstance(cfg.seeds, int) or cfg.seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got seeds={cfg.seeds!r}")
    if not cfg.attentions:
        raise ValueError("attentions must name at least one block")
    known = set(list_attentions())
    unknown = [a for a in cfg.attentions if a.lower() not in known]
    if unknown:
        raise ValueError(f"unknown attention(s) {unknown}; known: {', '.join(sorted(known))}")
    if len(set(cfg.attentions)) != len(cfg.attentions):
        raise ValueError(f"attentions must not repeat, got {list(cfg.attentions)}")
    bad = {"attention", "seed", "out_dir", "overrides", "recipe", "data", "model"} & set(cfg.train_options)
    if bad:
        raise ValueError(f"train_options cannot set {sorted(bad)}: compare sets them per run")


def _profile(cfg: TrainConfig, num_classes: int, image_size: int, batch: int, device: str) -> dict:
    from scsa.tools.profile import count_flops, count_params, measure_throughput

    model, _ = build_model(cfg, num_classes, image_size)
    model = model.to(device)
    if device.startswith("cuda"):  # as released: 50 warm-up and 30 timed passes
        speed = measure_throughput(model, batch_size=batch, image_size=image_size, device=device)
    else:
        # A few passes keep the report quick on a CPU; the best of three short timings is the least
        # disturbed by whatever else the machine runs.
        speed = max(
            measure_throughput(
                model, batch_size=batch, image_size=image_size, warmup=1, iters=3, device=device
            )
            for _ in range(3)
        )
    return {
        "params": count_params(model),
        "macs": count_flops(model, (1, 3, image_size, image_size)),
        "throughput": speed,
    }


def _aggregate(attention: str, runs: Sequence[TrainResult], prof: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"attention": attention, **prof, "seeds": len(runs)}
    for name in METRICS:
        row[f"{name}_mean"], row[f"{name}_std"] = mean_std([getattr(r, name) for r in runs])
    row["wall_time_s"] = statistics.fmean(r.wall_time_s for r in runs)
    row["val_images"] = int(runs[0].history[-1].get("val_images", 0))
    return row


def compare(
    cfg: CompareConfig, *, on_run: Callable[[str, int, TrainResult], None] | None = None
) -> CompareResult:
    """Train ``cfg.model`` with each of ``cfg.attentions`` for ``cfg.seeds`` seeds and write the report."""
    _check(cfg)
    quiet_lightning()
    options = {"checkpoints": "none", **cfg.train_options}
    overrides = dict(cfg.overrides)
    accelerator = options.get("accelerator", "auto")
    device = "cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu"
    defaults = dict(CPU_MNIST5K) if cfg.data == MNIST5K and device == "cpu" else {}
    defaults.update(QUICK if cfg.quick else {})
    for key, value in defaults.items():
        (overrides if key in _RECIPE_KEYS else options).setdefault(key, value)
    recipe = get_recipe(cfg.recipe, **overrides)
    out = Path(cfg.out_dir)
    batch = cfg.throughput_batch or (64 if device == "cuda" else 32)
    setup = {
        "model": cfg.model,
        "data": cfg.data,
        "recipe": cfg.recipe,
        "epochs": recipe.epochs,
        "batch": recipe.batch_size,
        "image size": recipe.image_size,
        "train batches/epoch": options.get("limit_train_batches", "all"),
        "val batches": options.get("limit_val_batches", "all"),
        "precise BN batches": options.get("precise_bn", 0),
        "seeds": cfg.seeds,
        "quick": cfg.quick,
        "device": device,
        "throughput_batch": batch,
    }
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    markdown = ""
    for attention in cfg.attentions:
        results = []
        for seed in range(cfg.first_seed, cfg.first_seed + cfg.seeds):
            run_cfg = TrainConfig(
                data=cfg.data,
                model=cfg.model,
                attention=attention,
                recipe=cfg.recipe,
                overrides=overrides,
                seed=seed,
                out_dir=str(out / attention / f"seed{seed}"),
                **options,
            )
            result = train(run_cfg)
            results.append(result)
            runs.append({"attention": attention, "seed": seed, **{m: getattr(result, m) for m in METRICS}})
            runs[-1].update(wall_time_s=result.wall_time_s, out_dir=str(result.out_dir))
            if on_run is not None:
                on_run(attention, seed, result)
        prof = _profile(run_cfg, results[0].num_classes, recipe.image_size, batch, device)
        rows.append(_aggregate(attention, results, prof))
        markdown = format_report(rows, setup, cfg.seeds, cfg.quick)
        _write(out, cfg, setup, rows, runs, markdown)
    return CompareResult(rows=rows, runs=runs, markdown=markdown, out_dir=out)


def _write(out: Path, cfg: CompareConfig, setup: Mapping[str, Any], rows, runs, markdown: str) -> None:
    if rank_zero_only.rank != 0:  # under torchrun/SLURM every process compares; one writes
        return
    write_csv(out / "compare.csv", [{**r, "vs_best_top1": v} for r, v in zip(rows, verdicts(rows))])
    write_json(out / "compare.json", {"setup": dict(setup), "rows": rows, "runs": runs})
    write_text(out / "compare.md", markdown)
    title = f"{cfg.model} on {Path(cfg.data).name}: best val top-1 vs eval throughput"
    plot_tradeoff(
        rows,
        out / "compare.png",
        x="throughput",
        y="best_top1_mean",
        label="attention",
        y_std="best_top1_std",
        n_key="val_images",
        xlabel="eval throughput (images/s)",
        ylabel="best val top-1 (%)",
        title=title,
    )
