"""Fixtures of the engine tests: tiny image folders written with PIL, and a tiny network.

Everything here is sized for a 2-core CI machine: a few dozen 16×16 images, a network of a few hundred
parameters. The class of an image is visible in its colour, so a tiny network learns something in a
couple of epochs and the metrics move.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch import nn

COLORS = [(220, 40, 40), (40, 200, 40), (40, 60, 220), (200, 200, 40)]


def write_folder(
    root: Path,
    classes: int = 3,
    train_per_class: int = 16,
    val_per_class: int = 8,
    size: int = 16,
    seed: int = 0,
) -> Path:
    """``root/train/<class>/*.png`` and ``root/val/<class>/*.png``: noisy images tinted by class."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                noise = rng.integers(0, 90, (size, size, 3))
                pixels = np.clip(np.asarray(COLORS[c % len(COLORS)]) * 0.6 + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


def tiny_net(num_classes: int = 3) -> nn.Module:
    """Conv + GroupNorm (no BatchNorm: its per-process statistics would differ under DDP) + linear head.

    Built from torch.nn classes only, so ddp_spawn can pickle it to the worker processes.
    """
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.GroupNorm(2, 8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "data")


@pytest.fixture(scope="session")
def make_folder():
    return write_folder


@pytest.fixture(scope="session")
def make_net():
    return tiny_net


@pytest.fixture(autouse=True)
def _quiet_lightning():
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
