"""``SegmentationModule``: an smp segmenter, its loss and its metrics as one LightningModule.

The UPerNet setting of SCSA (arXiv 2407.05128) as MMSegmentation trains it: pixel-wise cross-entropy
with the ignore index 255, plus 0.4 × the auxiliary FCN head's loss when the model has one; SGD with
poly decay stepped every iteration. Validation predicts each image at its (test-scale) size, whole
or by sliding windows, brings the logits back to the mask's original size and accumulates one
confusion matrix (:class:`~scsa.tasks.segmentation.metrics.SegmentationMetrics`).

Each validation records ``train_loss``, ``val_loss`` (of the main head, at the original size),
``val_miou`` (the monitored key), and ``miou``, ``macc``, ``aacc``, ``per_class_iou`` (the output
contract of ``summary.json``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from scsa.engine import TaskModule, epoch_seed
from scsa.tasks.segmentation.data import IGNORE_INDEX
from scsa.tasks.segmentation.metrics import SegmentationMetrics
from scsa.tasks.segmentation.model import segmenter_from_spec
from scsa.tasks.segmentation.recipes import SegRecipe, poly_factor
from scsa.tasks.segmentation.transforms import infer_logits

__all__ = ["SegmentationModule"]


class SegmentationModule(TaskModule):
    """Train and validate a :class:`~scsa.tasks.segmentation.model.Segmenter`.

    Args:
        model_spec: :func:`~scsa.tasks.segmentation.model.build_segmenter` arguments (``Segmenter.spec``).
        classes: class names (their number is the model's output).
        recipe: the schedule (lr for ``recipe.base_batch``, poly decay, aux weight, inference).
        global_batch: images per optimizer step over all processes and accumulation (scales the lr).
        model: an already built model (weights loaded); default: built from ``model_spec``.
    """

    def __init__(
        self,
        model_spec: dict[str, Any],
        classes: list[str] | tuple[str, ...],
        recipe: SegRecipe,
        global_batch: int | None = None,
        seed: int = 0,
        model: torch.nn.Module | None = None,
        extra_info: dict[str, Any] | None = None,
    ) -> None:
        self.recipe = recipe
        self.global_batch = global_batch or recipe.batch_size
        info = {
            "task": "segment",
            "model": dict(model_spec),
            "classes": list(classes),
            "recipe": recipe.to_dict(),
            "global_batch": self.global_batch,
            **(extra_info or {}),
        }
        super().__init__(info=info, seed=seed)
        self.model = model if model is not None else segmenter_from_spec(model_spec)
        self.classes = list(classes)
        self.val_metrics = SegmentationMetrics(len(self.classes), self.classes)
        self._train_loss = [0.0, 0]
        self._val_loss = [0.0, 0]
        self._dice = None
        if recipe.dice_weight:
            import segmentation_models_pytorch as smp

            # the strokes of a digit are a few % of the pixels: Dice weighs each class by its own
            # overlap, so the rare classes pull as hard as the background
            self._dice = smp.losses.DiceLoss("multiclass", ignore_index=IGNORE_INDEX)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    # ------------------------------------------------------------------------------------------
    # training

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Dropout (FPN's, the auxiliary head's) draws from torch's generator, which the data loader
        # also draws from when it starts; seeding each step from (seed, step, rank) keeps a resumed
        # run on the same draws as the uninterrupted one.
        torch.manual_seed(epoch_seed(self.seed, self.global_step, self.global_rank))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        images, labels = batch
        logits, aux = self.model.forward_train(images)
        loss = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
        if self.recipe.dice_weight:
            loss = loss + self.recipe.dice_weight * self._dice(logits, labels)
        if aux is not None:
            loss = loss + self.recipe.aux_weight * F.cross_entropy(aux, labels, ignore_index=IGNORE_INDEX)
        loss = self.check_loss(loss, batch_idx)
        if loss is None:
            return None
        self._train_loss[0] += float(loss.detach())
        self._train_loss[1] += 1
        return loss

    def configure_optimizers(self):
        lr = self.recipe.scaled_lr(self.global_batch)
        name = self.recipe.optimizer.lower()
        if name == "sgd":
            optimizer = torch.optim.SGD(
                self.model.parameters(),
                lr=lr,
                momentum=self.recipe.momentum,
                weight_decay=self.recipe.weight_decay,
            )
        elif name == "adamw":
            optimizer = torch.optim.AdamW(
                self.model.parameters(), lr=lr, weight_decay=self.recipe.weight_decay
            )
        else:
            raise ValueError(f"recipe optimizer must be 'sgd' or 'adamw', got {self.recipe.optimizer!r}")
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: poly_factor(step, self.recipe, lr)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------------------------------
    # evaluation

    def predict_logits(self, batch: dict) -> list[torch.Tensor]:
        """Per image, logits ``(K, H, W)`` at its mask's (original) size."""
        r = self.recipe
        images = batch["image"]
        sizes, mask_sizes = batch["image_size"], batch["mask_size"]
        kwargs = dict(mode=r.inference, crop_size=r.crop_size)
        if len(set(sizes)) == 1 and sizes == mask_sizes and sizes[0] == tuple(images.shape[-2:]):
            return list(infer_logits(self.model, images, **kwargs))  # one batch, nothing to resize
        out = []
        for img, (h, w), (mh, mw) in zip(images, sizes, mask_sizes):
            logits = infer_logits(self.model, img[None, :, :h, :w], **kwargs)
            if (h, w) != (mh, mw):
                logits = F.interpolate(logits, size=(mh, mw), mode="bilinear", align_corners=False)
            out.append(logits[0])
        return out

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        for logits, mask, (mh, mw) in zip(self.predict_logits(batch), batch["mask"], batch["mask_size"]):
            target = mask[:mh, :mw]
            self.val_metrics.update(logits[None], target[None])
            if (target != IGNORE_INDEX).any():
                self._val_loss[0] += float(
                    F.cross_entropy(logits[None], target[None], ignore_index=IGNORE_INDEX)
                )
                self._val_loss[1] += 1

    def on_train_epoch_start(self) -> None:
        self._train_loss = [0.0, 0]

    def on_validation_epoch_start(self) -> None:
        self._val_loss = [0.0, 0]
        self.val_metrics.reset()

    def on_validation_epoch_end(self) -> None:
        scores = self.val_metrics.compute()
        self.val_metrics.reset()
        loss_sum, loss_n = self._val_loss
        if self.trainer is not None and self.trainer.world_size > 1:
            t = self.trainer.strategy.reduce(
                torch.tensor([loss_sum, loss_n], device=self.device), reduce_op="sum"
            )
            loss_sum, loss_n = float(t[0]), int(t[1])
        train_sum, train_n = self._train_loss
        self.record(
            {
                "train_loss": train_sum / train_n if train_n else float("nan"),
                "val_loss": loss_sum / loss_n if loss_n else float("nan"),
                "val_miou": scores["miou"],
                "miou": scores["miou"],
                "macc": scores["macc"],
                "aacc": scores["aacc"],
                "per_class_iou": scores["per_class_iou"],
            }
        )
