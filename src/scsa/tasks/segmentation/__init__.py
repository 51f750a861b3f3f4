"""Semantic segmentation with scsa's backbones: smp decoders (UPerNet, FPN, DeepLabV3+, Unet, ...).

SCSA (Si et al., arXiv 2407.05128) reports ADE20K mIoU with UPerNet on ResNet-50. This package
holds the data (ADE20K, Pascal VOC, generic folders, the embedded ``mnistseg``), the model builder,
the metrics, the LightningModule and data module, the recipes, and the train/eval/predict/compare
functions behind ``scsa segment``. Importing it needs neither Lightning nor smp; the submodules that
train (``module``, ``datamodule``, ``run``, ``compare``) do.
"""

from scsa.tasks.segmentation.data import (
    FORMATS,
    IGNORE_INDEX,
    BadSegmentationData,
    read_classes_file,
    scan_ade20k,
    scan_folder,
    scan_layout,
    scan_voc,
)
from scsa.tasks.segmentation.mnistseg import MNISTSEG, MNISTSEG_CLASSES, export_mnistseg, make_mnistseg
from scsa.tasks.segmentation.model import DECODERS, build_segmenter, encoder_name
from scsa.tasks.segmentation.recipes import get_recipe, list_recipes

__all__ = [
    "DECODERS",
    "FORMATS",
    "IGNORE_INDEX",
    "MNISTSEG",
    "MNISTSEG_CLASSES",
    "BadSegmentationData",
    "build_segmenter",
    "encoder_name",
    "export_mnistseg",
    "get_recipe",
    "list_recipes",
    "make_mnistseg",
    "read_classes_file",
    "scan_ade20k",
    "scan_folder",
    "scan_layout",
    "scan_voc",
]
