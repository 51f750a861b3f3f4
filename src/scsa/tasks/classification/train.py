"""``train``: one training run of a backbone with an attention block (the classification task).

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
Neurocomputing 2025, https://arxiv.org/abs/2407.05128 — every number of their comparison tables comes
from a run like this one: the same backbone and recipe, one attention block changed.

The run folder is the engine's (:func:`scsa.engine.fit`): ``config.json``, ``metrics.csv``/``.json``,
``curves.png``, ``summary.json`` (with best / final top-1 and top-5 and the skipped images), and
``checkpoints/last.ckpt`` and ``best.ckpt`` (the epoch with the best val top-1).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from torch import nn

from scsa.engine import TrainerOptions, fit, resolve_precision, resume_path
from scsa.io import write_text
from scsa.tasks.classification.data import ImageDataModule
from scsa.tasks.classification.module import ImageClassifier
from scsa.tasks.classification.precise_bn import PreciseBN
from scsa.tasks.classification.recipes import Recipe, get_recipe

__all__ = ["MONITOR", "TASK", "TrainConfig", "TrainResult", "build_model", "train", "trainer_options"]

TASK = "classification"
MONITOR = "val_top1"
log = logging.getLogger(__name__)
_OPTION_FIELDS = {f.name for f in dataclasses.fields(TrainerOptions)} - {"max_epochs"}


@dataclass
class TrainConfig:
    """Everything one training run needs. ``overrides`` replaces recipe values (see :class:`Recipe`).

    ``stem=None`` picks ``"cifar"`` for images of at most 64 pixels and ``"imagenet"`` above.
    ``resume``: a checkpoint path, or ``"last"`` for ``out_dir/checkpoints/last.ckpt``.
    ``checkpoints``: which to keep: ``"best+last"``, ``"last"`` or ``"none"`` (a resnet18 checkpoint with
    its optimizer state is 90 MB). ``precise_bn``: recompute BatchNorm statistics over this many train
    batches before each validation (0: off; see :mod:`scsa.tasks.classification.precise_bn`), for short
    runs. The fields from ``accelerator`` on are the engine's :class:`scsa.engine.TrainerOptions`
    (the epochs are the recipe's).
    """

    data: str = "mnist5k"
    model: str = "resnet18"
    attention: str = "scsa"
    attention_kwargs: dict[str, Any] | None = None
    attention_position: str = "mid"
    stem: str | None = None
    pretrained: str | None = None
    recipe: str = "small"
    overrides: dict[str, Any] = field(default_factory=dict)
    out_dir: str = "runs/train"
    resume: str | None = None
    channels_last: bool = False
    compile: bool = False
    skip_bad_images: bool = False
    precise_bn: int = 0
    # TrainerOptions
    seed: int = 0
    deterministic: bool = False
    precision: str | None = None
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    num_workers: int | None = None
    checkpoints: str = "best+last"
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    progress: bool = True
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    max_steps: int = -1
    val_check_interval: int | float = 1.0
    check_val_every_n_epoch: int = 1
    skip_nonfinite_loss: bool = False


@dataclass
class TrainResult:
    """What a finished run reports; the same numbers are in ``out_dir/summary.json``."""

    out_dir: Path
    best_top1: float
    best_top5: float
    final_top1: float
    final_top5: float
    best_epoch: int
    epochs: int
    num_classes: int
    wall_time_s: float
    history: list[dict[str, float]]
    skipped_images: list[str]
    model: nn.Module
    skipped_nonfinite_steps: int = 0


def trainer_options(cfg: TrainConfig, recipe: Recipe) -> TrainerOptions:
    """The engine's options of ``cfg``; epochs and precision from the recipe unless given."""
    values = {name: getattr(cfg, name) for name in _OPTION_FIELDS}
    values["precision"] = resolve_precision(cfg.precision, cfg.accelerator, recipe.precision)
    return TrainerOptions(max_epochs=recipe.epochs, **values)


def build_model(cfg: TrainConfig, num_classes: int, image_size: int) -> tuple[nn.Module, dict[str, Any]]:
    """The backbone from :func:`scsa.models.create_model`, and the spec that rebuilds it from a checkpoint."""
    from scsa.models import create_model

    spec = {
        "name": cfg.model,
        "num_classes": num_classes,
        "attention": cfg.attention,
        "attention_kwargs": dict(cfg.attention_kwargs or {}),
        "stem": cfg.stem or ("cifar" if image_size <= 64 else "imagenet"),
        "attention_position": cfg.attention_position,
    }
    model = create_model(**spec, pretrained=cfg.pretrained)
    return model, spec


def train(
    cfg: TrainConfig,
    *,
    model: nn.Module | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train as ``cfg`` says and return the run's numbers. ``model`` replaces the one ``cfg`` names."""
    start = time.perf_counter()
    recipe = get_recipe(cfg.recipe, **cfg.overrides)
    out_dir = Path(cfg.out_dir)
    options = trainer_options(cfg, recipe)  # checks the options before anything is written
    resume_path(cfg.resume, out_dir)  # a missing checkpoint fails before anything is written
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # before the model: its initial weights

    dm = ImageDataModule(
        cfg.data,
        recipe,
        seed=cfg.seed,
        num_workers=cfg.num_workers,
        skip_bad_images=cfg.skip_bad_images,
    )
    out_dir.mkdir(parents=True, exist_ok=True)  # only once the configuration and the data are checked
    spec = None
    if model is None:
        model, spec = build_model(cfg, dm.num_classes, recipe.image_size)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.compile:
        model.compile()  # in place: parameter names (and checkpoints) stay those of the eager model
    info = {
        "model_spec": spec,
        "classes": list(dm.classes),
        "data": cfg.data,
        "transform": {
            "image_size": recipe.image_size,
            "resize_size": dm.transform(train=False).resize_size,
            "mean": list(dm.mean),
            "std": list(dm.std),
        },
        "recipe": dataclasses.asdict(recipe),
        "seed": cfg.seed,
    }
    # Under torchrun or SLURM every process runs this function; only global rank 0 writes files.
    is_zero = rank_zero_only.rank == 0
    if cfg.resume is None and is_zero:
        (out_dir / "skipped_images.txt").unlink(missing_ok=True)
    dm.setup("fit")  # here, not in spawned workers: the bad-image scan runs once and its count is ours
    if dm.skipped and is_zero:
        skipped_file = write_text(out_dir / "skipped_images.txt", "\n".join(dm.skipped) + "\n")
        log.warning("left out %d unreadable image(s); list in %s", len(dm.skipped), skipped_file)
    module = ImageClassifier(
        model, recipe, dm.num_classes, seed=cfg.seed, channels_last=cfg.channels_last, info=info
    )
    extra = [PreciseBN(cfg.precise_bn)] if cfg.precise_bn else []
    title = f"{cfg.model} + {cfg.attention} on {Path(cfg.data).name}" if spec else Path(cfg.data).name

    def summary(history: list[dict[str, Any]]) -> dict[str, Any]:
        best = max(history, key=lambda r: r["val_top1"])
        return {
            "best_top1": best["val_top1"],
            "best_top5": max(r["val_top5"] for r in history),
            "final_top1": history[-1]["val_top1"],
            "final_top5": history[-1]["val_top5"],
            "num_classes": dm.num_classes,
            "wall_time_s": time.perf_counter() - start,
            "out_dir": str(out_dir),
            "skipped_images": len(dm.skipped),
        }

    run = fit(
        module,
        dm,
        out_dir=out_dir,
        options=options,
        monitor=MONITOR,
        mode="max",
        config=dataclasses.asdict(cfg),
        resume=cfg.resume,
        title=title,
        callbacks=[*extra, *callbacks],
        summary_extra=summary,
        task=TASK,
        default_precision=recipe.precision,
    )
    s = run.summary
    return TrainResult(
        out_dir=out_dir,
        best_top1=s["best_top1"],
        best_top5=s["best_top5"],
        final_top1=s["final_top1"],
        final_top5=s["final_top5"],
        best_epoch=run.best_epoch,
        epochs=int(run.final["epoch"]),
        num_classes=dm.num_classes,
        wall_time_s=s["wall_time_s"],
        history=run.history,
        skipped_images=list(dm.skipped),
        model=module.model,
        skipped_nonfinite_steps=run.skipped_nonfinite_steps,
    )
