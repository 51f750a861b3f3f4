"""insert_attention on torchvision's, timm's and our own models."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import nn

import scsa
from scsa.models import create_model, insert_attention


class Probe(nn.Module):
    """A pass-through "attention" that records the channels it was built for and what it sees."""

    def __init__(self, channels: int, **kwargs) -> None:
        super().__init__()
        self.channels = channels
        self.kwargs = kwargs
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach())
        return x


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---- torchvision ----------------------------------------------------------------------------------


def test_torchvision_resnet50_with_scsa_equals_scsa_resnet50() -> None:
    tv = torchvision.models.resnet50().eval()
    conv = tv.layer2[1].conv2
    paths = insert_attention(tv, "scsa")
    assert paths == [f"layer{i}.{j}.attn" for i, n in zip(range(1, 5), (3, 4, 6, 3)) for j in range(n)]
    assert all(type(tv.get_submodule(p)) is scsa.SCSA for p in paths)
    assert tv.layer2[1].conv2 is conv  # the same modules, not copies
    assert not tv.layer1[0].attn.training
    ours = create_model("scsa_resnet50").eval()
    ours.load_state_dict(tv.state_dict())  # strict: identical keys
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(ours(x), tv(x))


@pytest.mark.parametrize(("arch", "ours"), [("resnet18", "resnet18"), ("resnext50_32x4d", "resnext50_32x4d")])
def test_torchvision_post_position_equals_ours(arch: str, ours: str) -> None:
    tv = getattr(torchvision.models, arch)().eval()
    insert_attention(tv, "scsa", position="post", window_size=4)
    model = create_model(
        ours, attention="scsa", attention_position="post", attention_kwargs={"window_size": 4}
    )
    model.eval().load_state_dict(tv.state_dict())
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(model(x), tv(x))


@pytest.mark.parametrize("position", ["mid", "post"])
def test_torchvision_mobilenet_v2_equals_ours(position: str) -> None:
    tv = torchvision.models.mobilenet_v2().eval()
    paths = insert_attention(tv, "scsa", position=position)
    assert len(paths) == 17
    assert paths[:2] == (
        ["features.1.conv.0.3", "features.2.conv.1.3"]
        if position == "mid"
        else ["features.1.conv.3", "features.2.conv.4"]
    )
    ours = create_model("scsa_mobilenet_v2", attention_position=position).eval()
    ours.load_state_dict(tv.state_dict())
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(ours(x), tv(x))


def test_device_dtype_and_kwargs_follow_the_block() -> None:
    tv = torchvision.models.resnet18().double().train()
    insert_attention(tv, "scsa", head_num=2)
    attn = tv.layer3[0].attn
    assert attn.head_num == 2 and attn.training
    assert all(p.dtype == torch.float64 for p in attn.parameters())
    assert tv(torch.randn(2, 3, 64, 64, dtype=torch.float64)).dtype == torch.float64


# ---- timm ---------------------------------------------------------------------------------------


def test_timm_resnet50_mid_equals_scsa_resnet50() -> None:
    model = timm.create_model("resnet50").eval()
    paths = insert_attention(model, "scsa")
    assert paths[0] == "layer1.0.aa" and len(paths) == 16
    ours = create_model("scsa_resnet50").eval()
    # timm's resnet50 is torchvision's network with other activation names; the slot is `aa`
    ours.load_state_dict({k.replace(".aa.", ".attn."): v for k, v in model.state_dict().items()})
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(ours(x), model(x), atol=1e-6)


def test_timm_resnet18_post_fills_the_se_slot() -> None:
    model = timm.create_model("resnet18").eval()
    assert insert_attention(model, "scsa", position="post")[0] == "layer1.0.se"
    ours = create_model("resnet18", attention="scsa", attention_position="post").eval()
    ours.load_state_dict({k.replace(".se.", ".attn."): v for k, v in model.state_dict().items()})
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(ours(x), model(x), atol=1e-6)


def test_timm_mobilenetv2() -> None:
    model = timm.create_model("mobilenetv2_050").eval()
    before = n_params(model)
    paths = insert_attention(model, "scsa")
    assert paths[:2] == ["blocks.0.0.se", "blocks.1.0.se"] and len(paths) == 17
    hidden = [model.get_submodule(p.rsplit(".", 1)[0]).conv_dw.out_channels for p in paths]
    assert n_params(model) - before == 16 * sum(hidden)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)

    probed = timm.create_model("mobilenetv2_050").eval()
    paths = insert_attention(probed, Probe, position="post")
    assert paths[:2] == ["blocks.0.0.bn2.act", "blocks.1.0.bn3.act"]
    probed(torch.randn(1, 3, 64, 64))
    for path in paths:
        probe = probed.get_submodule(path)
        block = probed.get_submodule(path.rsplit(".", 2)[0])
        out_chs = (block.conv_pwl if hasattr(block, "conv_pwl") else block.conv_pw).out_channels
        assert probe.channels == out_chs == probe.seen[0].shape[1]


# ---- our own models, and what is refused ---------------------------------------------------------


def test_our_plain_models_take_the_attention() -> None:
    plain = create_model("resnet18", num_classes=10).eval()
    assert len(insert_attention(plain, "scsa")) == 8
    ours = create_model("scsa_resnet18", num_classes=10).eval()
    ours.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(ours(x), plain(x))
    mobile = create_model("mobilenet_v2", num_classes=10)
    insert_attention(mobile, "scsa", position="post")
    assert mobile.blocks()[0].attn_path == "attn" and type(mobile.blocks()[0].attention()) is scsa.SCSA
    with pytest.raises(ValueError, match=r"features.1.attn already holds SCSA"):
        insert_attention(mobile, "se")


def test_occupied_places_and_unsupported_models() -> None:
    with pytest.raises(ValueError, match=r"layer1.0.attn already holds SCSA"):
        insert_attention(create_model("scsa_resnet18"), "se")
    se = timm.create_model("seresnet18")
    keys = set(se.state_dict())
    with pytest.raises(ValueError, match=r"layer1.0.se already holds"):
        insert_attention(se, "scsa", position="post")
    assert set(se.state_dict()) == keys
    for model in (nn.Sequential(nn.Conv2d(3, 8, 3)), torchvision.models.squeezenet1_1()):
        with pytest.raises(ValueError, match="supported: torchvision ResNet"):
            insert_attention(model, "scsa")
    with pytest.raises(ValueError, match="position must be one of"):
        insert_attention(torchvision.models.resnet18(), "scsa", position="pre")


def test_a_failing_block_changes_nothing() -> None:
    def picky(channels: int, **kwargs) -> nn.Module:
        if channels == 256:
            raise ValueError("picky cannot take 256 channels")
        return Probe(channels)

    model = torchvision.models.resnet18()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    blocks = [type(b) for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer]
    with pytest.raises(ValueError, match="picky cannot take 256"):
        insert_attention(model, picky)
    after = model.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], v) for k, v in before.items())
    assert [
        type(b) for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer
    ] == blocks
