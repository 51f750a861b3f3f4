"""``build_detector``: torchvision's Faster R-CNN, RetinaNet, FCOS and Mask R-CNN on scsa's backbones.

The FPN is torchvision's, built the way torchvision builds it for each detector: ResNets through
``_resnet_fpn_extractor`` on stages 2-5 with P6 by max-pool (Faster/Mask R-CNN) or on stages 3-5 with
P6/P7 (RetinaNet, FCOS), MobileNetV2 through ``_mobilenet_extractor``; frozen BatchNorm and
``trainable_layers`` as torchvision's (3: stem and stage 1 frozen).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from typing import Any

from torch import nn

__all__ = ["DETECTORS", "NORM_LAYERS", "build_detector", "detector_info"]

DETECTORS = ("fasterrcnn", "retinanet", "fcos", "maskrcnn")


def _norm_layers() -> dict[str, type[nn.Module]]:
    from torchvision.ops import FrozenBatchNorm2d

    return {"frozen_bn": FrozenBatchNorm2d, "bn": nn.BatchNorm2d}


NORM_LAYERS = ("frozen_bn", "bn")


def _norm_name(norm_layer: str | type[nn.Module] | None) -> str:
    if norm_layer is None:
        return "frozen_bn"
    if isinstance(norm_layer, str):
        if norm_layer not in NORM_LAYERS:
            raise ValueError(f"norm_layer must be one of {', '.join(NORM_LAYERS)}, got {norm_layer!r}")
        return norm_layer
    for name, cls in _norm_layers().items():
        if norm_layer is cls:
            return name
    raise ValueError(
        f"norm_layer must be FrozenBatchNorm2d or BatchNorm2d (or their names), got {norm_layer!r}"
    )


def _freeze_bn(module: nn.Module) -> nn.Module:
    """Every BatchNorm2d of ``module`` replaced by a FrozenBatchNorm2d holding its statistics and affine."""
    from torchvision.ops import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            _freeze_bn(child)
    return module


def _backbone(
    backbone: str, attention: str, norm: str, weights: str | os.PathLike | None, attention_kwargs: dict | None
) -> nn.Module:
    import scsa
    from scsa.models import ResNet, load_checkpoint

    kwargs: dict[str, Any] = {"num_classes": 0, "attention": attention, "attention_kwargs": attention_kwargs}
    arch = scsa.models.parse_model_name(backbone)[0]
    cls = ResNet if arch != "mobilenet_v2" else scsa.models.MobileNetV2
    takes_norm = "norm_layer" in inspect.signature(cls.__init__).parameters
    if takes_norm and norm == "frozen_bn" and weights is None:
        kwargs["norm_layer"] = _norm_layers()[norm]
    model = scsa.create_model(backbone, **kwargs)
    if weights is not None:
        # into BatchNorm first: a classification checkpoint carries running statistics to freeze
        load_checkpoint(model, weights)
    if norm == "frozen_bn" and "norm_layer" not in kwargs:
        _freeze_bn(model)
    return model


def _fpn_extractors():
    # torchvision's own FPN builders (private names, hence through scsa._compat): what its *_fpn
    # constructors call, so our backbones get exactly torchvision's FPN
    from scsa._compat import torchvision_fpn_extractors

    return torchvision_fpn_extractors()


def _anchor_generator(detector: str, base: int, levels: int):
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    sizes = [base * 2**i for i in range(levels)]
    if detector == "retinanet":  # three octave scales per level, as torchvision's RetinaNet
        return AnchorGenerator(
            tuple((s, int(s * 2 ** (1 / 3)), int(s * 2 ** (2 / 3))) for s in sizes),
            ((0.5, 1.0, 2.0),) * levels,
        )
    if detector == "fcos":  # one location per pixel; the size only scales the regression targets
        return AnchorGenerator(tuple((s,) for s in sizes), ((1.0,),) * levels)
    return AnchorGenerator(tuple((s,) for s in sizes), ((0.5, 1.0, 2.0),) * levels)


def build_detector(
    detector: str = "fasterrcnn",
    backbone: str = "resnet50",
    attention: str = "scsa",
    num_classes: int = 91,
    *,
    trainable_layers: int = 3,
    norm_layer: str | type[nn.Module] | None = "frozen_bn",
    min_size: int | Sequence[int] = 800,
    max_size: int = 1333,
    backbone_weights: str | os.PathLike | None = None,
    anchor_base: int | None = None,
    box_head_dim: int | None = None,
    roi_sampling_ratio: int | None = None,
    attention_kwargs: dict | None = None,
    **detector_kwargs: Any,
) -> nn.Module:
    """A torchvision detector on ``backbone`` with ``attention`` in every block.

    Args:
        detector: ``fasterrcnn``, ``retinanet``, ``fcos`` or ``maskrcnn``.
        backbone: ``resnet18/34/50/101/152``, ``resnext50_32x4d`` or ``mobilenet_v2`` (a prefixed name such
            as ``scsa_resnet50`` works too, and then ``attention`` must agree or be ``"none"``).
        attention: a zoo name (``scsa``, ``se``, ``none``, ...).
        num_classes: classes including the background (label 0), as torchvision counts them; the same
            count for every detector, so a label means the same class in all four.
        trainable_layers: backbone stages that train (0-5 for ResNets; 3 freezes the stem and stage 1).
        norm_layer: ``"frozen_bn"`` (FrozenBatchNorm2d, torchvision's and MMDetection's default for a
            pre-trained backbone) or ``"bn"`` (trainable BatchNorm, for a backbone trained from scratch).
        min_size, max_size: torchvision's resize of every input (shorter side to ``min_size``, longer at
            most ``max_size``).
        backbone_weights: a local file: an ``scsa classify train`` checkpoint, a torchvision ResNet state
            dict or an MMPretrain checkpoint (``scsa.models.load_checkpoint`` tells them apart). ``None``:
            random initialisation. Nothing is downloaded.
        anchor_base: the anchor size of the finest level (doubling per level); ``None`` keeps torchvision's
            (32 for Faster/Mask R-CNN and RetinaNet, 8 for FCOS). Small images want smaller anchors.
        box_head_dim: width of the two-layer box head of Faster/Mask R-CNN (and of Mask R-CNN's four mask
            convs); ``None`` keeps torchvision's (1024, and 256 for masks). Small images want less.
        roi_sampling_ratio: RoIAlign's samples per bin side in the box head of Faster/Mask R-CNN (torchvision:
            2); 1 quarters RoIAlign's cost, which dominates a CPU training step on small images.
        attention_kwargs: keyword arguments of every attention block.
        **detector_kwargs: passed to the torchvision detector class (``box_score_thresh``,
            ``box_nms_thresh``, ``rpn_post_nms_top_n_test``, ``score_thresh``, ``nms_thresh``,
            ``detections_per_img``, ``rpn_anchor_generator``, ...).

    Example:
        >>> model = build_detector("retinanet", "resnet18", "scsa", num_classes=11, min_size=128, max_size=128)
    """
    from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

    mobilenet_fpn_extractor, resnet_fpn_extractor = _fpn_extractors()
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes counts the background too and must be >= 2, got {num_classes!r}")
    norm = _norm_name(norm_layer)
    body = _backbone(backbone, attention, norm, backbone_weights, attention_kwargs)
    one_stage = detector in ("retinanet", "fcos")
    extra = LastLevelP6P7(256, 256) if one_stage else LastLevelMaxPool()
    if hasattr(body, "features"):  # MobileNetV2
        for i, block in enumerate(body.features):
            # torchvision's extractor finds the stages by these attributes of its own blocks
            block._is_cn = getattr(block, "stride", 1) > 1 and i > 0
            if not hasattr(block, "out_channels"):
                block.out_channels = next(
                    m for m in reversed(list(block.modules())) if isinstance(m, nn.Conv2d)
                ).out_channels
        n_stages = 2 + sum(bool(b._is_cn) for b in body.features)
        returned = [n_stages - 3, n_stages - 2, n_stages - 1] if one_stage else [n_stages - 2, n_stages - 1]
        if not 0 <= trainable_layers <= n_stages:
            raise ValueError(
                f"trainable_layers must be in 0..{n_stages} for {backbone}, got {trainable_layers}"
            )
        fpn = mobilenet_fpn_extractor(
            body, True, trainable_layers, returned_layers=returned, extra_blocks=extra
        )
        levels = len(returned) + (2 if one_stage else 1)
        if anchor_base is None and not one_stage and "rpn_anchor_generator" not in detector_kwargs:
            # torchvision's mobilenet Faster R-CNN: all five sizes on each of its few levels
            from torchvision.models.detection.anchor_utils import AnchorGenerator

            detector_kwargs["rpn_anchor_generator"] = AnchorGenerator(
                ((32, 64, 128, 256, 512),) * levels, ((0.5, 1.0, 2.0),) * levels
            )
    else:
        if not hasattr(body, "inplanes"):  # channels of layer4's output, which the extractor reads
            body.inplanes = body.num_features
        if not 0 <= trainable_layers <= 5:
            raise ValueError(f"trainable_layers must be in 0..5, got {trainable_layers}")
        returned = [2, 3, 4] if one_stage else [1, 2, 3, 4]
        fpn = resnet_fpn_extractor(body, trainable_layers, returned_layers=returned, extra_blocks=extra)
        levels = 5
    if anchor_base is not None:
        key = "rpn_anchor_generator" if not one_stage else "anchor_generator"
        detector_kwargs.setdefault(key, _anchor_generator(detector, int(anchor_base), levels))
    elif detector == "fcos":
        detector_kwargs.setdefault("anchor_generator", _anchor_generator("fcos", 8, levels))
    elif detector == "retinanet" and levels != 5:
        detector_kwargs.setdefault("anchor_generator", _anchor_generator("retinanet", 32, levels))
    if box_head_dim is not None and not one_stage:
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
        from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

        d = int(box_head_dim)
        detector_kwargs.setdefault("box_head", TwoMLPHead(fpn.out_channels * 7 * 7, d))
        detector_kwargs.setdefault("box_predictor", FastRCNNPredictor(d, num_classes))
        num_classes = None  # torchvision refuses num_classes next to a box_predictor
        if detector == "maskrcnn":
            detector_kwargs.setdefault("mask_head", MaskRCNNHeads(fpn.out_channels, (d,) * 4, 1))
            detector_kwargs.setdefault(
                "mask_predictor",
                MaskRCNNPredictor(d, d, detector_kwargs["box_predictor"].cls_score.out_features),
            )
    if roi_sampling_ratio is not None and not one_stage:
        from torchvision.ops import MultiScaleRoIAlign

        names = ["0", "1", "2", "3"] if levels == 5 else [str(i) for i in range(levels - 1)]
        detector_kwargs.setdefault("box_roi_pool", MultiScaleRoIAlign(names, 7, int(roi_sampling_ratio)))
    cls = {"fasterrcnn": FasterRCNN, "maskrcnn": MaskRCNN, "retinanet": RetinaNet, "fcos": FCOS}[detector]
    return cls(fpn, num_classes=num_classes, min_size=min_size, max_size=max_size, **detector_kwargs)


def detector_info(**spec: Any) -> dict[str, Any]:
    """The plain-types record of a :func:`build_detector` call, stored in checkpoints to rebuild the model."""
    out = {}
    for k, v in spec.items():
        if isinstance(v, type):
            v = _norm_name(v)
        elif isinstance(v, os.PathLike):
            v = os.fspath(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = v
    return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def rebuild_detector(info: dict[str, Any]) -> nn.Module:
    """The detector described by ``info["model"]`` (from :func:`detector_info`), without its weights file."""
    spec = dict(info["model"])
    spec["backbone_weights"] = None  # the checkpoint holds every weight; the original file may be gone
    return build_detector(**spec)
