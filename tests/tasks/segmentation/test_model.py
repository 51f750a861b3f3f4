"""smp decoders on scsa encoders: every decoder on a few backbones and attentions, tiny sizes."""

import pytest
import timm
import torch

import scsa
from scsa.tasks.segmentation.model import build_segmenter, encoder_name, segmenter_from_spec

CASES = [
    ("upernet", "resnet18", "scsa"),
    ("fpn", "resnet18", "se"),
    ("deeplabv3plus", "resnet18", "scsa"),
    ("unet", "resnet18", "eca"),
    ("fpn", "mobilenet_v2", "scsa"),
]


@pytest.mark.parametrize(("decoder", "backbone", "attention"), CASES)
def test_forward_backward_and_rebuild(decoder, backbone, attention):
    model = build_segmenter(
        decoder, backbone, attention, num_classes=5, decoder_channels=None if decoder == "unet" else 32
    )
    x = torch.randn(2, 3, 64, 64)
    logits, aux = model.forward_train(x)
    assert logits.shape == (2, 5, 64, 64) and aux is None
    logits.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.encoder.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    # the attention is inside the encoder (none: no attention module at all)
    names = [type(m).__name__ for m in model.encoder.modules()]
    want = {"scsa": "SCSA", "se": "SqueezeExcite", "eca": "ECA"}.get(attention)
    if want is not None:
        assert any(want.lower() in n.lower() for n in names), names[:40]
    rebuilt = segmenter_from_spec(model.spec)
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in model.parameters())


def test_aux_head_and_output_stride():
    model = build_segmenter(
        "upernet", "resnet18", "scsa", num_classes=3, output_stride=8, aux_head=True, decoder_channels=32
    )
    feats = model.encoder(torch.randn(2, 3, 64, 64))
    assert feats[-1].shape[-1] == 8  # stride 8 on a 64 px input
    logits, aux = model.forward_train(torch.randn(2, 3, 64, 64))
    assert logits.shape == aux.shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="output_stride"):
        build_segmenter("unet", "resnet18", "scsa", num_classes=3, output_stride=8)


def test_names_weights_and_errors(tmp_path):
    assert encoder_name("resnet50", "scsa") == "scsa_resnet50"
    assert encoder_name("scsa_resnet18", "scsa") == "scsa_resnet18"
    plain = encoder_name("resnet18", "none")
    assert timm.is_model(plain)
    # the plain encoder has our ResNet's parameters and keys (so the same weights load)
    ours = scsa.create_model("resnet18", num_classes=0)
    theirs = timm.create_model(plain, num_classes=0)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    with pytest.raises(ValueError, match="download"):
        build_segmenter("upernet", "resnet18", "scsa", num_classes=3, encoder_weights="imagenet")
    with pytest.raises(ValueError, match="unknown decoder"):
        build_segmenter("segnet", "resnet18", "scsa", num_classes=3)
    with pytest.raises(ValueError, match="nope"):
        build_segmenter("fpn", "resnet18", "nope", num_classes=3)
    # backbone_weights: a local classification checkpoint lands in the encoder
    source = scsa.create_model("scsa_resnet18", num_classes=10)
    path = tmp_path / "cls.pth"
    torch.save(source.state_dict(), path)
    model = build_segmenter(
        "fpn", "resnet18", "scsa", num_classes=3, backbone_weights=path, decoder_channels=32
    )
    enc = model.encoder.model.state_dict()
    torch.testing.assert_close(enc["layer3.0.conv1.weight"], source.state_dict()["layer3.0.conv1.weight"])
    assert "loaded" in model.spec["backbone_weights_report"]


def test_recipe_optimizer_and_dice_loss():
    import dataclasses

    from scsa.tasks.segmentation.module import SegmentationModule
    from scsa.tasks.segmentation.recipes import get_recipe

    small = get_recipe("small")
    assert small.optimizer == "adamw" and small.dice_weight > 0
    model = build_segmenter("fpn", "resnet18", "none", num_classes=3, decoder_channels=16)
    module = SegmentationModule(model.spec, ["a", "b", "c"], small, model=model)
    assert isinstance(module.configure_optimizers()["optimizer"], torch.optim.AdamW)
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    y[0, :4] = 255  # ignored pixels stay out of both losses
    logits, _ = model.forward_train(x)
    ce = torch.nn.functional.cross_entropy(logits, y, ignore_index=255)
    # the training loss is CE + dice_weight x Dice, Dice in (0, 1]
    total = float(module.training_step((x, y), 0).detach())
    assert ce.item() < total <= ce.item() + small.dice_weight + 1e-4
    sgd = SegmentationModule(
        model.spec, ["a", "b", "c"], dataclasses.replace(small, optimizer="sgd"), model=model
    )
    assert isinstance(sgd.configure_optimizers()["optimizer"], torch.optim.SGD)
    bad = SegmentationModule(
        model.spec, ["a", "b", "c"], dataclasses.replace(small, optimizer="lamb"), model=model
    )
    with pytest.raises(ValueError, match="lamb"):
        bad.configure_optimizers()
