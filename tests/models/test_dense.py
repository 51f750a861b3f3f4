"""The backbones as detection and segmentation backbones: norm layers, dilation, frozen stages, the
torchvision FPN builders, timm's features_only, forward_intermediates and gradient checkpointing."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN, _resnet_fpn_extractor
from torchvision.ops import FrozenBatchNorm2d

import scsa
from scsa.attention import list_attentions
from scsa.models import MobileNetV2, create_model, load_checkpoint


def bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running_" in k}


def train_step(model: nn.Module, x: torch.Tensor) -> None:
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1)
    out = model(x)
    loss = sum(o.float().mean() for o in (out.values() if isinstance(out, dict) else [out]))
    loss.backward()
    opt.step()


# ---- torchvision's FPN builders --------------------------------------------------------------------


def test_inplanes_is_torchvision_s() -> None:
    assert create_model("scsa_resnet50").inplanes == torchvision.models.resnet50().inplanes == 2048
    assert create_model("scsa_resnet18").inplanes == torchvision.models.resnet18().inplanes == 512


def test_resnet_fpn_extractor_gives_five_maps() -> None:
    fpn = _resnet_fpn_extractor(create_model("scsa_resnet50"), 3).eval()
    with torch.no_grad():
        maps = fpn(torch.randn(1, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in maps.items()} == {
        "0": (1, 256, 16, 16),
        "1": (1, 256, 8, 8),
        "2": (1, 256, 4, 4),
        "3": (1, 256, 2, 2),
        "pool": (1, 256, 1, 1),
    }
    fpn = BackboneWithFPN(
        create_model("scsa_resnet18", norm_layer=FrozenBatchNorm2d),
        {f"layer{i}": str(i - 1) for i in range(1, 5)},
        [64, 128, 256, 512],
        out_channels=16,
    ).eval()
    assert len(fpn(torch.randn(1, 3, 64, 64))) == 5


@pytest.mark.parametrize("trainable_layers", [0, 3, 5])
def test_trainable_layers_freeze_as_on_torchvision_s(trainable_layers: int) -> None:
    def frozen(model: nn.Module) -> set[str]:
        _resnet_fpn_extractor(model, trainable_layers)
        return {n for n, p in model.named_parameters() if not p.requires_grad and ".attn." not in n}

    ours = create_model("scsa_resnet18", norm_layer=FrozenBatchNorm2d)
    theirs = torchvision.models.resnet18(norm_layer=FrozenBatchNorm2d)
    assert frozen(ours) == frozen(theirs)
    # an attention block is trainable exactly when its stage is
    for i in range(1, 5):
        trainable = i > 4 - trainable_layers
        attn = getattr(ours, f"layer{i}")[0].attn
        assert all(p.requires_grad == trainable for p in attn.parameters())


# ---- norm_layer ------------------------------------------------------------------------------------


def test_frozen_batchnorm_keeps_its_statistics_in_training() -> None:
    model = create_model("scsa_resnet18", norm_layer=FrozenBatchNorm2d, num_classes=4)
    frozen = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(frozen) == 1 + 2 * 8 + 3  # stem, two per block, three shortcuts
    assert not any(type(m) is nn.BatchNorm2d for m in model.modules())
    # the attention blocks keep their own norms (SCSA: GroupNorms)
    assert any(isinstance(m, nn.GroupNorm) for m in model.layer1[0].attn.modules())
    before = {
        k: v.clone() for k, v in model.state_dict().items() if k.endswith(("running_mean", "running_var"))
    }
    train_step(model, torch.randn(2, 3, 32, 32))
    after = model.state_dict()
    assert before and all(torch.equal(v, after[k]) for k, v in before.items())
    plain = create_model("scsa_resnet18", num_classes=4)
    before = bn_state(plain)
    train_step(plain, torch.randn(2, 3, 32, 32))
    assert any(not torch.equal(v, plain.state_dict()[k]) for k, v in before.items())  # the test can fail


def test_other_norm_layers() -> None:
    gn = create_model("scsa_resnet18", norm_layer=lambda c: nn.GroupNorm(8, c), num_classes=3).eval()
    assert isinstance(gn.bn1, nn.GroupNorm) and isinstance(gn.layer2[0].downsample[1], nn.GroupNorm)
    assert gn(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    sync = create_model("se_mobilenet_v2", norm_layer=nn.SyncBatchNorm, width_mult=0.5)
    assert isinstance(sync.features[0][1], nn.SyncBatchNorm)
    assert isinstance(sync.blocks()[3].conv[1][1], nn.SyncBatchNorm)
    with pytest.raises(ValueError, match="norm_layer must be a class or callable"):
        create_model("resnet18", norm_layer=nn.BatchNorm2d(3))


# ---- dilation and output stride -------------------------------------------------------------------


def timm_features_like(model: nn.Module, name: str, **kwargs) -> nn.Module:
    """timm's features_only model of ``name`` holding ``model``'s weights."""
    features = timm.create_model(name, features_only=True, **kwargs).eval()
    # timm flattens MobileNetV2's `features.N` into `features_N`
    state = {
        (k.replace("features.", "features_", 1) if k.startswith("features.") else k): v
        for k, v in model.state_dict().items()
    }
    missing, _ = features.load_state_dict(state, strict=False)
    assert not missing
    return features


REDUCTIONS = {8: [2, 4, 8, 8, 8], 16: [2, 4, 8, 16, 16], 32: [2, 4, 8, 16, 32]}


@pytest.mark.parametrize(
    ("name", "output_stride"),
    [
        ("scsa_resnet50", 8),
        ("scsa_resnet18", 16),
        ("scsa_resnet18", 32),
        ("scsa_mobilenet_v2", 8),
        ("scsa_mobilenet_v2", 16),
    ],
)
def test_output_stride(name: str, output_stride: int) -> None:
    reductions = REDUCTIONS[output_stride]
    kwargs = {"width_mult": 0.5} if "mobilenet" in name else {}
    model = create_model(name, output_stride=output_stride, num_classes=0, **kwargs).eval()
    assert [f["reduction"] for f in model.feature_info] == reductions
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        maps = model.forward_intermediates(x, intermediates_only=True)
        assert [32 // m.shape[-1] for m in maps] == reductions
        assert [m.shape[1] for m in maps] == [f["num_chs"] for f in model.feature_info]
        features = timm_features_like(model, name, output_stride=output_stride, **kwargs)
        assert features.feature_info.reduction() == reductions
        assert all(torch.equal(a, b) for a, b in zip(features(x), maps))


def test_dilation_is_torchvision_s() -> None:
    for dilate in ((False, True, True), (False, False, True)):
        tv = torchvision.models.resnet50(replace_stride_with_dilation=list(dilate)).eval()
        ours = create_model("resnet50", replace_stride_with_dilation=dilate).eval()
        ours.load_state_dict(tv.state_dict())
        x = torch.randn(1, 3, 32, 32)
        with torch.no_grad():
            assert torch.equal(ours(x), tv(x))
        assert ours.dilation == tv.dilation
    with pytest.raises(ValueError, match="disagrees with replace_stride_with_dilation"):
        create_model("resnet18", replace_stride_with_dilation=(False, True, True), output_stride=16)
    with pytest.raises(ValueError, match="output_stride must be 8, 16 or 32"):
        create_model("resnet18", output_stride=4)


@pytest.mark.parametrize("attention", [a for a in list_attentions() if a != "none"])
def test_every_attention_on_dilated_stages(attention: str) -> None:
    model = create_model("resnet18", attention=attention, output_stride=8, num_classes=3).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = model.forward_intermediates(x, intermediates_only=True)
        y = model(x)
    assert [m.shape[-1] for m in maps] == [32, 16, 8, 8, 8] and torch.isfinite(y).all()


def test_scsa_on_dilated_mobilenet_trains() -> None:
    model = create_model("scsa_mobilenet_v2", output_stride=8, width_mult=0.5, num_classes=3)
    dw = [blk.conv[blk.dw_index][0] for blk in model.blocks()]
    assert [d.dilation[0] for d in dw] == [1] * 7 + [2] * 7 + [
        4
    ] * 3  # the first of a stage keeps the old one
    assert all(d.stride == (1, 1) for d in dw[6:])
    train_step(model, torch.randn(2, 3, 32, 32))


# ---- frozen stages --------------------------------------------------------------------------------


def test_frozen_stages_resnet() -> None:
    model = create_model("scsa_resnet18", frozen_stages=2, num_classes=3)
    frozen = ("conv1.", "bn1.", "layer1.", "layer2.")
    for name, p in model.named_parameters():
        assert p.requires_grad == (not name.startswith(frozen)), name
    model.train()
    assert not model.bn1.training and not model.layer2[1].bn2.training and not model.layer1[0].attn.training
    assert model.layer3[0].bn1.training
    before = bn_state(model)
    train_step(model, torch.randn(2, 3, 32, 32))
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]) == k.startswith(frozen), k
    with pytest.raises(ValueError, match=r"frozen_stages must be an integer in -1\.\.4"):
        create_model("resnet18", frozen_stages=5)


def test_frozen_stages_mobilenet() -> None:
    model = create_model("scsa_mobilenet_v2", frozen_stages=3, width_mult=0.5, num_classes=3).train()
    frozen = tuple(f"features.{i}." for i in range(7))  # stem + 1 + 2 + 3 blocks
    for name, p in model.named_parameters():
        assert p.requires_grad == (not name.startswith(frozen)), name
    assert not model.features[6].training and model.features[7].training
    assert model.features[6].attn.training is False


# ---- the MobileNetV2 attention child and earlier state dicts ---------------------------------------


@pytest.mark.parametrize("position", ["mid", "post"])
def test_mobilenet_state_dict_of_the_earlier_layout_loads(tmp_path, position: str) -> None:
    model = create_model("scsa_mobilenet_v2", width_mult=0.5, attention_position=position).eval()
    state = model.state_dict()
    assert "features.2.attn.norm_h.weight" in state

    def old_key(key: str) -> str:
        n, rest = key.split(".", 2)[1:]
        if not rest.startswith("attn."):
            return key
        blk = model.features[int(n)]
        place = f"conv.{blk.dw_index}.3" if position == "mid" else f"conv.{len(blk.conv)}"
        return f"features.{n}.{place}.{rest[len('attn.') :]}"

    old = {(old_key(k) if k.startswith("features.") else k): v for k, v in state.items()}
    assert any(".conv.1.3." in k or ".conv.4." in k for k in old)
    fresh = create_model("scsa_mobilenet_v2", width_mult=0.5, attention_position=position).eval()
    fresh.load_state_dict(old)  # strict
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(fresh(x), model(x))
    torch.save(old, tmp_path / "old.pth")
    other = create_model("scsa_mobilenet_v2", width_mult=0.5, attention_position=position).eval()
    report = load_checkpoint(other, tmp_path / "old.pth")
    assert not report.new and torch.equal(other(x), model(x))


# ---- forward_intermediates, pruning, gradient checkpointing ----------------------------------------


@pytest.mark.parametrize("name", ["scsa_resnet18", "scsa_mobilenet_v2"])
def test_forward_intermediates(name: str) -> None:
    kwargs = {"width_mult": 0.5} if "mobilenet" in name else {}
    model = create_model(name, num_classes=0, **kwargs).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        assert torch.equal(final, model.forward_features(x)) and len(maps) == 5
        features = timm_features_like(model, name, **kwargs)
        assert all(torch.equal(a, b) for a, b in zip(features(x), maps))
        last2 = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert [m.shape for m in last2] == [m.shape for m in maps[-2:]]
        picked = model.forward_intermediates(x, indices=[0, -2], intermediates_only=True)
        assert torch.equal(picked[0], maps[0]) and torch.equal(picked[1], maps[3])
        early, some = model.forward_intermediates(x, indices=[1, 2], stop_early=True)
        assert torch.equal(early, maps[2]) and torch.equal(some[1], maps[2])
    with pytest.raises(ValueError, match="out of range"):
        model.forward_intermediates(x, indices=[5])
    with pytest.raises(ValueError, match="output_fmt"):
        model.forward_intermediates(x, output_fmt="NHWC")
    kept = model.prune_intermediate_layers([1, 2])
    assert kept == [1, 2]
    with torch.no_grad():
        assert torch.equal(model(x), maps[2])  # no head, no pooling: timm's pruned model


@pytest.mark.parametrize("name", ["scsa_resnet18", "se_mobilenet_v2"])
def test_grad_checkpointing_gives_the_same_gradients(name: str) -> None:
    kwargs = dict(num_classes=3, drop_rate=0.0)
    if "mobilenet" in name:
        kwargs["width_mult"] = 0.35
    model = create_model(name, **kwargs).train()
    x = torch.randn(2, 3, 16 if "mobilenet" in name else 32, 16 if "mobilenet" in name else 32)
    target = torch.tensor([0, 2])

    def grads() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.zero_grad()
        y = model(x)
        F.cross_entropy(y, target).backward()
        return y.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    state = {k: v.clone() for k, v in model.state_dict().items()}
    y0, g0 = grads()
    model.load_state_dict(state)  # the same BN statistics as the first pass saw
    model.set_grad_checkpointing()
    assert model.grad_checkpointing
    y1, g1 = grads()
    assert torch.allclose(y0, y1, atol=1e-6)
    assert all(torch.allclose(g0[n], g1[n], atol=1e-6, rtol=1e-4) for n in g0)


# ---- the in-place switch --------------------------------------------------------------------------


def test_inplace_attention_switch() -> None:
    def flags(model: nn.Module) -> set[bool]:
        return {m.inplace for m in model.modules() if isinstance(m, scsa.SCSA)}

    assert flags(create_model("scsa_resnet18")) == {True}
    assert flags(create_model("scsa_resnet18", attention_kwargs={"inplace": False})) == {False}
    assert flags(create_model("scsa_mobilenet_v2", attention_kwargs={"inplace": False})) == {False}
    assert flags(create_model("scsa_resnet18", inplace_attention=False)) == {False}
    assert flags(timm.create_model("scsa_resnet18", inplace_attention=False)) == {False}
    model = create_model("scsa_mobilenet_v2")
    assert isinstance(model, MobileNetV2) and model.set_inplace_attention(False) == 17
    assert flags(model) == {False}
    model = create_model("scsa_resnet18").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        a = model(x)
        model.set_inplace_attention(False)
        assert torch.equal(model(x), a)
