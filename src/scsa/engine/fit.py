"""``fit``: one training run of any task, in a run folder, through Lightning's ``Trainer``.

A run writes into ``out_dir``::

    config.json                  the task's configuration (fresh runs; on resume it is read, not rewritten)
    metrics.csv, metrics.json    one row per validation (rewritten after each)
    curves.png                   every float metric per epoch: losses on one panel, the rest on another
    summary.json                 best and final rows, best epoch, wall time, skipped non-finite steps
    checkpoints/last.ckpt        end of the latest epoch  (both written atomically)
    checkpoints/best.ckpt        the best value of the monitored metric

Distribution is Lightning's: ``devices``/``num_nodes``/``strategy`` as given, or what it detects when
launched by ``torchrun`` or SLURM. Only global rank 0 writes files.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only

from scsa.engine.config import check_resume, flatten_config, read_run_config
from scsa.engine.module import TaskModule
from scsa.engine.options import TrainerOptions, build_trainer, resolve_precision
from scsa.engine.plots import plot_curves
from scsa.io import write_csv, write_json

__all__ = ["RUN_FILES", "RunResult", "fit", "resume_path"]

RUN_FILES = ("metrics.csv", "metrics.json", "summary.json", "curves.png")
log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a finished run reports; the same numbers are in ``out_dir/summary.json``."""

    out_dir: Path
    history: list[dict[str, Any]]
    best: dict[str, Any]
    final: dict[str, Any]
    best_epoch: int
    wall_time_s: float
    module: L.LightningModule
    skipped_nonfinite_steps: int = 0
    summary: dict[str, Any] = field(default_factory=dict)


class _EngineHooks(Callback):
    """Per-epoch reseeding and clock; rank 0 writes the metrics files after every validation and the
    curves at the end."""

    def __init__(self, out_dir: Path, title: str) -> None:
        self.out_dir, self.title = out_dir, title

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if isinstance(pl_module, TaskModule):
            pl_module.start_epoch()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        write_csv(self.out_dir / "metrics.csv", pl_module.history)
        write_json(self.out_dir / "metrics.json", pl_module.history)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and pl_module.history:
            plot_curves(pl_module.history, self.out_dir / "curves.png", self.title)


def resume_path(resume: str | Path | None, out_dir: str | Path) -> str | None:
    """The checkpoint of ``resume``: ``"last"`` is ``out_dir/checkpoints/last.ckpt``; it must exist."""
    if resume is None:
        return None
    path = Path(out_dir) / "checkpoints" / "last.ckpt" if str(resume) == "last" else Path(resume)
    if not path.is_file():
        raise ValueError(f"resume checkpoint {str(path)!r} does not exist")
    return str(path)


def _checkpoints(out_dir: Path, which: str, monitor: str, mode: str) -> list[ModelCheckpoint]:
    # Two callbacks: Lightning 2.6's save_last=True rewrites last.ckpt only in epochs that also
    # improved the best one, so "last" would go stale whenever the metric does not improve.
    best = ModelCheckpoint(
        dirpath=out_dir / "checkpoints",
        filename="best",
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    last = ModelCheckpoint(
        dirpath=out_dir / "checkpoints", filename="last", save_top_k=1, enable_version_counter=False
    )
    return {"best+last": [best, last], "last": [last], "none": []}[which]


def _resume_config(out_dir: Path, config: Mapping[str, Any], task: str) -> dict[str, Any] | None:
    """The stored config.json, after checking that ``config`` does not change what the run computes."""
    stored = read_run_config(out_dir)
    if stored is None:
        return None
    if stored.get("task", task) != task:
        raise ValueError(
            f"{str(out_dir / 'config.json')!r} is a {stored.get('task')!r} run; cannot resume it as {task!r}"
        )
    _, notes = check_resume(
        flatten_config(stored.get("config", {})), flatten_config(config), where=f"{str(out_dir)!r}"
    )
    if notes:
        log.info("resuming %s: %s", out_dir, "; ".join(notes))
        stored.setdefault("resumes", []).append({"changes": notes})
    return stored


def fit(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    *,
    out_dir: str | Path,
    options: TrainerOptions,
    monitor: str,
    mode: str = "max",
    config: Mapping[str, Any],
    resume: str | Path | None = None,
    title: str = "",
    callbacks: Sequence[Callback] = (),
    summary_extra: Mapping[str, Any] | Callable[[list[dict[str, Any]]], Mapping[str, Any]] | None = None,
    task: str | None = None,
    default_precision: str = "32",
    trainer_kwargs: Mapping[str, Any] | None = None,
) -> RunResult:
    """Train ``module`` on ``datamodule`` as ``options`` say, in the run folder ``out_dir``.

    ``monitor``: a key of the rows the module records (``"val_top1"``, ``"val_map"``...), ``mode``
    ``"max"`` or ``"min"``; it chooses ``best.ckpt`` and the summary's best row. ``config``: the task's
    own plain-types configuration, stored in ``config.json`` (with ``task`` and ``module.info``).
    ``resume``: ``"last"`` or a checkpoint path; the run continues exactly (weights, optimizer,
    scheduler, RNG, history), and ``config`` must not differ from the stored one except in the options
    that may change (:func:`scsa.engine.config.check_resume`). ``summary_extra``: more summary keys,
    or a function of the history giving them. ``default_precision``: the task's precision on a GPU.
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    start = time.perf_counter()
    out_dir = Path(out_dir)
    if task is None:
        task = str((getattr(module, "info", None) or {}).get("task") or type(module).__name__)
    ckpt_path = resume_path(resume, out_dir)
    precision = resolve_precision(options.precision, options.accelerator, default_precision)
    is_zero = rank_zero_only.rank == 0  # Lightning reads the rank from the launcher's environment
    stored = _resume_config(out_dir, config, task) if ckpt_path is not None else None

    out_dir.mkdir(parents=True, exist_ok=True)
    if is_zero:
        if ckpt_path is None:  # a fresh run must not report a previous run's rows
            if (out_dir / "checkpoints" / "last.ckpt").exists():
                log.warning(
                    "%s held a run; a fresh run replaces it (pass resume='last' to continue it)", out_dir
                )
            for name in RUN_FILES:
                (out_dir / name).unlink(missing_ok=True)
        if stored is None:
            info = dict(getattr(module, "info", {}) or {})
            write_json(
                out_dir / "config.json",
                {
                    "task": task,
                    "config": dict(config),
                    **info,
                    "precision": precision,
                    "trainer": options.to_dict(),
                },
            )
        elif stored.get("resumes"):
            write_json(out_dir / "config.json", stored)  # the original configuration, plus what changed

    if isinstance(module, TaskModule):
        module.monitor = monitor
        module.skip_nonfinite_loss = options.skip_nonfinite_loss
    saving = _checkpoints(out_dir, options.checkpoints, monitor, mode)
    trainer = build_trainer(
        options,
        out_dir=out_dir,
        precision=precision,
        callbacks=[_EngineHooks(out_dir, title), *saving, *callbacks],
        enable_checkpointing=bool(saving),
        **dict(trainer_kwargs or {}),
    )
    L.seed_everything(options.seed, workers=True, verbose=False)
    with warnings.catch_warnings():
        # in-memory data loads in the main process on purpose; the other two are ours by design
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
        warnings.filterwarnings("ignore", ".*`training_step` returned `None`.*")
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return _result(out_dir, module, monitor, mode, time.perf_counter() - start, summary_extra, trainer)


def _result(out_dir, module, monitor, mode, wall, summary_extra, trainer) -> RunResult:
    history = list(getattr(module, "history", []))
    metrics_file = out_dir / "metrics.json"
    if not history and metrics_file.exists():  # under ddp_spawn the history lives in rank 0's process
        history = json.loads(metrics_file.read_text())
    if not history:
        raise RuntimeError(f"the run in {str(out_dir)!r} finished without a single validated epoch")
    rows = [r for r in history if r.get(monitor) is not None]
    if not rows:
        raise KeyError(f"no recorded row of the run in {str(out_dir)!r} has the monitored metric {monitor!r}")
    best = (max if mode == "max" else min)(rows, key=lambda r: r[monitor])
    final = history[-1]
    skipped = int(getattr(module, "skipped_nonfinite_steps", 0))
    summary: dict[str, Any] = {
        "best": best,
        "final": final,
        "best_epoch": int(best["epoch"]),
        "monitor": monitor,
        "mode": mode,
        "epochs": int(final["epoch"]),
        "wall_time_s": wall,
        "skipped_nonfinite_steps": skipped,
    }
    extra = summary_extra(history) if callable(summary_extra) else summary_extra
    summary.update(extra or {})
    if trainer.is_global_zero:
        write_json(out_dir / "summary.json", summary)
    return RunResult(
        out_dir=out_dir,
        history=history,
        best=best,
        final=final,
        best_epoch=int(best["epoch"]),
        wall_time_s=wall,
        module=module,
        skipped_nonfinite_steps=skipped,
        summary=summary,
    )
