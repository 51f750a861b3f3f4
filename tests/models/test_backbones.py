"""Every registered attention in every backbone: build, eval forward, one training step.

The attention list is read from the registry when the tests are collected, so blocks added to the
zoo later are covered without touching this file.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scsa.attention import list_attentions
from scsa.models import create_model

ATTENTIONS = list_attentions()


def build(arch: str, attention: str, **kwargs) -> torch.nn.Module:
    # strict: every block of the zoo must fit every channel count of every backbone (issue 3)
    return create_model(arch, attention=attention, num_classes=10, **kwargs)


def eval_then_train_step(model: torch.nn.Module, x: torch.Tensor) -> None:
    # eval first: after one step, BN running statistics of a 2-image batch say little about the model
    model.eval()
    with torch.no_grad():
        y = model(x)
    assert y.shape == (x.shape[0], 10) and torch.isfinite(y).all()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    y = model(x)
    assert y.shape == (x.shape[0], 10)
    loss = F.cross_entropy(y, torch.arange(x.shape[0]) % 10)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without a gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


@pytest.mark.parametrize("position", ["mid", "post"])
@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_small_backbones_cifar(arch: str, attention: str, position: str) -> None:
    model = build(arch, attention, stem="cifar", attention_position=position)
    eval_then_train_step(model, torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_resnet50_imagenet_stem(attention: str) -> None:
    model = build("resnet50", attention)
    eval_then_train_step(model, torch.randn(2, 3, 64, 64))


@pytest.mark.parametrize("attention", ["none", "scsa"])
@pytest.mark.parametrize("arch", ["resnet34", "resnet101", "resnet152", "resnext50_32x4d"])
def test_large_backbones_build_and_forward(arch: str, attention: str) -> None:
    model = build(arch, attention, stem="cifar").eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, 32, 32))
    assert y.shape == (1, 10) and torch.isfinite(y).all()
