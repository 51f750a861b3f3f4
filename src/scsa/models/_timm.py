"""Registers scsa's attention backbones in timm: ``timm.create_model("scsa_resnet50")`` after ``import scsa``.

SCSA: Si et al., https://arxiv.org/abs/2407.05128. Every ``<attention>_<architecture>`` name of
:func:`scsa.models.list_models` that timm does not already know is registered (bare architecture
names such as ``resnet50`` are timm's own and are left alone). Models are built through timm's
``build_model_with_cfg``, so ``features_only=True``, ``out_indices`` and the rest of timm's feature
machinery work. The default configs carry no URL: nothing is downloaded; for weights use
:func:`scsa.models.create_model` with ``pretrained=<path>`` or timm's
``pretrained_cfg_overlay=dict(file=<path>)`` with a state dict of our own keys.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, is_model, register_model
from torch import nn

from scsa.models.factory import build_arch, list_models, parse_model_name

__all__: list[str] = []  # timm's register_model appends every registered name
default_cfgs: dict[str, Any] = {}  # read by timm's register_model


def _cfg(arch: str) -> dict[str, Any]:
    mobilenet = arch == "mobilenet_v2"
    return dict(
        url="",
        num_classes=1000,
        input_size=(3, 224, 224),
        pool_size=(7, 7),
        crop_pct=0.875,
        interpolation="bilinear",
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        first_conv="features.0.0" if mobilenet else "conv1",
        classifier="classifier.1" if mobilenet else "fc",
        paper_ids="arXiv:2407.05128",
    )


def _entrypoint(name: str, arch: str, attention: str):
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        # MobileNetV2's feature modules are `features.N`, one Sequential deep
        feature_cfg = dict(flatten_sequential=True) if arch == "mobilenet_v2" else None
        builder = partial(build_arch, arch, attention)
        return build_model_with_cfg(builder, name, pretrained, feature_cfg=feature_cfg, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"{arch} with the {attention!r} attention in every block (scsa, arXiv 2407.05128)."
    return entrypoint


def register_timm_models() -> list[str]:
    """Register in timm every shortcut name that timm does not know yet; returns the newly registered names.

    Runs on ``import scsa``; call it again after :func:`scsa.register_attention` to expose new blocks.
    """
    todo = {}
    for name in list_models():
        arch, attention = parse_model_name(name)
        if attention is not None and not is_model(name):
            todo[name] = (arch, attention)
    default_cfgs.update(generate_default_cfgs({name: _cfg(arch) for name, (arch, _) in todo.items()}))
    for name, (arch, attention) in todo.items():
        fn = _entrypoint(name, arch, attention)
        globals()[name] = fn
        register_model(fn)
    return sorted(todo)


register_timm_models()
