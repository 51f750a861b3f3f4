"""``train``: one training run of a backbone with an attention block, through a Lightning ``Trainer``.

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
Neurocomputing 2025, https://arxiv.org/abs/2407.05128 — every number of their comparison tables comes
from a run like this one: the same backbone and recipe, one attention block changed.

A run writes into ``out_dir``::

    config.json                  the resolved configuration and recipe
    metrics.csv, metrics.json    one row per epoch (rewritten after every epoch)
    curves.png                   loss and accuracy curves (end of run)
    summary.json                 best / final top-1 and top-5, wall time, skipped images
    checkpoints/last.ckpt        end of the latest epoch  (both written atomically)
    checkpoints/best.ckpt        epoch with the best val top-1

Distribution is Lightning's: ``devices``/``num_nodes``/``strategy`` as given, or what it detects when
launched by ``torchrun`` or SLURM.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from torch import nn

from scsa.engine.data import ImageDataModule
from scsa.engine.io import AtomicCheckpointIO, write_csv, write_json, write_text
from scsa.engine.module import ImageClassifier
from scsa.engine.plots import plot_curves
from scsa.engine.precise_bn import PreciseBN
from scsa.engine.recipes import Recipe, get_recipe

__all__ = ["TrainConfig", "TrainResult", "train"]

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
CHECKPOINTS = ("best+last", "last", "none")
log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything one training run needs. ``overrides`` replaces recipe values (see :class:`Recipe`).

    ``stem=None`` picks ``"cifar"`` for images of at most 64 pixels and ``"imagenet"`` above.
    ``resume``: a checkpoint path, or ``"last"`` for ``out_dir/checkpoints/last.ckpt``.
    ``checkpoints``: which to keep: ``"best+last"``, ``"last"`` or ``"none"`` (a resnet18 checkpoint with
    its optimizer state is 90 MB). ``precise_bn``: recompute BatchNorm statistics over this many train
    batches before each validation (0: off; see :mod:`scsa.engine.precise_bn`), for short runs.
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
    seed: int = 0
    deterministic: bool = False
    precision: str | None = None
    channels_last: bool = False
    compile: bool = False
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    num_workers: int | None = None
    resume: str | None = None
    skip_bad_images: bool = False
    checkpoints: str = "best+last"
    precise_bn: int = 0
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    progress: bool = True


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


class _RunFiles(Callback):
    """Rank 0 writes the metrics files after every epoch and the curves at the end of the run."""

    def __init__(self, out_dir: Path, title: str) -> None:
        self.out_dir, self.title = out_dir, title

    def on_validation_end(self, trainer: L.Trainer, pl_module: ImageClassifier) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        write_csv(self.out_dir / "metrics.csv", pl_module.history)
        write_json(self.out_dir / "metrics.json", pl_module.history)

    def on_fit_end(self, trainer: L.Trainer, pl_module: ImageClassifier) -> None:
        if trainer.is_global_zero and pl_module.history:
            plot_curves(pl_module.history, self.out_dir / "curves.png", self.title)


def resolve_precision(precision: str | None, recipe: Recipe, accelerator: str) -> str:
    """The recipe's precision unless given; mixed float16 only where CUDA is (CPUs run float32)."""
    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if precision is not None:
        if str(precision) not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if str(precision) == "16-mixed" and not on_gpu:
            raise ValueError("precision='16-mixed' needs a CUDA GPU; on a CPU use 'bf16-mixed' or '32'")
        return str(precision)
    return recipe.precision if on_gpu or recipe.precision != "16-mixed" else "32"


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


def _resume_path(resume: str | None, out_dir: Path) -> str | None:
    if resume is None:
        return None
    path = out_dir / "checkpoints" / "last.ckpt" if resume == "last" else Path(resume)
    if not path.is_file():
        raise ValueError(f"resume checkpoint {str(path)!r} does not exist")
    return str(path)


def quiet_lightning() -> None:
    """Silence Lightning's start-up banners and the warnings that do not apply to our loaders."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


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
    ckpt_path = _resume_path(cfg.resume, out_dir)
    if cfg.checkpoints not in CHECKPOINTS:
        raise ValueError(f"checkpoints must be one of {CHECKPOINTS}, got {cfg.checkpoints!r}")
    precision = resolve_precision(cfg.precision, recipe, cfg.accelerator)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

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
    # (Lightning reads the rank from the launcher's environment at import.)
    is_zero = rank_zero_only.rank == 0
    if ckpt_path is None and is_zero:  # a fresh run must not report a previous run's rows
        for name in ("metrics.csv", "metrics.json", "summary.json", "curves.png", "skipped_images.txt"):
            (out_dir / name).unlink(missing_ok=True)
    dm.setup("fit")  # here, not in spawned workers: the bad-image scan runs once and its count is ours
    if dm.skipped and is_zero:
        skipped_file = write_text(out_dir / "skipped_images.txt", "\n".join(dm.skipped) + "\n")
        log.warning("left out %d unreadable image(s); list in %s", len(dm.skipped), skipped_file)
    module = ImageClassifier(
        model, recipe, dm.num_classes, seed=cfg.seed, channels_last=cfg.channels_last, info=info
    )
    if is_zero:
        config = {"config": dataclasses.asdict(cfg), **info, "precision": precision}
        write_json(out_dir / "config.json", config)

    # Two callbacks: Lightning 2.6's save_last=True rewrites last.ckpt only in epochs that also
    # improved the best one, so "last" would go stale whenever the metric does not improve.
    best_ckpt = ModelCheckpoint(
        dirpath=out_dir / "checkpoints",
        filename="best",
        monitor="val/top1",
        mode="max",
        save_top_k=1,
        enable_version_counter=False,
    )
    last_ckpt = ModelCheckpoint(
        dirpath=out_dir / "checkpoints", filename="last", save_top_k=1, enable_version_counter=False
    )
    saving = {"best+last": [best_ckpt, last_ckpt], "last": [last_ckpt], "none": []}[cfg.checkpoints]
    extra = [PreciseBN(cfg.precise_bn)] if cfg.precise_bn else []
    title = f"{cfg.model} + {cfg.attention} on {Path(cfg.data).name}" if spec else Path(cfg.data).name
    trainer = L.Trainer(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        precision=precision,
        max_epochs=recipe.epochs,
        deterministic=cfg.deterministic,
        callbacks=[*extra, _RunFiles(out_dir, title), *saving, *callbacks],
        enable_checkpointing=bool(saving),
        plugins=[AtomicCheckpointIO()],
        logger=False,
        default_root_dir=out_dir,
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        use_distributed_sampler=False,  # our samplers shard by rank themselves (see scsa.engine.data)
        num_sanity_val_steps=0,
        limit_train_batches=cfg.limit_train_batches,
        limit_val_batches=cfg.limit_val_batches,
        log_every_n_steps=1,
    )
    with warnings.catch_warnings():
        # mnist5k is in memory and loads in the main process on purpose.
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return _result(out_dir, module, dm.skipped, time.perf_counter() - start, trainer.is_global_zero)


def _result(
    out_dir: Path, module: ImageClassifier, skipped: list[str], wall: float, is_zero: bool
) -> TrainResult:
    history = module.history
    metrics_file = out_dir / "metrics.json"
    if not history and metrics_file.exists():  # under ddp_spawn the history lives in rank 0's process
        history = json.loads(metrics_file.read_text())
    if not history:
        raise RuntimeError(f"the run in {str(out_dir)!r} finished without a single validated epoch")
    best = max(history, key=lambda r: r["val_top1"])
    last = history[-1]
    result = TrainResult(
        out_dir=out_dir,
        best_top1=best["val_top1"],
        best_top5=max(r["val_top5"] for r in history),
        final_top1=last["val_top1"],
        final_top5=last["val_top5"],
        best_epoch=int(best["epoch"]),
        epochs=int(last["epoch"]),
        num_classes=module.num_classes,
        wall_time_s=wall,
        history=history,
        skipped_images=skipped,
        model=module.model,
    )
    summary = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    del summary["history"], summary["model"], summary["skipped_images"]
    summary.update(out_dir=str(out_dir), skipped_images=len(skipped))
    if is_zero:
        write_json(out_dir / "summary.json", summary)
    return result
