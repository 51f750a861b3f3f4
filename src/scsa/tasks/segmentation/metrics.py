"""mIoU, mAcc and aAcc as MMSegmentation reports them, accumulated by torchmetrics' confusion matrix.

For class ``c`` with ``TP``, ``FP``, ``FN`` counted over every labelled pixel of the data set (pixels
with the ignore index are left out): IoU = TP / (TP + FP + FN), Acc = TP / (TP + FN). mIoU and
mAcc average over the classes that occur in the labels or the predictions (a class with no pixel
either way has no IoU, NaN, and is left out of the mean, as MMSegmentation's ``nanmean``); aAcc is
the fraction of labelled pixels predicted right. All are fractions in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric
from torchmetrics.classification import MulticlassConfusionMatrix

from scsa.tasks.segmentation.data import IGNORE_INDEX

__all__ = ["SegmentationMetrics", "scores_from_confusion"]


def scores_from_confusion(confusion: torch.Tensor, class_names: Sequence[str] | None = None) -> dict:
    """``{"miou", "macc", "aacc", "per_class_iou": {name: iou}, "per_class_acc": {...}}`` of a confusion
    matrix (rows: true class, columns: predicted). Classes without an IoU map to ``None``."""
    cm = confusion.double()
    tp = cm.diag()
    true = cm.sum(1)
    pred = cm.sum(0)
    union = true + pred - tp
    iou = tp / union  # 0/0 -> nan: the class is nowhere
    acc = tp / true
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(tp))]
    total = cm.sum()

    def mean(x: torch.Tensor) -> float:
        ok = ~torch.isnan(x)
        return float(x[ok].mean()) if ok.any() else float("nan")

    def table(x: torch.Tensor) -> dict:
        return {n: (None if torch.isnan(v) else float(v)) for n, v in zip(names, x)}

    return {
        "miou": mean(iou),
        "macc": mean(acc),
        "aacc": float(tp.sum() / total) if total > 0 else float("nan"),
        "per_class_iou": table(iou),
        "per_class_acc": table(acc),
    }


class SegmentationMetrics(Metric):
    """torchmetrics ``Metric``: ``update(preds (B, H, W) labels or (B, K, H, W) logits, target (B, H, W))``,
    ``compute() -> dict`` of :func:`scores_from_confusion`. Synchronises across processes (DDP)."""

    full_state_update = False

    def __init__(
        self, num_classes: int, class_names: Sequence[str] | None = None, ignore_index: int = IGNORE_INDEX
    ) -> None:
        super().__init__()
        self.class_names = list(class_names) if class_names is not None else None
        self.confusion = MulticlassConfusionMatrix(
            num_classes, ignore_index=ignore_index, validate_args=False
        )

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.ndim == target.ndim + 1:
            preds = preds.argmax(1)
        self.confusion.update(preds.flatten(), target.flatten())

    def compute(self) -> dict:
        return scores_from_confusion(self.confusion.compute(), self.class_names)

    def reset(self) -> None:
        super().reset()
        self.confusion.reset()
