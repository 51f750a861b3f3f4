"""build_detector: every detector on a couple of backbones/attentions trains a step and predicts."""

import pytest
import torch

import scsa
from scsa.tasks.detection.model import build_detector

TINY = {"min_size": 64, "max_size": 64, "anchor_base": 8}


def _batch():
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 48)]
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[0, 10:40, 5:30] = 1
    targets = [
        {"boxes": torch.tensor([[5.0, 10, 30, 40]]), "labels": torch.tensor([2]), "masks": masks},
        {
            "boxes": torch.zeros(0, 4),
            "labels": torch.zeros(0, dtype=torch.int64),
            "masks": torch.zeros(0, 64, 48, dtype=torch.uint8),
        },  # a negative image
    ]
    return images, targets


@pytest.mark.parametrize("detector", ["fasterrcnn", "retinanet", "fcos", "maskrcnn"])
@pytest.mark.parametrize(("backbone", "attention"), [("resnet18", "scsa"), ("mobilenet_v2", "eca")])
def test_every_detector_trains_a_step_and_predicts(detector, backbone, attention):
    model = build_detector(detector, backbone, attention, num_classes=4, box_head_dim=32, **TINY)
    images, targets = _batch()
    model.train()
    losses = model(images, targets)
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for n, p in model.backbone.named_parameters() if p.requires_grad and "attn" in n]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)  # the attention learns
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and out[0]["boxes"].shape[1] == 4
    assert set(out[0]) >= {"boxes", "scores", "labels"} | ({"masks"} if detector == "maskrcnn" else set())


def test_fpn_levels_frozen_layers_and_bn():
    from torchvision.ops import FrozenBatchNorm2d
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

    two = build_detector("fasterrcnn", "resnet18", "none", num_classes=3, trainable_layers=3, **TINY)
    one = build_detector("retinanet", "resnet18", "none", num_classes=3, **TINY)
    assert isinstance(two.backbone.fpn.extra_blocks, LastLevelMaxPool)
    assert isinstance(one.backbone.fpn.extra_blocks, LastLevelP6P7)
    body = two.backbone.body
    assert not any(p.requires_grad for p in body.layer1.parameters())
    assert all(p.requires_grad for p in body.layer2.parameters())
    assert isinstance(body.bn1, FrozenBatchNorm2d)
    with torch.no_grad():
        feats = two.backbone(torch.rand(1, 3, 64, 64))
    assert list(feats) == ["0", "1", "2", "3", "pool"] and all(f.shape[1] == 256 for f in feats.values())
    bn = build_detector("fcos", "resnet18", "none", num_classes=3, norm_layer="bn", **TINY)
    assert isinstance(bn.backbone.body.bn1, torch.nn.BatchNorm2d)


def test_backbone_weights_load_and_freeze_their_statistics(tmp_path):
    src = scsa.create_model("resnet18", attention="scsa", num_classes=10)
    with torch.no_grad():
        src.bn1.running_mean.uniform_()
    path = tmp_path / "backbone.pth"
    torch.save({"state_dict": src.state_dict()}, path)
    model = build_detector("fasterrcnn", "resnet18", "scsa", num_classes=3, backbone_weights=path, **TINY)
    body = model.backbone.body
    assert torch.equal(body.conv1.weight, src.conv1.weight)
    assert torch.equal(body.bn1.running_mean, src.bn1.running_mean)


def test_bad_arguments():
    with pytest.raises(ValueError, match="detector must be one of"):
        build_detector("yolo", "resnet18", num_classes=3)
    with pytest.raises(ValueError, match="num_classes counts the background"):
        build_detector("fcos", "resnet18", num_classes=1)
    with pytest.raises(ValueError, match="norm_layer"):
        build_detector("fcos", "resnet18", num_classes=3, norm_layer="gn")
