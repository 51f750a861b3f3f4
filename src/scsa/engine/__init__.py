"""What every task of scsa shares: trainer options, the run folder, checkpoints, resume, metrics, curves.

A task (:mod:`scsa.tasks.classification`, detection, segmentation) is a :class:`TaskModule` (its model,
loss and metrics), a ``LightningDataModule`` and a recipe; :func:`fit` runs it::

    from scsa.engine import TrainerOptions, fit

    result = fit(module, datamodule, out_dir="runs/x", options=TrainerOptions(max_epochs=3),
                 monitor="val_top1", config={"lr": 0.1})

Needs the ``train`` extra (lightning, matplotlib). The engine imports no task.
"""

from scsa.engine.fit import RunResult, fit, resume_path
from scsa.engine.module import CKPT_KEY, NonFiniteLossError, TaskModule, epoch_seed
from scsa.engine.options import TrainerOptions, build_trainer, quiet_lightning, resolve_precision

__all__ = [
    "CKPT_KEY",
    "NonFiniteLossError",
    "RunResult",
    "TaskModule",
    "TrainerOptions",
    "build_trainer",
    "epoch_seed",
    "fit",
    "quiet_lightning",
    "resolve_precision",
    "resume_path",
]
