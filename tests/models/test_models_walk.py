"""One walk over every registered model, as timm's tests/test_models.py: create, forward, backward,
features_only, FX (torch.fx, torchvision's feature extractor, timm's feature_cls="fx") and TorchScript.

The names are read from the registries when the tests are collected, so models added later are
covered without touching this file. The default run takes every attention on the cheapest
architecture (ResNet-18) and every architecture with SCSA and without attention; the slow part walks
every name of :func:`scsa.list_models` (create, forward, features), FX of every attention on ResNet-18
and MobileNetV2 and of every large architecture, and TorchScript of every block type.
"""

from __future__ import annotations

import warnings

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

import scsa
from scsa.attention import list_attentions
from scsa.models import ARCHS, parse_model_name

ATTENTIONS = list_attentions()
CHEAP_ARCHS = ("resnet18", "resnet34", "resnet50", "mobilenet_v2")
LARGE_ARCHS = tuple(a for a in ARCHS if a not in CHEAP_ARCHS)
SIZE = 32  # the smallest input every architecture takes with its ImageNet stem (layer4: 1x1)


def name_of(arch: str, attention: str) -> str:
    return arch if attention == "none" else f"{attention}_{arch}"


def build(name: str, via_timm: bool = True, **kwargs) -> nn.Module:
    """The model as a user gets it: through timm for the shortcut names (what timm registers), through
    scsa.create_model for the bare architectures (timm's own names)."""
    kwargs.setdefault("num_classes", 7)
    if "mobilenet" in name:
        kwargs.setdefault("width_mult", 0.5)
    if via_timm and parse_model_name(name)[1] is not None:
        return timm.create_model(name, pretrained=False, **kwargs)
    return scsa.create_model(name, **kwargs)


def x_of(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def check_forward_backward(model: nn.Module, backward: bool = True) -> None:
    x = x_of()
    model.eval()
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, model.num_classes) and torch.isfinite(y).all()
    if not backward:
        return
    model.train()
    y = model(x)
    F.cross_entropy(y, torch.tensor([0, 1])).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without a gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def ours_in_timm(name: str) -> bool:
    # the bare architecture names in timm are timm's own models
    return parse_model_name(name)[1] is not None


def check_features_only(name: str, model: nn.Module) -> None:
    kwargs = {"width_mult": 0.5} if "mobilenet" in name else {}
    features = timm.create_model(name, features_only=True, **kwargs).eval() if ours_in_timm(name) else None
    info = model.feature_info
    with torch.no_grad():
        maps = model.eval().forward_intermediates(x_of(1), intermediates_only=True)
        assert [m.shape[1] for m in maps] == [f["num_chs"] for f in info]
        assert [SIZE // m.shape[-1] for m in maps] == [f["reduction"] for f in info]
        if features is not None:
            got = features(x_of(1))
            assert [g.shape for g in got] == [m.shape for m in maps]
            assert features.feature_info.reduction() == [f["reduction"] for f in info]


def check_fx(name: str, model: nn.Module, **timm_kwargs) -> None:
    model.eval()
    x = x_of(1)
    with torch.no_grad():
        expected = model(x)
        traced = torch.fx.symbolic_trace(model)
        assert torch.allclose(traced(x), expected, atol=1e-5, rtol=1e-4)
        stages = [f["module"] for f in model.feature_info]
        extractor = create_feature_extractor(model, return_nodes={m: m for m in stages})
        maps = model.forward_intermediates(x, intermediates_only=True)
        got = extractor(x)
        assert all(torch.allclose(got[m], a, atol=1e-5, rtol=1e-4) for m, a in zip(stages, maps))
    if ours_in_timm(name):
        if "mobilenet" in name:
            timm_kwargs.setdefault("width_mult", 0.5)
        fx_features = timm.create_model(name, features_only=True, feature_cls="fx", **timm_kwargs).eval()
        with torch.no_grad():
            assert [t.shape for t in fx_features(x)] == [m.shape for m in maps]


def check_script(model: nn.Module) -> None:
    model.eval()
    x = x_of()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated, still supported
        scripted = torch.jit.script(model)
    with torch.no_grad():
        assert torch.allclose(scripted(x), model(x), atol=1e-5, rtol=1e-4)


# ---- the default run: cheap, and still every attention and every cheap architecture ---------------


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_every_attention_create_forward_backward(attention: str) -> None:
    model = build(name_of("resnet18", attention))
    assert isinstance(model, scsa.models.ResNet) and model.has_attention() == (attention != "none")
    check_forward_backward(model)


@pytest.mark.parametrize("attention", ["none", "scsa"])
@pytest.mark.parametrize("arch", CHEAP_ARCHS)
def test_every_arch_create_forward_features(arch: str, attention: str) -> None:
    name = name_of(arch, attention)
    model = build(name)
    # the backward of every block type is walked above and in the slow walk below
    check_forward_backward(model, backward=arch == "mobilenet_v2")
    check_features_only(name, model)


@pytest.mark.parametrize("name", ["scsa_resnet18", "resnet18", "scsa_mobilenet_v2"])
def test_fx(name: str) -> None:
    check_fx(name, build(name))


def test_every_graph_node_is_returnable() -> None:
    model = build("scsa_resnet18").eval()
    train_nodes, eval_nodes = get_graph_node_names(model)
    assert "layer1.0.conv1" in eval_nodes and any(n.startswith("layer1.0.attn.") for n in eval_nodes)
    extractor = create_feature_extractor(model, train_return_nodes=train_nodes, eval_return_nodes=eval_nodes)
    with torch.no_grad():
        out = extractor.eval()(x_of(1))
    assert list(out) == eval_nodes
    assert eval_nodes[-1] == "fc"
    assert torch.allclose(out["fc"], model(x_of(1)), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["scsa_resnet18", "scsa_mobilenet_v2"])
def test_script(name: str) -> None:
    check_script(build(name))


# ---- slow: the cross product ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", scsa.list_models())
def test_every_model_name(name: str) -> None:
    """Every name of scsa.list_models(): create (through timm for the shortcuts), forward,
    features_only; backward on the architectures whose blocks the large ones repeat (ResNet-50's
    Bottleneck is ResNet-101/152's and, grouped, ResNeXt's), so CI stays within its time."""
    model = build(name)
    check_forward_backward(model, backward=parse_model_name(name)[0] in CHEAP_ARCHS)
    check_features_only(name, model)


@pytest.mark.slow
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_every_attention_fx_and_script(attention: str) -> None:
    name = name_of("resnet18", attention)
    check_fx(name, build(name))
    check_script(build(name))


@pytest.mark.slow
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_every_attention_fx_mobilenet(attention: str) -> None:
    # TorchScript of every MobileNetV2 variant costs ~20-40 s each on 2 CPU cores; the scripted
    # MobileNetV2 with SCSA is in the default run, and every block is scripted on ResNet-18 above
    name = name_of("mobilenet_v2", attention)
    check_fx(name, build(name))


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["none", "scsa"])
@pytest.mark.parametrize("arch", (*LARGE_ARCHS, "resnet50"))
def test_large_archs_fx(arch: str, attention: str) -> None:
    name = name_of(arch, attention)
    check_fx(name, build(name))


@pytest.mark.slow
def test_bottleneck_script() -> None:
    # scripting ResNet-101/152 takes minutes and compiles the same Bottleneck as ResNet-50 does
    check_script(build("scsa_resnet50"))


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["scsa", "se", "cbam", "ema"])
def test_dense_options_on_every_route(attention: str) -> None:
    """Dilated, frozen-BN, drop-path models through FX and TorchScript too."""
    from torchvision.ops import FrozenBatchNorm2d

    options = dict(output_stride=8, norm_layer=FrozenBatchNorm2d, drop_path_rate=0.1)
    model = build(name_of("resnet18", attention), **options)
    check_forward_backward(model)
    check_fx(name_of("resnet18", attention), model, **options)
    check_script(model)
