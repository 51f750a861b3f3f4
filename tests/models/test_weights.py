"""Weights: our checkpoints, torchvision's (into the non-attention part) and MMPretrain's released layout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision

from scsa import SCSA
from scsa.models import (
    convert_mmpretrain,
    create_model,
    load_checkpoint,
    load_mmpretrain_weights,
    load_torchvision_weights,
    read_checkpoint,
)


def randomize_(model: torch.nn.Module) -> torch.nn.Module:
    """Random BN statistics and affine terms, so that a wrong mapping cannot go unnoticed."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.normal_(1, 0.1)
                m.bias.normal_(0, 0.1)
    return model.eval()


def attention_keys(model: torch.nn.Module) -> list[str]:
    return sorted(k for k in model.state_dict() if ".attn." in k or re.search(r"conv\.\d+\.3\.", k))


SCSA_TENSORS = len(SCSA(64).state_dict())  # parameters and buffers of one block


class NotATensor:
    pass


# ---- torchvision --------------------------------------------------------------------------------


def test_torchvision_resnet50_into_scsa_resnet50() -> None:
    tv = randomize_(torchvision.models.resnet50())
    model = create_model("scsa_resnet50").eval()
    report = load_torchvision_weights(model, tv)
    assert report.new == attention_keys(model) and len(report.new) == 16 * SCSA_TENSORS
    assert report.loaded == sorted(tv.state_dict()) and report.skipped == []
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in tv.state_dict().items())
    # with no attention the network is torchvision's, number for number
    plain = create_model("resnet50").eval()
    assert load_torchvision_weights(plain, tv.state_dict()).new == []
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(plain(x), tv(x))


def test_torchvision_mobilenet_v2() -> None:
    tv = randomize_(torchvision.models.mobilenet_v2())
    plain = create_model("mobilenet_v2").eval()
    assert load_torchvision_weights(plain, tv).new == []
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(plain(x), tv(x))
    model = create_model("scsa_mobilenet_v2").eval()
    report = load_torchvision_weights(model, tv)
    assert report.new == attention_keys(model) and len(report.new) == 17 * SCSA_TENSORS


def test_pretrained_path_with_a_new_head_and_a_warning(tmp_path: Path) -> None:
    tv = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(tv.state_dict(), path)
    with pytest.warns(
        UserWarning, match=r"138 new in 9 modules \(layer1.0.attn, .*keep their initialisation"
    ):
        model = create_model("scsa_resnet18", num_classes=10, pretrained=path)
    assert torch.equal(model.layer3[1].conv2.weight, tv.layer3[1].conv2.weight)
    report = load_checkpoint(model, path)
    assert report.skipped == ["fc.bias", "fc.weight"]  # a 1000-class head does not fit a 10-class one
    assert set(report.new) == {"fc.bias", "fc.weight", *attention_keys(model)}
    assert report.new_modules == [f"layer{i}.{j}.attn" for i in range(1, 5) for j in range(2)] + ["fc"]
    headless = create_model("resnet18", num_classes=0)
    assert load_torchvision_weights(headless, tv).skipped == ["fc.bias", "fc.weight"]


def test_cifar_stem_needs_an_explicit_exclude() -> None:
    tv = torchvision.models.resnet18()
    model = create_model("resnet18", num_classes=1000, stem="cifar")
    with pytest.raises(ValueError, match=r"shape mismatch \(1\):\n    conv1.weight: \(64, 3, 7, 7\)"):
        load_torchvision_weights(model, tv)
    report = load_torchvision_weights(model, tv, exclude=("conv1.",))
    assert report.new == ["conv1.weight"] and report.skipped == ["conv1.weight"]


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": {"module." + k: v for k, v in sd.items()}, "epoch": 3},
        lambda sd: {"state_dict": {"model._orig_mod." + k: v for k, v in sd.items()}},
        lambda sd: {"model": sd, "optimizer": {"lr": 0.1}},
    ],
    ids=["plain", "ddp", "lightning-compiled", "model-key"],
)
def test_our_checkpoints_in_their_wrappers(tmp_path: Path, wrap) -> None:
    source = randomize_(create_model("scsa_resnet18", num_classes=10, stem="cifar"))
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(source.state_dict()), path)
    assert set(read_checkpoint(path)) == set(source.state_dict())
    model = create_model("scsa_resnet18", num_classes=10, stem="cifar", pretrained=path).eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), source(x))


def test_mismatched_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    small = create_model("resnet18").state_dict()
    with pytest.raises(
        ValueError, match=r"(?s)missing from the checkpoint \(165\):.*layer1.0.conv3.weight.*shape mismatch"
    ):
        load_checkpoint(create_model("resnet50"), small)
    with pytest.raises(
        ValueError, match=r"(?s)unexpected \(not in the model\) \(198\):.*layer1.0.conv3.weight"
    ):
        load_checkpoint(create_model("resnet18"), create_model("resnet50").state_dict())
    # a checkpoint with only part of the attention is not "a plain backbone": it must not load silently
    partial = create_model("scsa_resnet18").state_dict()
    del partial["layer2.1.attn.q.weight"]
    with pytest.raises(ValueError, match=r"missing from the checkpoint \(1\):\n    layer2.1.attn.q.weight"):
        load_checkpoint(create_model("scsa_resnet18"), partial)
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(create_model("resnet18"), tmp_path / "nothing.pth")
    with pytest.raises(ValueError, match="holds no state dict"):
        load_checkpoint(create_model("resnet18"), {"epoch": 1})


def test_weights_only_refuses_python_objects(tmp_path: Path) -> None:
    path = tmp_path / "meta.pth"
    torch.save({"state_dict": create_model("resnet18").state_dict(), "meta": NotATensor()}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        read_checkpoint(path)


# ---- MMPretrain ---------------------------------------------------------------------------------


def to_mmpretrain_resnet(state: dict, norm: str) -> dict:
    """Our ResNet keys the way MMPretrain's ImageClassifier names them (mmcv: bnN or normN)."""
    out = {}
    for k, v in state.items():
        if k.startswith("fc."):
            out["head." + k] = v
        else:
            out["backbone." + re.sub(r"(^|\.)bn(\d)\.", rf"\g<1>{norm}\2.", k)] = v
    return out


# MMPretrain's MobileNetV2: layerS.B for stage S (1..7), block B; features.N counts blocks from 1
_STAGES = [1, 2, 3, 4, 3, 3, 1]
_MM_NAMES = {
    (n + 1): (s + 1, b)
    for n, (s, b) in enumerate((s, b) for s, count in enumerate(_STAGES) for b in range(count))
}


def to_mmpretrain_mobilenet(state: dict) -> dict:
    out = {}
    for k, v in state.items():
        if k.startswith("classifier.1."):
            out["head.fc." + k[len("classifier.1.") :]] = v
            continue
        n, rest = re.match(r"features\.(\d+)\.(.*)", k).groups()
        n = int(n)
        if n == 0 or n == 18:
            unit = "conv1" if n == 0 else "conv2"
            idx, tail = rest.split(".", 1)
            out[f"backbone.{unit}.{'conv' if idx == '0' else 'bn'}.{tail}"] = v
            continue
        stage, block = _MM_NAMES[n]
        prefix = f"backbone.layer{stage}.{block}."
        expand = stage > 1  # the first stage has expansion 1: no 1x1 expand conv
        if rest.startswith("attn."):
            out[prefix + rest] = v
            continue
        i, j, tail = re.match(r"conv\.(\d+)\.(?:(\d+)\.)?(.*)", rest).groups()
        i = int(i)
        proj = 2 if expand else 1
        if i < proj:
            out[prefix + f"conv.{i}.{'conv' if j == '0' else 'bn'}.{tail}"] = v
        else:  # projection conv (index proj) and its BN (index proj + 1)
            out[prefix + f"conv.{proj}.{'conv' if i == proj else 'bn'}.{tail}"] = v
    return out


@pytest.mark.parametrize("norm", ["bn", "norm"])
def test_mmpretrain_resnet_scsa(tmp_path: Path, norm: str) -> None:
    source = randomize_(create_model("scsa_resnet18", num_classes=10, stem="cifar"))
    mm = to_mmpretrain_resnet(source.state_dict(), norm)
    assert "backbone.layer2.1.attn.q.weight" in mm and "head.fc.weight" in mm
    assert set(convert_mmpretrain(mm)) == set(source.state_dict())
    path = tmp_path / "resnet_scsa.pth"
    torch.save({"meta": {"epoch": 100, "mmpretrain_version": "1.2.0"}, "state_dict": mm}, path)
    model = create_model("scsa_resnet18", num_classes=10, stem="cifar", pretrained=path).eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), source(x))


def test_mmpretrain_mobilenet_v2_scsa(tmp_path: Path) -> None:
    source = randomize_(create_model("scsa_mobilenet_v2", num_classes=10, stem="cifar", width_mult=0.5))
    mm = to_mmpretrain_mobilenet(source.state_dict())
    assert {
        "backbone.conv1.conv.weight",
        "backbone.layer1.0.attn.q.weight",
        "backbone.layer7.0.conv.2.bn.weight",
    } <= set(mm)
    assert set(convert_mmpretrain(mm)) == set(source.state_dict())
    model = create_model("scsa_mobilenet_v2", num_classes=10, stem="cifar", width_mult=0.5).eval()
    report = load_mmpretrain_weights(model, mm)
    assert report.new == [] and report.skipped == []
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), source(x))


def test_mmpretrain_mismatch_and_deep_stem() -> None:
    mm = to_mmpretrain_resnet(create_model("scsa_resnet18").state_dict(), "bn")
    with pytest.raises(ValueError, match="MMPretrain checkpoint does not fit ResNet"):
        load_checkpoint(create_model("scsa_resnet34"), mm)
    with pytest.raises(ValueError, match="deep stem"):
        convert_mmpretrain({"backbone.stem.0.conv.weight": torch.zeros(1), **mm})


def test_safetensors_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = randomize_(create_model("scsa_resnet18", num_classes=10, stem="cifar"))
    path = tmp_path / "model.safetensors"
    save_file(source.state_dict(), str(path))
    model = create_model("scsa_resnet18", num_classes=10, stem="cifar", pretrained=path).eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), source(x))
