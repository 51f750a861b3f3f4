"""The LightningModule that trains and evaluates an image classifier with top-1/top-5 metrics.

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
Neurocomputing 2025, https://arxiv.org/abs/2407.05128 — report cross-entropy training with top-1 and
top-5 accuracy; this module does that for any backbone of :mod:`scsa.models`.

All metrics are torchmetrics objects, so under DDP they are summed over processes before they are
computed: the numbers of an N-process run are those of the whole dataset, not of rank 0's share.
One row per epoch goes to ``history`` through :meth:`scsa.engine.TaskModule.record` (saved in every
checkpoint, so a resumed run keeps its rows).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, Metric, SumMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from scsa.engine import CKPT_KEY, TaskModule
from scsa.tasks.classification.recipes import Recipe, lr_factor

__all__ = ["CKPT_KEY", "ImageClassifier"]


class ImageClassifier(TaskModule):
    """Cross-entropy training of ``model`` with SGD/AdamW and the recipe's schedule; top-1/top-5 metrics.

    The engine of the SCSA comparisons (Si et al., https://arxiv.org/abs/2407.05128). ``info`` is
    stored in every checkpoint under ``"scsa"`` (model spec, classes, data preprocessing) so that
    :func:`scsa.tasks.classification.evaluate` can rebuild the model without the training command line.
    Monitored metric: ``val_top1``.
    """

    def __init__(
        self,
        model: nn.Module,
        recipe: Recipe,
        num_classes: int,
        *,
        seed: int = 0,
        channels_last: bool = False,
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(info=info, seed=seed)
        self.model = model
        self.recipe = recipe
        self.num_classes = num_classes
        self.channels_last = channels_last
        top5 = min(5, num_classes)
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.val_images = SumMetric()
        self.train_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_top5 = MulticlassAccuracy(num_classes, top_k=top5, average="micro")
        self.test_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.test_top5 = MulticlassAccuracy(num_classes, top_k=top5, average="micro")
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.test_results: dict[str, Any] = {}

    def setup(self, stage: str) -> None:
        # Fresh metric states in every process: under ddp_spawn the module reaches the workers through
        # shared memory, and Lightning unshares parameters and buffers but not torchmetrics states, so
        # the ranks would otherwise add into one and the same tensor.
        for m in self.modules():
            if isinstance(m, Metric):
                m.reset()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    # ------------------------------------------------------------------------------------------
    # optimisation

    def configure_optimizers(self) -> dict[str, Any]:
        r = self.recipe
        lr = r.lr_for(r.batch_size)
        if r.optimizer == "sgd":
            opt = torch.optim.SGD(
                self.model.parameters(),
                lr=lr,
                momentum=r.momentum,
                nesterov=r.nesterov and r.momentum > 0,
                weight_decay=r.weight_decay,
            )
        else:
            opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=r.weight_decay)
        # The schedule is a function of the fractional epoch, stepped every batch, so it is the same
        # whatever the batch count per epoch (and a resumed run continues it from its step counter).
        dm = getattr(self.trainer, "datamodule", None)
        if hasattr(dm, "steps_per_epoch"):
            steps_per_epoch = float(dm.steps_per_epoch())
        else:
            steps_per_epoch = max(1.0, self.trainer.estimated_stepping_batches / self.trainer.max_epochs)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(r, step / steps_per_epoch))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        x, y = batch
        logits = self(x)
        loss = self.check_loss(
            F.cross_entropy(logits, y, label_smoothing=self.recipe.label_smoothing), batch_idx
        )
        if loss is None:  # a non-finite loss, skipped (skip_nonfinite_loss)
            return None
        self.train_loss.update(loss.detach(), weight=y.numel())
        self.train_top1.update(logits.detach(), y)
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False, logger=False)
        return loss

    # ------------------------------------------------------------------------------------------
    # validation: one history row per epoch

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x).float()
        self.val_loss.update(F.cross_entropy(logits, y), weight=y.numel())
        self.val_images.update(y.numel())
        self.val_top1.update(logits, y)
        self.val_top5.update(logits, y)

    def on_validation_epoch_end(self) -> None:
        metrics = (self.val_loss, self.val_top1, self.val_top5, self.val_images)
        if self.trainer.sanity_checking:
            for m in metrics:
                m.reset()
            return
        row: dict[str, float] = {}
        if self.train_loss.update_called:
            row["train_loss"] = self.train_loss.compute().item()
            row["train_top1"] = 100.0 * self.train_top1.compute().item()
            self.train_loss.reset()
            self.train_top1.reset()
        row["val_loss"] = self.val_loss.compute().item()
        row["val_top1"] = 100.0 * self.val_top1.compute().item()
        row["val_top5"] = 100.0 * self.val_top5.compute().item()
        row["val_images"] = int(self.val_images.compute().item())
        for m in metrics:
            m.reset()
        self.record(row)

    # ------------------------------------------------------------------------------------------
    # test: used by scsa.tasks.classification.evaluate

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x).float()
        self.test_loss.update(F.cross_entropy(logits, y), weight=y.numel())
        self.test_top1.update(logits, y)
        self.test_top5.update(logits, y)
        self.test_confusion.update(logits, y)

    def on_test_epoch_end(self) -> None:
        confusion = self.test_confusion.compute().cpu()
        self.test_results = {
            "loss": self.test_loss.compute().item(),
            "top1": 100.0 * self.test_top1.compute().item(),
            "top5": 100.0 * self.test_top5.compute().item(),
            "images": int(confusion.sum()),
            "confusion": confusion.tolist(),
        }
        for m in (self.test_loss, self.test_top1, self.test_top5, self.test_confusion):
            m.reset()
