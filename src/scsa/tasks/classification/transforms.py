"""Image transforms whose randomness comes from an explicit seed, one per sample and epoch.

The train sampler hands every sample its own seed (see :class:`scsa.tasks.classification.data.SeededSampler`), so an
augmented batch depends only on (run seed, epoch, sample index): not on the number of data-loader
workers, the number of processes, or whether the run was resumed from a checkpoint. The geometric ops
are torchvision's functional ones; only their random parameters are drawn here, from a
``random.Random`` of their own, as torchvision's ``RandomResizedCrop`` / ``RandomCrop`` / ``RandomHorizontalFlip``
draw them from the global generator.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.v2 import functional as TF

__all__ = ["ImageTransform"]


def _to_uint8_tensor(img: Image.Image | torch.Tensor) -> torch.Tensor:
    if isinstance(img, Image.Image):
        return TF.pil_to_tensor(img.convert("RGB"))
    return img


def _resized_crop_params(
    h: int, w: int, rng: random.Random, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)
) -> tuple[int, int, int, int]:
    """``RandomResizedCrop``'s sampling: 10 tries at a random area and aspect, else a center crop."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        cw = round(math.sqrt(target * aspect))
        ch = round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            i = rng.randint(0, h - ch)
            j = rng.randint(0, w - cw)
            return i, j, ch, cw
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, round(w / ratio[0])
    elif in_ratio > ratio[1]:
        ch, cw = h, round(h * ratio[1])
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


class ImageTransform:
    """Train or eval preprocessing of one image (PIL or ``uint8`` CHW tensor) to a normalised float tensor.

    ``augment``: ``"rrc-flip"`` (RandomResizedCrop + horizontal flip, the SCSA paper's ImageNet train
    transform, Si et al., https://arxiv.org/abs/2407.05128), ``"crop-flip"`` (resize, pad by ``crop_padding``
    of the size and random-crop, flip; for small images), ``"none"``; eval always resizes the short side to
    ``resize_size`` and center-crops ``image_size``. ``flip=False`` turns the flip off (digits).
    """

    def __init__(
        self,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        train: bool,
        augment: str = "crop-flip",
        resize_size: int | None = None,
        flip: bool = True,
        crop_padding: float = 0.125,
    ) -> None:
        self.image_size = image_size
        self.resize_size = resize_size or image_size
        self.train = train
        self.augment = augment if train else "none"
        self.flip = flip
        self.pad = max(1, round(image_size * crop_padding))
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, img: Image.Image | torch.Tensor, seed: int | None = None) -> torch.Tensor:
        x = _to_uint8_tensor(img)
        if self.augment != "none" and seed is None:
            raise ValueError("a random train transform needs a seed")
        # Python's generator: seeding one costs microseconds, a torch.Generator call tens of them.
        rng = random.Random(seed)
        s = self.image_size
        if self.augment == "rrc-flip":
            i, j, h, w = _resized_crop_params(x.shape[-2], x.shape[-1], rng)
            x = TF.resized_crop(x, i, j, h, w, [s, s], antialias=True)
        elif self.augment == "crop-flip":
            x = self._resize_center(x, s)
            pad = self.pad
            i, j = rng.randint(0, 2 * pad), rng.randint(0, 2 * pad)
            x = F.pad(x, (pad, pad, pad, pad))[..., i : i + s, j : j + s]
        else:
            x = self._resize_center(x, self.resize_size if not self.train else s)
        if self.augment != "none" and self.flip and rng.random() < 0.5:
            x = x.flip(-1)
        x = x.to(torch.float32).div_(255.0)
        return x.sub_(self.mean).div_(self.std)

    def _resize_center(self, x: torch.Tensor, short: int) -> torch.Tensor:
        s = self.image_size
        if x.shape[-2:] != (s, s):
            if min(x.shape[-2:]) != short:
                x = TF.resize(x, [short], antialias=True)
            x = TF.center_crop(x, [s, s])
        return x

    def __repr__(self) -> str:
        mode = f"train, augment={self.augment!r}, flip={self.flip}" if self.train else "eval"
        return f"ImageTransform(image_size={self.image_size}, resize_size={self.resize_size}, {mode})"
