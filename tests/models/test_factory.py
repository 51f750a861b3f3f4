"""create_model / list_models: names, options, layout, the attention's place and its parameter cost."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import scsa
from scsa.attention import list_attentions
from scsa.models import ARCHS, MobileNetV2, ResNet, create_model, list_models, parse_model_name


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class Probe(nn.Module):
    """A pass-through "attention" that records what it sees, to check where the backbones put it."""

    def __init__(self, channels: int, **kwargs) -> None:
        super().__init__()
        self.channels = channels
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach())
        return x


def probes(model: nn.Module) -> list[Probe]:
    return [m for m in model.modules() if isinstance(m, Probe)]


# ---- names ---------------------------------------------------------------------------------------


def test_list_models_covers_every_attention_and_arch() -> None:
    names = list_models()
    assert names == sorted(names)
    assert set(ARCHS) == {
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "resnext50_32x4d",
        "mobilenet_v2",
    }
    for arch in ARCHS:
        assert arch in names
        assert f"none_{arch}" not in names
        for attn in list_attentions():
            if attn != "none":
                assert f"{attn}_{arch}" in names
    assert list_models("scsa_*") == sorted(f"scsa_{a}" for a in ARCHS)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("resnet50", ("resnet50", None)),
        ("scsa_resnet50", ("resnet50", "scsa")),
        ("SCSA_ResNet50", ("resnet50", "scsa")),
        ("se_mobilenet_v2", ("mobilenet_v2", "se")),
        ("scsa_resnext50_32x4d", ("resnext50_32x4d", "scsa")),
    ],
)
def test_parse_model_name(name: str, expected: tuple[str, str | None]) -> None:
    assert parse_model_name(name) == expected


@pytest.mark.parametrize("name", ["resnet51", "foo_resnet50", "scsa_", "scsaresnet50", "vgg16"])
def test_unknown_names_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="unknown model"):
        create_model(name)


def test_the_name_decides_the_default_attention() -> None:
    assert not create_model("resnet18", num_classes=10).has_attention()
    assert type(create_model("scsa_resnet18", num_classes=10).layer1[0].attn) is scsa.SCSA
    assert type(create_model("resnet18", attention="scsa", num_classes=10).layer1[0].attn) is scsa.SCSA
    assert type(create_model("scsa_resnet18", attention="scsa", num_classes=10).layer1[0].attn) is scsa.SCSA
    with pytest.raises(ValueError, match="already names the attention 'scsa'"):
        create_model("scsa_resnet18", attention="se")


def test_attention_kwargs_reach_every_block() -> None:
    model = create_model("scsa_resnet18", num_classes=10, attention_kwargs={"head_num": 2, "window_size": 4})
    blocks = model.blocks()
    assert all(b.attn.head_num == 2 and b.attn.window_size == 4 for b in blocks)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stem": "tiny"}, "stem must be one of"),
        ({"attention_position": "pre"}, "attention_position must be one of"),
        ({"num_classes": -1}, "num_classes must be an integer >= 0"),
        ({"in_chans": 0}, "in_chans must be an integer >= 1"),
        ({"drop_rate": 1.5}, "drop_rate must be in"),
        ({"attention": "nope"}, "unknown attention 'nope'"),
        ({"pretrained": True}, "never does"),
    ],
)
def test_bad_options_raise_clear_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_model("resnet18", **kwargs)


def test_bad_width_mult() -> None:
    with pytest.raises(ValueError, match="width_mult must be a number > 0"):
        create_model("mobilenet_v2", width_mult=0)


# ---- layout --------------------------------------------------------------------------------------


def test_resnet_layout_is_torchvision_s() -> None:
    model = create_model("scsa_resnet50", num_classes=10)
    top = [name for name, _ in model.named_children()]
    assert top == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    block = [name for name, _ in model.layer1[0].named_children()]
    assert block == ["conv1", "bn1", "conv2", "bn2", "relu", "attn", "conv3", "bn3", "downsample"]
    post = create_model("scsa_resnet18", num_classes=10, attention_position="post")
    assert [n for n, _ in post.layer1[0].named_children()] == ["conv1", "bn1", "relu", "conv2", "bn2", "attn"]


def test_stems() -> None:
    big = create_model("resnet18", num_classes=10).eval()
    small = create_model("resnet18", num_classes=10, stem="cifar").eval()
    assert (
        big.conv1.kernel_size == (7, 7)
        and big.conv1.stride == (2, 2)
        and isinstance(big.maxpool, nn.MaxPool2d)
    )
    assert (
        small.conv1.kernel_size == (3, 3)
        and small.conv1.stride == (1, 1)
        and isinstance(small.maxpool, nn.Identity)
    )
    x = torch.randn(1, 3, 32, 32)
    assert big.forward_features(x).shape == (1, 512, 1, 1)
    assert small.forward_features(x).shape == (1, 512, 4, 4)
    mobile = create_model("mobilenet_v2", num_classes=10, stem="cifar", width_mult=0.5).eval()
    assert mobile.features[0][0].stride == (1, 1)
    assert mobile.forward_features(x).shape == (1, 1280, 2, 2)


def test_in_chans_and_head_api() -> None:
    for name, head in (("resnet18", "fc"), ("mobilenet_v2", "classifier.1")):
        model = create_model(name, num_classes=7, in_chans=1, stem="cifar").eval()
        x = torch.randn(2, 1, 32, 32)
        assert model(x).shape == (2, 7)
        assert model.get_classifier() is model.get_submodule(head)
        feats = model.forward_features(x)
        assert torch.equal(model.forward_head(feats), model(x))
        assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)
        model.reset_classifier(3)
        assert model(x).shape == (2, 3) and model.num_classes == 3
        model.reset_classifier(0)
        assert model(x).shape == (2, model.num_features)
        model.reset_classifier(3, global_pool="max")
        assert torch.equal(model.forward_head(feats, pre_logits=True), feats.amax((2, 3)))
        with pytest.raises(ValueError, match="global_pool must be one of"):
            model.reset_classifier(3, global_pool="median")
        with pytest.raises(ValueError, match="needs num_classes=0"):
            model.reset_classifier(3, global_pool="")
    assert create_model("resnet18", num_classes=0).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 512)


def test_feature_info_matches_the_modules() -> None:
    model = create_model("scsa_resnet50", num_classes=10)
    assert [f["module"] for f in model.feature_info] == ["relu", "layer1", "layer2", "layer3", "layer4"]
    assert [f["num_chs"] for f in model.feature_info] == [64, 256, 512, 1024, 2048]
    assert [f["reduction"] for f in model.feature_info] == [2, 4, 8, 16, 32]
    cifar = create_model("resnet18", num_classes=10, stem="cifar")
    assert [f["reduction"] for f in cifar.feature_info] == [1, 1, 2, 4, 8]
    mobile = create_model("mobilenet_v2")
    assert [f["module"] for f in mobile.feature_info] == [f"features.{i}" for i in (1, 3, 6, 13, 17)]
    assert [f["num_chs"] for f in mobile.feature_info] == [16, 24, 32, 96, 320]
    assert [f["reduction"] for f in mobile.feature_info] == [2, 4, 8, 16, 32]


# ---- where the attention sits --------------------------------------------------------------------


def test_resnet_mid_is_after_the_3x3_conv_relu() -> None:
    model = create_model("resnet50", attention=Probe, num_classes=10).eval()
    model(torch.randn(1, 3, 64, 64))
    found = probes(model)
    assert len(found) == 16
    expected = [b.bn2.num_features for b in model.blocks()]
    assert [p.channels for p in found] == expected
    assert [p.seen[0].shape[1] for p in found] == expected
    assert all(p.seen[0].min() >= 0 for p in found)  # after the ReLU
    assert [p.seen[0].shape[-1] for p in found] == [16] * 3 + [8] * 4 + [4] * 6 + [2] * 3  # after the stride


def test_resnet_post_is_before_the_residual_add() -> None:
    model = create_model("resnet18", attention=Probe, num_classes=10, attention_position="post").eval()
    model(torch.randn(1, 3, 64, 64))
    found = probes(model)
    assert [p.channels for p in found] == [b.bn2.num_features for b in model.blocks()]
    assert all(p.seen[0].min() < 0 for p in found)  # a BN output, not yet through the final ReLU
    block = model.layer1[0]
    x = torch.randn(1, 64, 8, 8)
    expected = block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))) + x)
    assert torch.allclose(block(x), expected)


def test_mobilenet_mid_is_after_the_depthwise_relu6() -> None:
    model = create_model("mobilenet_v2", attention=Probe, num_classes=10).eval()
    model(torch.randn(1, 3, 64, 64))
    found = probes(model)
    assert len(found) == 17
    hidden = [b.conv[-3][0].out_channels for b in model.blocks()]
    assert [p.channels for p in found] == hidden
    assert all(p.seen[0].min() >= 0 and p.seen[0].max() <= 6 for p in found)  # ReLU6 output
    # each block's attention is its child `attn`, after the depth-wise stage
    assert all(
        b.attention() is b.attn and isinstance(b.attn, Probe) and b.attn_path == "attn"
        for b in model.blocks()
    )
    post = create_model("mobilenet_v2", attention=Probe, num_classes=10, attention_position="post")
    assert [p.channels for p in probes(post)] == [b.out_channels for b in post.blocks()]


def test_none_adds_nothing() -> None:
    plain = create_model("mobilenet_v2")
    assert all(b.attention() is None and b.attn_path is None for b in plain.blocks())
    assert all(len(b.conv[-3]) == 3 for b in plain.blocks())
    assert not any(".attn." in k for k in plain.state_dict())
    resnet = create_model("resnet18")
    assert not any(".attn." in k for k in resnet.state_dict())


# ---- parameter cost (spec: 16·C per block at the defaults) ----------------------------------------


@pytest.mark.parametrize(
    ("arch", "spec_extra"),
    [("resnet18", 30_720), ("resnet50", 60_416), ("resnet101", 130_048), ("mobilenet_v2", 114_176)],
)
def test_scsa_parameter_cost(arch: str, spec_extra: int) -> None:
    plain = create_model(arch)
    model = create_model(f"scsa_{arch}")
    if isinstance(model, ResNet):
        channels = [
            b.conv2.out_channels if hasattr(b, "conv3") else b.conv1.out_channels for b in model.blocks()
        ]
    else:
        assert isinstance(model, MobileNetV2)
        channels = [b.conv[-3][0].out_channels for b in model.blocks()]
    extra = n_params(model) - n_params(plain)
    assert extra == 16 * sum(channels) == spec_extra


# ---- memory format, scripting --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["scsa_resnet18", "scsa_mobilenet_v2"])
def test_channels_last_end_to_end(name: str) -> None:
    model = create_model(name, num_classes=10, stem="cifar").eval()
    x = torch.randn(2, 3, 32, 32)
    expected = model(x)
    model = model.to(memory_format=torch.channels_last)
    xc = x.to(memory_format=torch.channels_last)
    feats = model.forward_features(xc)
    assert feats.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(model.forward_head(feats), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["scsa_resnet18", "scsa_mobilenet_v2"])
def test_torchscript(name: str) -> None:
    model = create_model(name, num_classes=10, stem="cifar").eval()
    x = torch.randn(2, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated, still supported
        scripted = torch.jit.script(model)
    assert torch.allclose(scripted(x), model(x), atol=1e-6)
