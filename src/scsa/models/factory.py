"""``create_model`` and ``list_models``: the backbones of the SCSA paper with any attention of the zoo.

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
https://arxiv.org/abs/2407.05128.

A model name is an architecture (``resnet50``: no attention) or ``<attention>_<architecture>``
(``scsa_resnet50``, ``se_mobilenet_v2``, ...) for every attention registered in
:mod:`scsa.attention`, including those registered after import.
"""

from __future__ import annotations

import fnmatch
import os
import warnings
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from torch import nn

from scsa.attention import list_attentions
from scsa.models._common import AttentionSpec, check_position, check_stem
from scsa.models.mobilenetv2 import MobileNetV2
from scsa.models.resnet import BasicBlock, Bottleneck, ResNet

__all__ = ["ARCHS", "create_model", "list_models", "parse_model_name"]

_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": partial(ResNet, BasicBlock, (2, 2, 2, 2)),
    "resnet34": partial(ResNet, BasicBlock, (3, 4, 6, 3)),
    "resnet50": partial(ResNet, Bottleneck, (3, 4, 6, 3)),
    "resnet101": partial(ResNet, Bottleneck, (3, 4, 23, 3)),
    "resnet152": partial(ResNet, Bottleneck, (3, 8, 36, 3)),
    "resnext50_32x4d": partial(ResNet, Bottleneck, (3, 4, 6, 3), groups=32, width_per_group=4),
    "mobilenet_v2": MobileNetV2,
}

ARCHS: tuple[str, ...] = tuple(_BUILDERS)


def parse_model_name(name: str) -> tuple[str, str | None]:
    """Split a model name into ``(architecture, attention)``; attention is ``None`` for a bare architecture."""
    key = name.lower()
    if key in _BUILDERS:
        return key, None
    attentions = list_attentions()
    for arch in sorted(_BUILDERS, key=len, reverse=True):
        if key.endswith("_" + arch):
            prefix = key[: -len(arch) - 1]
            if prefix in attentions:
                return arch, prefix
    raise ValueError(
        f"unknown model {name!r}: expected an architecture ({', '.join(ARCHS)}) or "
        f"'<attention>_<architecture>' with an attention in ({', '.join(attentions)}); see list_models()"
    )


def list_models(pattern: str = "*") -> list[str]:
    """Every model name ``create_model`` accepts (architectures and shortcuts), sorted; fnmatch ``pattern``."""
    names = list(_BUILDERS)
    names += [f"{attn}_{arch}" for attn in list_attentions() if attn != "none" for arch in _BUILDERS]
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern.lower()))


def build_arch(
    arch: str,
    attention: AttentionSpec = "none",
    attention_kwargs: Mapping[str, Any] | None = None,
    attention_position: str = "mid",
    **kwargs: Any,
) -> nn.Module:
    """Build architecture ``arch`` with ``attention`` in every block (no name parsing, no weights)."""
    if arch not in _BUILDERS:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    return _BUILDERS[arch](
        attention=attention,
        attention_kwargs=attention_kwargs,
        attention_position=attention_position,
        **kwargs,
    )


def create_model(
    name: str,
    num_classes: int = 1000,
    attention: AttentionSpec | None = None,
    attention_kwargs: Mapping[str, Any] | None = None,
    in_chans: int = 3,
    stem: str = "imagenet",
    pretrained: str | os.PathLike | None = None,
    attention_position: str = "mid",
    **kwargs: Any,
) -> nn.Module:
    """Build a backbone of the SCSA paper with an attention block in every residual block.

    Args:
        name: ``resnet18/34/50/101/152``, ``resnext50_32x4d``, ``mobilenet_v2``, or one of them
            prefixed by an attention name (``scsa_resnet50``); see :func:`list_models`.
        num_classes: classifier outputs (0: no classifier, the model returns pooled features).
        attention: zoo name or ``f(channels, **kwargs) -> nn.Module``. By default the name decides:
            its prefix for a shortcut, no attention for a bare architecture name.
        attention_kwargs: keyword arguments of every attention block, e.g. ``{"head_num": 2}``.
        in_chans: input channels.
        stem: ``"imagenet"`` or ``"cifar"`` (3×3 stride-1 first conv, no max-pool; 32×32 inputs).
        pretrained: path of a local checkpoint (ours, torchvision's, or MMPretrain's released
            ``ResNetSCSA``/``MobileNetV2SCSA``); see :func:`scsa.models.load_checkpoint`. Nothing is
            ever downloaded.
        attention_position: ``"mid"`` (the paper's place) or ``"post"`` (SENet's: after the last
            norm of the block, before the residual add).
        **kwargs: architecture options (see :class:`~scsa.models.ResNet` and
            :class:`~scsa.models.MobileNetV2`): torchvision's ``norm_layer`` (e.g.
            ``torchvision.ops.FrozenBatchNorm2d``) and ``replace_stride_with_dilation`` (ResNets);
            timm's ``output_stride`` (8, 16, 32), ``drop_rate``, ``drop_path_rate`` and
            ``global_pool`` (``"avg"``, ``"max"``, ``"avgmax"``, ``"catavgmax"``, ``""``);
            MMDetection's ``frozen_stages``; ``inplace_attention=False`` to keep every attention
            block from writing over its input (also ``model.set_inplace_attention(False)``);
            ``width_mult`` (MobileNetV2), ``zero_init_residual`` (ResNets).

    Example:
        >>> model = create_model("scsa_resnet50", num_classes=10)
        >>> cifar = create_model("resnet18", attention="se", stem="cifar", num_classes=10)
        >>> from torchvision.ops import FrozenBatchNorm2d
        >>> dense = create_model("scsa_resnet50", norm_layer=FrozenBatchNorm2d, output_stride=8, frozen_stages=1)
    """
    arch, named_attention = parse_model_name(name)
    if named_attention is not None and attention is not None and attention != named_attention:
        raise ValueError(
            f"model {name!r} already names the attention {named_attention!r}, but attention={attention!r} "
            f"was passed; use the architecture name {arch!r} with attention=..."
        )
    if attention is None:
        attention = named_attention or "none"
    if pretrained is True:
        raise ValueError(
            "pretrained=True would need a download, which scsa never does; pass the path of a local "
            "checkpoint instead (ours, torchvision's or MMPretrain's)"
        )
    model = build_arch(
        arch,
        attention=attention,
        attention_kwargs=attention_kwargs,
        attention_position=check_position(attention_position),
        num_classes=num_classes,
        in_chans=in_chans,
        stem=check_stem(stem),
        **kwargs,
    )
    if pretrained:
        from scsa.models.weights import load_checkpoint

        report = load_checkpoint(model, pretrained)
        if report.new:
            warnings.warn(
                f"{name!r} from {os.fspath(pretrained)!r}: {report.summary()}; the new ones keep their "
                f"initialisation (scsa.models.load_checkpoint returns the full list)",
                stacklevel=2,
            )
    return model
