"""Detection data: the embedded ``mnistdet`` scenes, their export, and readers of COCO, Pascal VOC and YOLO.

Importing this package needs torch, torchvision and numpy only (no Lightning, no ultralytics).
"""

from scsa.tasks.detection.data.export import export_mnistdet

__all__ = ["export_mnistdet"]
