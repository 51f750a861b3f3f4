"""COCO detection metrics through the reference implementation, and COCO results files.

:class:`DetectionMetrics` wraps torchmetrics' ``MeanAveragePrecision`` with the pycocotools backend (which
runs pycocotools' ``COCOeval``), for boxes and, for Mask R-CNN, masks. :func:`coco_results` writes the
predictions in COCO's results format with the dataset's own category ids, so ``COCOeval`` on that file
and the dataset's annotations gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["METRIC_KEYS", "DetectionMetrics", "coco_results"]

# the keys of every recorded row and of summary.json's best/final (fractions in [0, 1]); "segm_" + key for masks
METRIC_KEYS = (
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
)


def _plain_masks(masks: torch.Tensor) -> torch.Tensor:
    """Model masks (N, 1, H, W) probabilities or dataset masks (N, H, W) as bool (N, H, W)."""
    if masks.ndim == 4:
        masks = masks[:, 0]
    return masks > 0.5 if masks.is_floating_point() else masks.bool()


def coco_results(
    preds: Sequence[Mapping[str, torch.Tensor]],
    image_ids: Sequence[int],
    label_to_cat_id: Mapping[int, int],
    iou_type: str = "bbox",
) -> list[dict[str, Any]]:
    """Detections in COCO results format, one file per ``iou_type`` as the COCO challenge has them:
    ``"bbox"``: ``[{image_id, category_id, bbox [x, y, w, h], score}]``; ``"segm"``: ``segmentation``
    (compressed RLE) instead of ``bbox``, so that ``COCOeval`` ranks the detections by their mask area,
    as torchmetrics does."""
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    out: list[dict[str, Any]] = []
    for pred, image_id in zip(preds, image_ids):
        boxes = pred["boxes"].detach().float().cpu()
        scores = pred["scores"].detach().float().cpu().tolist()
        labels = pred["labels"].detach().cpu().tolist()
        rles = None
        if iou_type == "segm":
            from pycocotools import mask as mask_utils

            m = _plain_masks(pred["masks"].detach().cpu()).numpy().astype(np.uint8)
            rles = mask_utils.encode(np.asfortranarray(m.transpose(1, 2, 0))) if len(m) else []
        for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            item: dict[str, Any] = {
                "image_id": int(image_id),
                "category_id": int(label_to_cat_id[int(labels[i])]),
                # unrounded: a rounded score or box can reorder ties or cross an IoU threshold
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "score": float(scores[i]),
            }
            if rles is not None:
                item["segmentation"] = {
                    "size": list(rles[i]["size"]),
                    "counts": rles[i]["counts"].decode("ascii"),
                }
            out.append(item)
    return out


class DetectionMetrics:
    """COCO mAP/AP50/AP75/APs/m/l and AR@1/10/100 (bbox, and segm with ``masks=True``) plus per-class AP.

    Feed it the model's outputs and the dataset's targets (``boxes`` XYXY, ``labels``, optional ``iscrowd``,
    ``area`` and ``masks``); ``compute()`` returns plain floats keyed as :data:`METRIC_KEYS` (``segm_`` in
    front for masks) and ``per_class`` (class name -> bbox AP; -1 where the class has no ground truth).
    Objects flagged ``iscrowd`` are "ignore" regions, as in ``COCOeval``.

    Every bbox number and the segm mAP, AP50, AP75 and AR equal ``COCOeval``'s on the files of
    :func:`coco_results` (tested). The segm APs/m/l do not always: torchmetrics 1.9 assigns predicted masks
    to the size ranges otherwise than ``COCOeval`` on a segm results file (seen on scenes with false
    positives; the cause is inside torchmetrics and not pinned down), so for the mask size ranges run
    ``COCOeval`` on ``predictions_val_segm.json``.
    """

    def __init__(self, masks: bool = False, classes: Sequence[str] | None = None, sync: bool = True) -> None:
        from torchmetrics.detection import MeanAveragePrecision

        self.masks = masks
        self.classes = list(classes) if classes is not None else None
        self.metric = MeanAveragePrecision(
            box_format="xyxy",
            iou_type=("bbox", "segm") if masks else "bbox",
            backend="pycocotools",
            class_metrics=True,
            sync_on_compute=sync,
            # COCOeval's own thresholds (float64): torchmetrics' defaults come from a float32 linspace, and a
            # recall of exactly 0.58 then falls on the other side of its threshold 0.5799999833
            iou_thresholds=np.linspace(0.5, 0.95, 10).tolist(),
            rec_thresholds=np.linspace(0.0, 1.0, 101).tolist(),
        )

    def to(self, device: torch.device | str) -> DetectionMetrics:
        self.metric = self.metric.to(device)
        return self

    def update(
        self, preds: Sequence[Mapping[str, torch.Tensor]], targets: Sequence[Mapping[str, Any]]
    ) -> None:
        p, t = [], []
        for pred, target in zip(preds, targets):
            item = {
                "boxes": pred["boxes"].detach(),
                "scores": pred["scores"].detach(),
                "labels": pred["labels"],
            }
            gt = {"boxes": torch.as_tensor(target["boxes"]).detach(), "labels": target["labels"]}
            for key in ("iscrowd", "area"):
                if key in target:
                    gt[key] = target[key]
            if self.masks:
                item["masks"] = _plain_masks(pred["masks"].detach())
                gt["masks"] = _plain_masks(torch.as_tensor(target["masks"]))
            p.append(item)
            t.append(gt)
        self.metric.update(p, t)

    def reset(self) -> None:
        self.metric.reset()

    def compute(self) -> dict[str, Any]:
        raw = self.metric.compute()
        out: dict[str, Any] = {}
        for prefix, name in (("", "bbox"), ("segm_", "segm")) if self.masks else (("", ""),):
            for key in METRIC_KEYS:
                value = raw[f"{name}_{key}" if name else key]
                out[prefix + key] = float(value)
        per_class = raw["bbox_map_per_class" if self.masks else "map_per_class"].flatten().tolist()
        labels = raw["classes"].flatten().tolist()
        names = self.classes
        out["per_class"] = {
            (names[int(c) - 1] if names and 1 <= int(c) <= len(names) else str(int(c))): float(v)
            for c, v in zip(labels, per_class)
        }
        return out
