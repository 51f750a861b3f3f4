"""Our backbones inside timm's and torchvision's machinery: create_model, features_only, FPN."""

from __future__ import annotations

import pytest
import timm
import torch
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection.backbone_utils import BackboneWithFPN

import scsa  # registers the models in timm
from scsa.attention import list_attentions
from scsa.models import ARCHS, MobileNetV2, ResNet, create_model


def test_import_registers_every_shortcut_without_shadowing_timm() -> None:
    assert timm.is_model("scsa_resnet50") and timm.is_model("scsa_mobilenet_v2")
    for attn in list_attentions():
        if attn != "none":
            for arch in ARCHS:
                assert timm.is_model(f"{attn}_{arch}")
    # bare names stay timm's own models
    assert type(timm.create_model("resnet18")).__module__.startswith("timm.")
    cfg = timm.models.get_pretrained_cfg("scsa_resnet50")
    assert not cfg.url and not cfg.hf_hub_id
    assert not timm.models.is_model_pretrained("scsa_resnet50")


def test_timm_create_model() -> None:
    model = timm.create_model("scsa_resnet50", pretrained=False, num_classes=10).eval()
    assert isinstance(model, ResNet) and model.num_classes == 10
    assert type(model.layer1[0].attn) is scsa.SCSA
    assert model.pretrained_cfg["first_conv"] == "conv1"
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    mobile = timm.create_model("se_mobilenet_v2", num_classes=5, width_mult=0.5, stem="cifar").eval()
    assert isinstance(mobile, MobileNetV2) and mobile.has_attention()
    assert mobile(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_timm_features_only_resnet() -> None:
    model = timm.create_model("scsa_resnet50", features_only=True).eval()
    assert model.feature_info.channels() == [64, 256, 512, 1024, 2048]
    assert model.feature_info.reduction() == [2, 4, 8, 16, 32]
    x = torch.randn(1, 3, 64, 64)
    feats = model(x)
    sizes = [(1, c, 64 // r, 64 // r) for c, r in zip([64, 256, 512, 1024, 2048], [2, 4, 8, 16, 32])]
    assert [tuple(f.shape) for f in feats] == sizes
    # the same numbers as the trunk of the classifier with the same weights
    full = timm.create_model("scsa_resnet50", num_classes=0).eval()
    full.load_state_dict(model.state_dict())
    assert torch.equal(feats[-1], full.forward_features(x))
    picked = timm.create_model("scsa_resnet18", features_only=True, out_indices=(1, 3), stem="cifar").eval()
    assert [tuple(f.shape) for f in picked(torch.randn(1, 3, 32, 32))] == [(1, 64, 32, 32), (1, 256, 8, 8)]


def test_timm_features_only_mobilenet() -> None:
    model = timm.create_model("scsa_mobilenet_v2", features_only=True).eval()
    assert model.feature_info.channels() == [16, 24, 32, 96, 320]
    feats = model(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]
    assert [f.shape[1] for f in feats] == [16, 24, 32, 96, 320]


def test_torchvision_fpn_and_layer_getter_accept_our_resnet() -> None:
    model = create_model("scsa_resnet50", num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    getter = IntermediateLayerGetter(model, {"layer2": "c3", "layer4": "c5"})
    out = getter(x)
    assert torch.equal(out["c5"], model.forward_features(x))
    fpn = BackboneWithFPN(
        model, {f"layer{i}": str(i - 1) for i in range(1, 5)}, [256, 512, 1024, 2048], out_channels=32
    ).eval()
    maps = fpn(x)
    assert [tuple(v.shape) for v in maps.values()] == [
        (1, 32, 16, 16),
        (1, 32, 8, 8),
        (1, 32, 4, 4),
        (1, 32, 2, 2),
        (1, 32, 1, 1),
    ]


# ---- timm's own options behave as on timm's ResNet -------------------------------------------------


def timm_twin(**kwargs) -> tuple[torch.nn.Module, torch.nn.Module]:
    """timm's resnet18 and our attention-free resnet18 built with the same options and weights."""
    theirs = timm.create_model("resnet18", **kwargs)
    ours = create_model("resnet18", **kwargs)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


@pytest.mark.parametrize("global_pool", ["avg", "max", "avgmax", "catavgmax"])
def test_global_pool_as_timm_s(global_pool: str) -> None:
    theirs, ours = timm_twin(num_classes=5, global_pool=global_pool)
    x = torch.randn(2, 3, 32, 32)
    theirs.eval(), ours.eval()
    assert torch.equal(ours(x), theirs(x))
    assert torch.equal(
        ours.forward_head(ours.forward_features(x), pre_logits=True),
        theirs.forward_head(theirs.forward_features(x), pre_logits=True),
    )
    via_timm = timm.create_model("scsa_resnet18", num_classes=0, global_pool=global_pool).eval()
    assert via_timm(x).shape == theirs.forward_head(theirs.forward_features(x), pre_logits=True).shape


def test_no_pooling_and_reset_classifier_as_timm_s() -> None:
    theirs, ours = timm_twin(num_classes=0, global_pool="")
    x = torch.randn(1, 3, 32, 32)
    assert ours.eval()(x).shape == theirs.eval()(x).shape == (1, 512, 1, 1)
    for model in (ours, theirs):
        model.reset_classifier(4, "max")
        assert model.get_classifier().out_features == 4
    ours.get_classifier().load_state_dict(theirs.get_classifier().state_dict())
    assert torch.equal(ours(x), theirs(x))
    ours.reset_classifier(0)
    theirs.reset_classifier(0)
    assert torch.equal(ours(x), theirs(x))  # still max-pooled
    with pytest.raises(ValueError, match="needs num_classes=0"):
        create_model("resnet18", global_pool="")


def test_drop_path_and_drop_rate_as_timm_s() -> None:
    theirs, ours = timm_twin(num_classes=5, drop_path_rate=0.3, drop_rate=0.5)
    rates = [b.drop_path.drop_prob if b.drop_path is not None else 0.0 for b in ours.blocks()]
    timm_blocks = [b for layer in (theirs.layer1, theirs.layer2, theirs.layer3, theirs.layer4) for b in layer]
    assert rates == [b.drop_path.drop_prob if b.drop_path is not None else 0.0 for b in timm_blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(ours.eval()(x), theirs.eval()(x))
    torch.manual_seed(3)
    a = ours.train()(x)
    torch.manual_seed(3)
    b = theirs.train()(x)
    assert torch.equal(a, b)  # the same random draws in the same places
    torch.manual_seed(4)
    assert not torch.equal(ours(x), a)  # and they are random
    rates50 = [
        b.drop_path.drop_prob for b in timm.create_model("scsa_resnet50", drop_path_rate=0.1).blocks()[1:]
    ]
    assert rates50 == pytest.approx([0.1 * i / 15 for i in range(1, 16)])
    mobile = create_model("se_mobilenet_v2", drop_path_rate=0.2)
    assert (
        mobile.blocks()[-1].drop_path.drop_prob == pytest.approx(0.2) and mobile.blocks()[0].drop_path is None
    )


@pytest.mark.parametrize("output_stride", [8, 16])
def test_output_stride_as_timm_s(output_stride: int) -> None:
    theirs, ours = timm_twin(num_classes=0, output_stride=output_stride)
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(ours.eval().forward_features(x), theirs.eval().forward_features(x))
    ours.set_grad_checkpointing()
    theirs.set_grad_checkpointing()
    assert ours.grad_checkpointing and theirs.grad_checkpointing
