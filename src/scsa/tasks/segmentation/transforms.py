"""MMSegmentation's ADE20K pipeline, built from torchvision transforms v2; whole and sliding inference.

The UPerNet recipe that SCSA (arXiv 2407.05128) was evaluated with trains on
``RandomResize(scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True)`` ->
``RandomCrop(512, cat_max_ratio=0.75)`` -> ``RandomFlip(0.5)`` -> ``PhotoMetricDistortion`` and
tests on the image resized to fit ``(2048, 512)``, predictions brought back to the original size.

Images and masks travel as ``tv_tensors.Image`` / ``tv_tensors.Mask`` so that every geometric op
of ``torchvision.transforms.v2.functional`` treats the mask as labels: nearest-neighbour resizing,
never bilinear. Padding fills images with 0 and masks with the ignore index (MMSegmentation's
``pad_val=0, seg_pad_val=255``). Randomness comes from torch's global generator, which the engine
reseeds per epoch (exact resume).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from scsa.tasks.segmentation.data import IGNORE_INDEX

__all__ = ["EvalTransform", "TrainTransform", "collate_eval", "infer_logits", "rescale_size"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def rescale_size(h: int, w: int, scale: tuple[int, int]) -> tuple[int, int]:
    """MMCV's ``rescale`` with ``keep_ratio``: the largest size whose long side <= max(scale) and short
    side <= min(scale)."""
    factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return max(1, int(h * factor + 0.5)), max(1, int(w * factor + 0.5))


class TrainTransform:
    """Random rescale (``ratio_range`` of ``scale``) -> crop with ``cat_max_ratio`` -> flip -> photometric
    distortion -> pad to ``crop_size`` -> normalise. Takes and returns ``(image (3, H, W), labels (H, W))``."""

    def __init__(
        self,
        crop_size: tuple[int, int] = (512, 512),
        scale: tuple[int, int] = (2048, 512),
        ratio_range: tuple[float, float] = (0.5, 2.0),
        cat_max_ratio: float = 0.75,
        flip_prob: float = 0.5,
        photometric: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        self.crop_size = tuple(crop_size)
        self.scale = tuple(scale)
        self.ratio_range = tuple(ratio_range)
        self.cat_max_ratio = cat_max_ratio
        self.flip_prob = flip_prob
        # torchvision's version of the SSD/MMSegmentation distortion: each of brightness, contrast,
        # saturation, hue with probability 0.5, contrast before or after the colour ones at random
        self.photometric = v2.RandomPhotometricDistort(p=0.5) if photometric else None
        self.mean, self.std = list(mean), list(std)

    def _crop_box(self, labels: torch.Tensor) -> tuple[int, int, int, int]:
        h, w = labels.shape[-2:]
        ch, cw = min(self.crop_size[0], h), min(self.crop_size[1], w)

        def draw() -> tuple[int, int, int, int]:
            top = int(torch.randint(0, h - ch + 1, ()).item())
            left = int(torch.randint(0, w - cw + 1, ()).item())
            return top, left, ch, cw

        box = draw()
        if self.cat_max_ratio < 1.0:
            # MMSegmentation: up to 10 draws for a crop where no single class covers more than
            # cat_max_ratio of the labelled pixels (and more than one class is present)
            for _ in range(10):
                t, lft, hh, ww = box
                counts = torch.bincount(labels[t : t + hh, lft : lft + ww].flatten(), minlength=256)[
                    :IGNORE_INDEX
                ]
                counts = counts[counts > 0]
                if len(counts) > 1 and counts.max().item() / counts.sum().item() < self.cat_max_ratio:
                    break
                box = draw()
        return box

    def __call__(self, image: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img, mask = tv_tensors.Image(image), tv_tensors.Mask(labels)
        h, w = mask.shape[-2:]
        ratio = float(torch.empty(()).uniform_(*self.ratio_range))
        size = rescale_size(h, w, (int(self.scale[0] * ratio), int(self.scale[1] * ratio)))
        img = TF.resize(img, list(size), antialias=True)
        mask = TF.resize(mask, list(size))  # a Mask: nearest neighbour
        top, left, ch, cw = self._crop_box(mask)
        img, mask = TF.crop(img, top, left, ch, cw), TF.crop(mask, top, left, ch, cw)
        if torch.rand(()) < self.flip_prob:
            img, mask = TF.horizontal_flip(img), TF.horizontal_flip(mask)
        if self.photometric is not None:
            img = self.photometric(img)
        pad_h, pad_w = self.crop_size[0] - ch, self.crop_size[1] - cw
        if pad_h or pad_w:
            img = TF.pad(img, [0, 0, pad_w, pad_h], fill=0)
            mask = TF.pad(mask, [0, 0, pad_w, pad_h], fill=IGNORE_INDEX)
        out = TF.normalize(TF.to_dtype(img, torch.float32, scale=True), self.mean, self.std)
        return out.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()


class EvalTransform:
    """Resize the image to fit ``scale`` keeping its ratio (``None``: as it is) and normalise; the labels
    stay at the original resolution, where the metrics are computed."""

    def __init__(
        self,
        scale: tuple[int, int] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        self.scale = tuple(scale) if scale is not None else None
        self.mean, self.std = list(mean), list(std)

    def __call__(self, image: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img = tv_tensors.Image(image)
        if self.scale is not None:
            img = TF.resize(img, list(rescale_size(*img.shape[-2:], self.scale)), antialias=True)
        out = TF.normalize(TF.to_dtype(img, torch.float32, scale=True), self.mean, self.std)
        return out.as_subclass(torch.Tensor), labels


def collate_eval(batch: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> dict:
    """Pad images (0) and labels (255) of different sizes into one batch and keep each one's size."""
    images, labels = zip(*batch)
    ih = max(i.shape[-2] for i in images)
    iw = max(i.shape[-1] for i in images)
    mh = max(m.shape[-2] for m in labels)
    mw = max(m.shape[-1] for m in labels)
    img = torch.stack([F.pad(i, (0, iw - i.shape[-1], 0, ih - i.shape[-2])) for i in images])
    mask = torch.stack(
        [F.pad(m, (0, mw - m.shape[-1], 0, mh - m.shape[-2]), value=IGNORE_INDEX) for m in labels]
    )
    return {
        "image": img,
        "mask": mask,
        "image_size": [tuple(i.shape[-2:]) for i in images],
        "mask_size": [tuple(m.shape[-2:]) for m in labels],
    }


def _pad_to(x: torch.Tensor, divisor: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    return F.pad(x, (0, math.ceil(w / divisor) * divisor - w, 0, math.ceil(h / divisor) * divisor - h))


@torch.no_grad()
def infer_logits(
    model: torch.nn.Module,
    images: torch.Tensor,
    mode: str = "whole",
    crop_size: tuple[int, int] = (512, 512),
    stride: tuple[int, int] | None = None,
    size_divisor: int = 32,
) -> torch.Tensor:
    """Class logits ``(B, K, H, W)`` at the size of ``images``.

    ``whole``: one pass over the image padded to a multiple of ``size_divisor`` (smp's encoders need
    it). ``slide``: windows of ``crop_size`` every ``stride`` (default 2/3 of the crop, as
    MMSegmentation's 512/341), each padded like a whole image, logits averaged where they overlap.
    """
    h, w = images.shape[-2:]
    if mode == "whole":
        return model(_pad_to(images, size_divisor))[..., :h, :w]
    if mode != "slide":
        raise ValueError(f"inference mode must be 'whole' or 'slide', got {mode!r}")
    ch, cw = crop_size
    sh, sw = stride if stride is not None else (max(1, ch * 2 // 3), max(1, cw * 2 // 3))
    rows = max(math.ceil((h - ch) / sh), 0) + 1
    cols = max(math.ceil((w - cw) / sw), 0) + 1
    total = None
    count = images.new_zeros((1, 1, h, w))
    for r in range(rows):
        for c in range(cols):
            y1, x1 = min(r * sh, max(h - ch, 0)), min(c * sw, max(w - cw, 0))
            y2, x2 = min(y1 + ch, h), min(x1 + cw, w)
            window = images[..., y1:y2, x1:x2]
            out = model(_pad_to(window, size_divisor))[..., : y2 - y1, : x2 - x1]
            if total is None:
                total = images.new_zeros((images.shape[0], out.shape[1], h, w))
            total[..., y1:y2, x1:x2] += out
            count[..., y1:y2, x1:x2] += 1
    return total / count
