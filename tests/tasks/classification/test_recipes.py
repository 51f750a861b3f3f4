"""Recipes: the released configs' values, their scaling to batch and epochs, and overrides."""

from __future__ import annotations

import math

import pytest

from scsa.tasks.classification.recipes import get_recipe, list_recipes, lr_factor


def test_recipes_listed():
    assert list_recipes() == ["paper-mobilenetv2", "paper-resnet", "small"]


def test_paper_resnet_values():
    r = get_recipe("paper-resnet")
    assert (r.optimizer, r.momentum, r.weight_decay, r.epochs, r.batch_size) == ("sgd", 0.9, 1e-4, 100, 128)
    assert (r.image_size, r.eval_resize(), r.augment) == (224, 256, "rrc-flip")
    assert get_recipe("paper-resnet", image_size=160).eval_resize() == 183  # the 256/224 ratio
    # 0.05 for batch 128, linear in the global batch
    assert r.lr_for(128) == pytest.approx(0.05)
    assert r.lr_for(1024) == pytest.approx(0.4)
    # x0.1 at epochs 30, 60, 90 of 100
    factors = [lr_factor(r, e) for e in (0, 29.9, 30, 59.9, 60, 90, 99.9)]
    assert factors == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.001, 0.001])


def test_paper_resnet_milestones_scale_with_epochs():
    r = get_recipe("paper-resnet", epochs=10)
    assert [lr_factor(r, e) for e in (2.9, 3, 6, 9)] == pytest.approx([1, 0.1, 0.01, 0.001])


def test_paper_mobilenetv2_values_and_exp_decay():
    r = get_recipe("paper-mobilenetv2")
    assert (r.batch_size, r.weight_decay, r.epochs) == (96, 4e-5, 400)
    assert r.lr_for(96) == pytest.approx(0.045)
    assert lr_factor(r, 1) == pytest.approx(0.98)
    assert lr_factor(r, 10.5) == pytest.approx(0.98**10)
    # a shorter run keeps the end value of the 400-epoch decay
    short = get_recipe("paper-mobilenetv2", epochs=40)
    assert lr_factor(short, 40) == pytest.approx(lr_factor(r, 400))


def test_small_cosine_with_warmup():
    r = get_recipe("small", epochs=4, warmup_epochs=1.0)
    assert lr_factor(r, 0.5) == pytest.approx(0.5, rel=1e-6)
    assert lr_factor(r, 1.0) == pytest.approx(1.0)
    assert lr_factor(r, 2.5) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(r, 4.0) == pytest.approx(0.0, abs=1e-12)


def test_overrides_and_explicit_lr():
    r = get_recipe("small", epochs=7, batch_size=32, lr=0.3, weight_decay=0.0, image_size=16)
    assert (r.epochs, r.batch_size, r.weight_decay, r.image_size) == (7, 32, 0.0, 16)
    assert r.lr_for(32) == r.lr_for(4096) == 0.3  # an explicit lr is not scaled
    assert get_recipe("small", lr=None).lr is None  # None keeps the recipe's value


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"optimizer": "lion"}, "optimizer must be one of"),
        ({"schedule": "poly"}, "schedule must be one of"),
        ({"lr": -1.0}, "lr must be a finite number > 0"),
        ({"weight_decay": float("nan")}, "weight_decay must be a finite number"),
        ({"label_smoothing": 1.0}, "label_smoothing must be in"),
        ({"milestones": (30, 60)}, "milestones are fractions"),
        ({"epoch": 3}, r"unknown recipe field\(s\) \['epoch'\]"),
    ],
)
def test_bad_overrides(overrides, match):
    with pytest.raises(ValueError, match=match):
        get_recipe("small", **overrides)


def test_unknown_recipe():
    with pytest.raises(
        ValueError, match="unknown recipe 'paper'; known: paper-mobilenetv2, paper-resnet, small"
    ):
        get_recipe("paper")
