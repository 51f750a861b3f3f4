"""``TrainerOptions``: what every task's run asks of Lightning's ``Trainer``, and the ``Trainer`` it builds.

One dataclass for all tasks, so that devices, precision, accumulation, clipping, determinism, limits and
checkpoints mean the same in ``scsa classify train``, ``scsa detect train`` and ``scsa segment train``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CHECKPOINTS",
    "PRECISIONS",
    "TrainerOptions",
    "build_trainer",
    "quiet_lightning",
    "resolve_precision",
]

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
CHECKPOINTS = ("best+last", "last", "none")


@dataclass
class TrainerOptions:
    """Options of one run's ``lightning.Trainer``, shared by every task.

    ``precision=None`` is the task's default on a GPU and ``"32"`` on a CPU. ``checkpoints``: which to
    keep, ``"best+last"``, ``"last"`` or ``"none"``. ``skip_nonfinite_loss``: skip optimizer steps whose
    loss is NaN or infinite (and count them) instead of stopping the run. ``num_workers=None``: the
    data module's default.
    """

    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str | None = None
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    deterministic: bool = False
    seed: int = 0
    max_epochs: int = 1
    max_steps: int = -1
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    val_check_interval: int | float = 1.0
    check_val_every_n_epoch: int = 1
    checkpoints: str = "best+last"
    progress: bool = True
    skip_nonfinite_loss: bool = False
    num_workers: int | None = None

    def __post_init__(self) -> None:
        if self.checkpoints not in CHECKPOINTS:
            raise ValueError(f"checkpoints must be one of {CHECKPOINTS}, got {self.checkpoints!r}")
        if self.precision is not None and str(self.precision) not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("num_nodes", "accumulate_grad_batches", "max_epochs", "check_val_every_n_epoch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {name}={value!r}")
        if self.gradient_clip_val is not None and not self.gradient_clip_val > 0:
            raise ValueError(f"gradient_clip_val must be > 0, got {self.gradient_clip_val!r}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def on_gpu(accelerator: str) -> bool:
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def resolve_precision(precision: str | None, accelerator: str, default: str = "32") -> str:
    """``precision`` if given, else the task's ``default`` where CUDA is; CPUs run float32 (or bf16 if
    asked). ``"16-mixed"`` needs CUDA."""
    gpu = on_gpu(accelerator)
    if precision is not None:
        if str(precision) not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if str(precision) == "16-mixed" and not gpu:
            raise ValueError("precision='16-mixed' needs a CUDA GPU; on a CPU use 'bf16-mixed' or '32'")
        return str(precision)
    return default if gpu or default != "16-mixed" else "32"


def quiet_lightning() -> None:
    """Silence Lightning's start-up banners and the warnings that do not apply to our loaders."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_trainer(
    options: TrainerOptions,
    *,
    out_dir: str | Path,
    precision: str,
    callbacks: Sequence[Any] = (),
    enable_checkpointing: bool = True,
    **overrides: Any,
):
    """The ``lightning.Trainer`` of ``options`` (atomic checkpoint IO, no logger, no sanity check).

    ``use_distributed_sampler=False``: each task's data module shards by rank itself, so that one
    process with batch B and N processes with batch B/N see the same global batches.
    """
    import lightning as L

    from scsa.engine.io import AtomicCheckpointIO

    kwargs: dict[str, Any] = dict(
        accelerator=options.accelerator,
        devices=options.devices,
        num_nodes=options.num_nodes,
        strategy=options.strategy,
        precision=precision,
        max_epochs=options.max_epochs,
        max_steps=options.max_steps,
        accumulate_grad_batches=options.accumulate_grad_batches,
        gradient_clip_val=options.gradient_clip_val,
        deterministic=options.deterministic,
        callbacks=list(callbacks),
        enable_checkpointing=enable_checkpointing,
        plugins=[AtomicCheckpointIO()],
        logger=False,
        default_root_dir=str(out_dir),
        enable_progress_bar=options.progress,
        enable_model_summary=False,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        limit_train_batches=options.limit_train_batches,
        limit_val_batches=options.limit_val_batches,
        val_check_interval=options.val_check_interval,
        check_val_every_n_epoch=options.check_val_every_n_epoch,
        log_every_n_steps=1,
    )
    kwargs.update(overrides)
    return L.Trainer(**kwargs)
