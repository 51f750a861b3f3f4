"""``build_segmenter``: an smp decoder (UPerNet, FPN, DeepLabV3+, Unet, ...) on any scsa backbone × attention.

SCSA (Si et al., arXiv 2407.05128) reports ADE20K with UPerNet on ResNet-50. The decoders are
segmentation_models_pytorch's, unchanged; the encoder is smp's ``tu-<name>`` timm encoder on our
backbone as ``import scsa`` registers it in timm (``tu-scsa_resnet50``). The one head written here is
MMSegmentation's auxiliary FCN head (one 3×3 conv, BN, ReLU, dropout 0.1, 1×1 conv on stage 4, the
stride-16 features), whose loss weighs 0.4 in their UPerNet configs; smp has no such head.

A plain backbone (``attention="none"``) is our ``none_<arch>`` if timm knows that name, otherwise
timm's own architecture of the same name: timm's ResNets have the same layers, parameter count and
state-dict keys as ours (checked in the tests), so the same weights load into both.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
from torch import nn

__all__ = ["DECODERS", "SINGLE_WIDTH", "Segmenter", "build_segmenter", "encoder_name", "segmenter_from_spec"]

# the smp architectures that take a 5-stage CNN encoder and give logits at the input size
DECODERS: dict[str, str] = {
    "upernet": "upernet",
    "fpn": "fpn",
    "deeplabv3plus": "deeplabv3plus",
    "deeplabv3": "deeplabv3",
    "unet": "unet",
    "unetplusplus": "unetplusplus",
    "pspnet": "pspnet",
    "linknet": "linknet",
    "manet": "manet",
    "pan": "pan",
}
# decoders whose width is one number (``decoder_channels``); the others take smp's own arguments
SINGLE_WIDTH = ("upernet", "fpn", "deeplabv3plus", "deeplabv3", "pspnet")
# decoders that fix the encoder's output stride through their own argument
_OS_ARG = {
    "deeplabv3plus": "encoder_output_stride",
    "deeplabv3": "encoder_output_stride",
    "pan": "encoder_output_stride",
}


def encoder_name(backbone: str, attention: str = "scsa") -> str:
    """The timm model name of ``backbone`` with ``attention`` (``scsa_resnet50``; see the module docstring)."""
    import timm

    import scsa  # registers our backbones in timm

    arch, named = scsa.models.parse_model_name(backbone)
    if named is not None:
        if attention not in (None, named, "scsa") and attention != named:
            raise ValueError(
                f"backbone {backbone!r} already names the attention {named!r}, got attention={attention!r}"
            )
        attention = named
    attention = attention or "none"
    if attention == "none":
        for name in (f"none_{arch}", arch):
            if timm.is_model(name):
                return name
        raise ValueError(
            f"no plain {arch!r} reachable through timm (neither 'none_{arch}' nor timm's '{arch}' is registered)"
        )
    name = f"{attention}_{arch}"
    if not timm.is_model(name):
        raise ValueError(
            f"timm does not know {name!r}: attention {attention!r} is not one of scsa.list_attentions() "
            "(a block registered later needs scsa.models.register_timm_models())"
        )
    return name


class FCNHead(nn.Sequential):
    """MMSegmentation's ``FCNHead(num_convs=1, concat_input=False)``: the auxiliary head of UPerNet."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 256, dropout: float = 0.1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(channels, num_classes, 1),
        )


class Segmenter(nn.Module):
    """An smp model plus an optional auxiliary head. ``forward(x)`` gives logits ``(B, K, H, W)`` at the
    input size; ``forward_train(x)`` gives ``(logits, aux_logits or None)``, both at the input size."""

    def __init__(
        self, smp_model: nn.Module, aux_head: nn.Module | None = None, spec: dict | None = None
    ) -> None:
        super().__init__()
        self.smp = smp_model
        self.aux_head = aux_head
        self.spec = dict(spec or {})

    @property
    def encoder(self) -> nn.Module:
        return self.smp.encoder

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self.smp.encoder(x)
        logits = self.smp.segmentation_head(self.smp.decoder(features))
        if logits.shape[-2:] != x.shape[-2:]:  # decoders that stop short of the input size (pan, ...)
            logits = nn.functional.interpolate(
                logits, size=x.shape[-2:], mode="bilinear", align_corners=False
            )
        if self.aux_head is None:
            return logits, None
        aux = self.aux_head(features[-2])
        aux = nn.functional.interpolate(aux, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits, aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_train(x)[0]


def _load_backbone_weights(encoder: nn.Module, backbone: str, attention: str, path: str | os.PathLike) -> str:
    """Load a local classification checkpoint (ours, torchvision's or MMPretrain's) into the encoder."""
    import scsa

    arch, _ = scsa.models.parse_model_name(backbone)
    full = scsa.create_model(arch, attention=attention, num_classes=0)
    report = scsa.models.load_checkpoint(full, path)
    source = full.state_dict()
    target = encoder.model.state_dict()
    state, missing = {}, []
    for key in target:
        # timm's features_only flattens `features.N` (MobileNetV2) into `features_N`
        for candidate in (key, key.replace("features_", "features.", 1)):
            if candidate in source and source[candidate].shape == target[key].shape:
                state[key] = source[candidate]
                break
        else:
            missing.append(key)
    encoder.model.load_state_dict(state, strict=False)
    if missing:
        warnings.warn(
            f"backbone weights {os.fspath(path)!r}: {len(missing)} encoder tensors kept their initialisation "
            f"(first: {missing[:3]})",
            stacklevel=3,
        )
    return report.summary()


def build_segmenter(
    decoder: str = "upernet",
    backbone: str = "resnet50",
    attention: str = "scsa",
    num_classes: int = 150,
    output_stride: int | None = None,
    encoder_weights: str | None = None,
    backbone_weights: str | os.PathLike | None = None,
    aux_head: bool = False,
    decoder_channels: int | None = None,
    in_channels: int = 3,
    **decoder_kwargs: Any,
) -> Segmenter:
    """An smp segmentation model on an scsa backbone.

    Args:
        decoder: an smp architecture (:data:`DECODERS`): ``upernet`` (the paper's), ``fpn``,
            ``deeplabv3plus``, ``unet``, ...
        backbone: ``resnet18/34/50/101/152``, ``resnext50_32x4d``, ``mobilenet_v2`` (or a full name
            such as ``scsa_resnet50``, which then fixes the attention).
        attention: any name of ``scsa.list_attentions()``; ``"none"`` for the plain backbone.
        num_classes: output classes (ADE20K: 150).
        output_stride: 8 or 16 dilate the last stages (None: the decoder's default, 32 for most,
            DeepLabV3+'s 16).
        encoder_weights: ``None`` (random initialisation, no network). Anything else would make timm
            download, which scsa never does; use ``backbone_weights``.
        backbone_weights: path of a local checkpoint for the encoder: a ``scsa classify train``
            checkpoint, torchvision's or MMPretrain's weights (:func:`scsa.models.load_checkpoint`).
        aux_head: add the auxiliary FCN head on stage 4 (train with loss weight 0.4).
        decoder_channels: the decoder's width where it has one number (UPerNet, FPN, DeepLabV3+).
        **decoder_kwargs: passed to the smp architecture as they are.

    Example:
        >>> model = build_segmenter("upernet", "resnet18", "scsa", num_classes=11)
    """
    import segmentation_models_pytorch as smp

    key = decoder.lower().replace("-", "").replace("_", "")
    if key not in DECODERS:
        raise ValueError(f"unknown decoder {decoder!r}; known: {', '.join(DECODERS)}")
    if encoder_weights is not None:
        raise ValueError(
            f"encoder_weights={encoder_weights!r} would download weights, which scsa never does; pass "
            "backbone_weights=<local checkpoint path> (ours, torchvision's or MMPretrain's)"
        )
    if output_stride not in (None, 8, 16, 32):
        raise ValueError(f"output_stride must be None, 8, 16 or 32, got {output_stride!r}")
    name = encoder_name(backbone, attention)
    kwargs: dict[str, Any] = dict(decoder_kwargs)
    if output_stride is not None:
        if key in _OS_ARG:
            kwargs[_OS_ARG[key]] = output_stride
        elif key in ("upernet", "fpn", "pspnet"):
            kwargs["output_stride"] = output_stride  # passed on to the encoder by smp
        elif output_stride != 32:
            raise ValueError(
                f"decoder {decoder!r} needs the full-resolution pyramid: output_stride must be 32"
            )
    if decoder_channels is not None:
        if key in ("upernet", "deeplabv3plus", "deeplabv3", "pspnet"):  # SINGLE_WIDTH but FPN
            kwargs["decoder_channels" if key != "pspnet" else "psp_out_channels"] = decoder_channels
        elif key == "fpn":
            kwargs["decoder_pyramid_channels"] = decoder_channels
            # smp normalises these with GroupNorm(32): a multiple of 32
            kwargs["decoder_segmentation_channels"] = max(32, decoder_channels // 64 * 32)
        else:
            raise ValueError(
                f"decoder_channels is not a single number for {decoder!r}; pass its own smp arguments"
            )
    model = smp.create_model(
        DECODERS[key],
        encoder_name=f"tu-{name}",
        encoder_weights=None,
        in_channels=in_channels,
        classes=num_classes,
        **kwargs,
    )
    aux = None
    if aux_head:
        aux = FCNHead(
            model.encoder.out_channels[-2],
            num_classes,
            channels=max(min(256, model.encoder.out_channels[-2] // 4), 16),
        )
    arch_attention = name.split("_", 1)[0] if name.startswith(f"{attention}_") else "none"
    spec = dict(
        decoder=key,
        backbone=backbone,
        attention=attention if attention else arch_attention,
        encoder=name,
        num_classes=num_classes,
        output_stride=output_stride,
        aux_head=aux_head,
        decoder_channels=decoder_channels,
        in_channels=in_channels,
        decoder_kwargs=dict(decoder_kwargs),
    )
    if backbone_weights is not None:
        spec["backbone_weights"] = os.fspath(backbone_weights)
        spec["backbone_weights_report"] = _load_backbone_weights(
            model.encoder, backbone, spec["attention"], backbone_weights
        )
    return Segmenter(model, aux, spec)


def segmenter_from_spec(spec: dict) -> Segmenter:
    """Rebuild a model from the ``spec`` a :class:`Segmenter` carries (no weights loaded)."""
    keys = (
        "decoder",
        "backbone",
        "attention",
        "num_classes",
        "output_stride",
        "aux_head",
        "decoder_channels",
        "in_channels",
    )
    return build_segmenter(**{k: spec[k] for k in keys if k in spec}, **spec.get("decoder_kwargs", {}))
