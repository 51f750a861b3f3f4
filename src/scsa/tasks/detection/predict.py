"""Detections of a trained checkpoint on image files, drawn with torchvision's drawing utilities."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from scsa.io import atomic_write, write_json
from scsa.tasks.detection.data.formats import read_image
from scsa.tasks.detection.train import load_detector

__all__ = ["draw_detections", "predict_images"]


def draw_detections(
    image: torch.Tensor, detections: dict[str, torch.Tensor], classes: Sequence[str], scale: int = 1
) -> torch.Tensor:
    """``image`` (uint8 (3, H, W)) with boxes, ``class score`` labels and (where present) masks drawn;
    ``scale`` enlarges small images first (nearest), so that labels stay readable."""
    from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

    boxes = detections["boxes"].float()
    if scale > 1:
        image = torch.nn.functional.interpolate(image[None].float(), scale_factor=scale, mode="nearest")[0]
        image = image.round().clamp(0, 255).to(torch.uint8)
        boxes = boxes * scale
    if "masks" in detections and len(boxes):
        masks = (
            detections["masks"][:, 0] > 0.5 if detections["masks"].ndim == 4 else detections["masks"].bool()
        )
        if scale > 1:
            masks = torch.nn.functional.interpolate(masks[None].float(), scale_factor=scale)[0] > 0.5
        image = draw_segmentation_masks(image, masks, alpha=0.45)
    labels = [
        f"{classes[int(c) - 1]} {float(s):.2f}" for c, s in zip(detections["labels"], detections["scores"])
    ]
    return draw_bounding_boxes(image, boxes, labels, colors="yellow", width=max(scale, 1))


@torch.no_grad()
def predict_images(
    checkpoint: str | Path,
    images: Sequence[str | Path],
    out_dir: str | Path,
    *,
    score_thresh: float = 0.5,
    device: str = "cpu",
    scale: int | None = None,
) -> list[dict[str, Any]]:
    """Run the checkpoint's detector on each image file, write ``<stem>.png`` with the detections drawn
    and ``detections.json`` (per image: file, and boxes XYXY in pixels, class, category id, score)."""
    from torchvision.io import encode_png

    if not images:
        raise ValueError("no images given")
    model, info = load_detector(checkpoint, device)
    classes, cat_ids = info["classes"], info["cat_ids"]
    out_dir = Path(out_dir)
    report = []
    for path in images:
        image = read_image(path)
        pred = model([image.to(device).float() / 255])[0]
        keep = pred["scores"] >= score_thresh
        pred = {k: v[keep].cpu() for k, v in pred.items()}
        s = scale or max(1, 256 // max(image.shape[-2:]))
        png = encode_png(draw_detections(image, pred, classes, s)).numpy().tobytes()
        atomic_write(out_dir / f"{Path(path).stem}.png", lambda f, data=png: f.write(data))
        report.append(
            {
                "file": str(path),
                "detections": [
                    {
                        "box_xyxy": [round(v, 2) for v in box],
                        "class": classes[int(c) - 1],
                        "category_id": int(cat_ids[int(c) - 1]),
                        "score": round(float(sc), 4),
                    }
                    for box, c, sc in zip(pred["boxes"].tolist(), pred["labels"], pred["scores"])
                ],
            }
        )
    write_json(out_dir / "detections.json", report)
    return report
