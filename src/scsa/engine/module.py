"""``TaskModule``: the base of every task's LightningModule (classification, detection, segmentation).

A task writes its model, loss and metrics as Lightning's examples do; the engine adds what every run
needs the same way: one history row per validation (``record``), a checked loss (``check_loss``),
the run's ``info`` in every checkpoint, and a per-epoch reseeding that makes resumed runs exact
(installed by :func:`scsa.engine.fit`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch

__all__ = ["CKPT_KEY", "NonFiniteLossError", "TaskModule", "epoch_seed"]

CKPT_KEY = "scsa"  # our entry in a Lightning checkpoint: plain types only, so weights_only loading works
log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The training loss was NaN or infinite; the run stopped there, its checkpoints left as they were."""

    def __init__(self, epoch: int, step: int, batch_idx: int, value: float) -> None:
        self.epoch, self.step, self.batch_idx, self.value = epoch, step, batch_idx, value
        super().__init__(
            f"non-finite training loss ({value}) at epoch {epoch}, step {step} (batch {batch_idx} of the "
            "epoch); the run stopped and its checkpoints are those of the last finished epoch. Lower the "
            "learning rate, clip gradients (gradient_clip_val, --clip), or skip such steps (skip_nonfinite_loss, "
            "--skip-nonfinite-loss)."
        )


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Torch's global seed for ``epoch`` on ``rank``: randomness inside the model (dropout, sampling in
    losses) then depends on (seed, epoch, rank) only, so a run resumed at an epoch boundary draws what
    the uninterrupted run drew."""
    return (seed * 1_000_003 + epoch) * 1_009 + rank


class TaskModule(L.LightningModule):
    """Base LightningModule of every scsa task.

    * ``info``: plain-types dict saved in every checkpoint under ``"scsa"`` (model spec, classes,
      preprocessing...) so that the task rebuilds its model from a checkpoint alone.
    * ``history``: one row per validation, restored on resume; add rows with :meth:`record`.
    * :meth:`check_loss`: call on the total loss in ``training_step``.
    """

    def __init__(self, info: dict[str, Any] | None = None, seed: int = 0) -> None:
        super().__init__()
        self.info: dict[str, Any] = dict(info or {})
        self.seed = seed
        self.history: list[dict[str, Any]] = []
        self.skipped_nonfinite_steps = 0
        # set by scsa.engine.fit; defaults let the module run under a plain Trainer too
        self.monitor: str | None = None
        self.skip_nonfinite_loss = False
        self._epoch_start = time.perf_counter()

    # ------------------------------------------------------------------------------------------
    # called by the task

    def record(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """Add the validation's numbers (plain floats/ints) as a history row; call once per validation
        epoch, in ``on_validation_epoch_end``. Adds ``epoch``, ``step``, ``lr`` and ``epoch_time_s`` and
        logs the monitored key for checkpointing. Returns the row (``None`` while sanity checking)."""
        trainer = self._trainer
        if trainer is not None and trainer.sanity_checking:
            return None
        full: dict[str, Any] = {"epoch": self.current_epoch + 1, "step": self.global_step}
        if trainer is not None and trainer.optimizers:
            full["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        for key, value in row.items():
            full[key] = value.item() if isinstance(value, torch.Tensor) else value
        full["epoch_time_s"] = time.perf_counter() - self._epoch_start
        if self.monitor is not None:
            if self.monitor not in full:
                raise KeyError(
                    f"the monitored metric {self.monitor!r} is not in the recorded row (keys: {sorted(full)})"
                )
            # The value is already global (the task's torchmetrics synced it); sync_dist averages equal
            # numbers and keeps Lightning from warning that epoch-level values should be synced.
            self.log(self.monitor, float(full[self.monitor]), prog_bar=True, logger=False, sync_dist=True)
        self.history.append(full)
        return full

    def check_loss(self, loss: torch.Tensor, batch_idx: int) -> torch.Tensor | None:
        """``loss`` if it is finite. Otherwise raise :class:`NonFiniteLossError` naming the epoch and
        step, or, with ``skip_nonfinite_loss``, count the step and return ``None`` (return that from
        ``training_step``: Lightning then skips the step). Under DDP every process skips together."""
        bad = ~torch.isfinite(loss.detach()).all()
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            bad = trainer.strategy.reduce(bad.float(), reduce_op="sum") > 0
        if not bool(bad):
            return loss
        value = loss.detach().float().sum().item()
        if not self.skip_nonfinite_loss:
            raise NonFiniteLossError(self.current_epoch + 1, self.global_step, batch_idx, value)
        self.skipped_nonfinite_steps += 1
        log.warning(
            "skipped a step with a non-finite loss (%s) at epoch %d, step %d (%d skipped so far)",
            value if not math.isnan(value) else "nan",
            self.current_epoch + 1,
            self.global_step,
            self.skipped_nonfinite_steps,
        )
        return None

    # ------------------------------------------------------------------------------------------
    # engine hooks

    def start_epoch(self) -> None:
        """Reseed torch from (seed, epoch, rank) and start the epoch's clock (called by the engine)."""
        torch.manual_seed(epoch_seed(self.seed, self.current_epoch, self.global_rank))
        self._epoch_start = time.perf_counter()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CKPT_KEY] = {
            **self.info,
            "history": [dict(r) for r in self.history],
            "skipped_nonfinite_steps": self.skipped_nonfinite_steps,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(CKPT_KEY, {})
        self.history = [dict(r) for r in saved.get("history", [])]
        self.skipped_nonfinite_steps = int(saved.get("skipped_nonfinite_steps", 0))
