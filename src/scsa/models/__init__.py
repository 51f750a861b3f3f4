"""The backbones of the SCSA paper with any attention of the zoo, surgery, weights, timm registration.

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
https://arxiv.org/abs/2407.05128.

* :func:`create_model` / :func:`list_models`: ``resnet18/34/50/101/152``, ``resnext50_32x4d``,
  ``mobilenet_v2`` with an attention in every block (``scsa_resnet50``, ``se_resnet50``, ...).
* :func:`insert_attention`: the same blocks put into torchvision's or timm's models.
* :func:`load_checkpoint`, :func:`load_torchvision_weights`, :func:`load_mmpretrain_weights`.
* Importing this package registers the shortcut names in timm (:func:`register_timm_models`).
"""

from scsa.models._timm import register_timm_models
from scsa.models.factory import ARCHS, create_model, list_models, parse_model_name
from scsa.models.mobilenetv2 import InvertedResidual, MobileNetV2
from scsa.models.resnet import BasicBlock, Bottleneck, ResNet
from scsa.models.surgery import insert_attention
from scsa.models.weights import (
    LoadReport,
    convert_mmpretrain,
    load_checkpoint,
    load_mmpretrain_weights,
    load_torchvision_weights,
    read_checkpoint,
)

__all__ = [
    "ARCHS",
    "BasicBlock",
    "Bottleneck",
    "InvertedResidual",
    "LoadReport",
    "MobileNetV2",
    "ResNet",
    "convert_mmpretrain",
    "create_model",
    "insert_attention",
    "list_models",
    "load_checkpoint",
    "load_mmpretrain_weights",
    "load_torchvision_weights",
    "parse_model_name",
    "read_checkpoint",
    "register_timm_models",
]
