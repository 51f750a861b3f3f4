"""Object detection with SCSA (Si et al., https://arxiv.org/abs/2407.05128) and the zoo: torchvision's
Faster R-CNN, RetinaNet, FCOS and Mask R-CNN on scsa's backbones, COCO/VOC/YOLO data, COCO metrics.

* :mod:`~scsa.tasks.detection.mnistdet`, :mod:`~scsa.tasks.detection.data`: the embedded ``mnistdet``
  scenes, ``export_mnistdet`` and the COCO / VOC / YOLO readers (no Lightning needed).
* :func:`scsa.tasks.detection.model.build_detector`: the detectors.
* :mod:`~scsa.tasks.detection.metrics`: COCO mAP through torchmetrics / pycocotools, results files.
* :mod:`~scsa.tasks.detection.module`, :mod:`~scsa.tasks.detection.train`: the LightningModule, the data
  module, ``train_detector`` / ``evaluate_detector`` / ``load_detector``; ``predict``, ``compare``.

Submodules are imported where used, so importing the data needs neither Lightning nor ultralytics.
"""
