"""``mnistseg``: the embedded segmentation data, canvases composed from the 5,000 real MNIST digits.

Each canvas is an RGB image (default 64×64) holding 1-3 digits of random size (side 1/2-3/4 of the
canvas), position and colour on a dark, noisy, tinted background; the mask labels every pixel ``0``
(background) or ``1 + d`` for a stroke of digit ``d`` (11 classes). Train canvases use only the train
digits of :func:`scsa.data.mnist_split`, val canvases only the val digits, so no digit is seen in both.

How the labels are made (the rules a user needs to read the data):

* A pixel belongs to a digit where the digit's (resized) intensity is at least half of full scale;
  fainter anti-aliased rims stay background, as the eye reads them.
* Digits are painted in order; where two overlap, the later one covers the earlier in both the
  image (alpha compositing by the stroke intensity) and the mask (its label overwrites). Placement
  tries to keep overlaps small, so most canvases have none.
* Canvas ``i`` of a split depends only on ``(seed, split, i)``: any prefix is the same data, on
  every machine, without a download.

:func:`export_mnistseg` writes the canvases in the ADE20K layout (annotation value = label + 1, 0
would mean "unlabelled"), so the file readers and ``--format ade20k`` can be tried on real files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from scsa.data import mnist_digits, mnist_split

__all__ = ["MNISTSEG", "MNISTSEG_CLASSES", "export_mnistseg", "make_mnistseg"]

MNISTSEG = "mnistseg"
MNISTSEG_CLASSES: tuple[str, ...] = ("background", *(f"digit_{d}" for d in range(10)))
_SPLIT_CODE = {"train": 1, "val": 2}
# a digit's side, in eighths of the canvas: half to three quarters, so that the strokes stay a few
# pixels wide after the encoder's stride-4 stem (digits cover ~10 % of the pixels; at 3/8-5/8, 6.6 %,
# the small recipe found the strokes more slowly)
DIGIT_SIDE = (4, 6)


def _resize_digit(digit: np.ndarray, size: int) -> np.ndarray:
    """A 28×28 uint8 digit resized to ``size``×``size`` floats in [0, 1] (bilinear: it is an image)."""
    t = torch.from_numpy(digit.astype(np.float32) / 255.0)[None, None]
    out = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return out[0, 0].clamp_(0, 1).numpy()


def _canvas(
    rng: np.random.Generator, digits: np.ndarray, labels: np.ndarray, pool: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    base = rng.uniform(0.0, 0.25, size=3)
    image = base[None, None, :] + rng.normal(0.0, 0.04, size=(size, size, 3))
    mask = np.zeros((size, size), dtype=np.uint8)
    boxes: list[tuple[int, int, int]] = []
    for _ in range(int(rng.integers(1, 4))):
        k = int(pool[rng.integers(len(pool))])
        side = int(rng.integers(size * DIGIT_SIDE[0] // 8, size * DIGIT_SIDE[1] // 8 + 1))
        # a few tries for a place overlapping the digits already there by at most a quarter of a side
        for _attempt in range(8):
            y, x = (int(v) for v in rng.integers(0, size - side + 1, size=2))
            if all(
                min(y + side, by + bs) - max(y, by) < side // 4
                or min(x + side, bx + bs) - max(x, bx) < side // 4
                for by, bx, bs in boxes
            ):
                break
        boxes.append((y, x, side))
        alpha = _resize_digit(digits[k], side)
        colour = rng.uniform(0.55, 1.0, size=3)
        region = image[y : y + side, x : x + side]
        region[:] = region * (1 - alpha[..., None]) + colour[None, None, :] * alpha[..., None]
        mask[y : y + side, x : x + side][alpha >= 0.5] = 1 + int(labels[k])
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), mask


def make_mnistseg(
    split: str, n: int, image_size: int = 64, seed: int = 0, val_per_class: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """``(images, masks)`` of one split: uint8 ``(n, H, W, 3)`` and uint8 ``(n, H, W)`` in ``0..10``.

    Deterministic in ``(split, n, image_size, seed)``; canvas ``i`` does not depend on ``n``.
    """
    if split not in _SPLIT_CODE:
        raise ValueError(f"mnistseg split must be 'train' or 'val', got {split!r}")
    if n < 1:
        raise ValueError(f"mnistseg needs at least one canvas, got n={n!r}")
    if image_size < 32:
        raise ValueError(f"mnistseg image_size must be >= 32 (digits need room), got {image_size!r}")
    digits, labels = mnist_digits()
    train_idx, val_idx = mnist_split(val_per_class)
    pool = train_idx if split == "train" else val_idx
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    masks = np.empty((n, image_size, image_size), dtype=np.uint8)
    for i in range(n):
        rng = np.random.default_rng((seed, _SPLIT_CODE[split], i))
        images[i], masks[i] = _canvas(rng, digits, labels, pool, image_size)
    return images, masks


def export_mnistseg(
    out_dir: str | os.PathLike,
    n_train: int = 1000,
    n_val: int = 200,
    image_size: int = 64,
    seed: int = 0,
) -> Path:
    """Write mnistseg in the ADE20K layout and return the folder.

    ``images/{training,validation}/mnistseg_XXXXX.png``, ``annotations/{training,validation}/`` with
    the same stems (value = label + 1; read them back with ``reduce_zero_label=True``), and
    ``classes.txt`` with one class name a line.
    """
    from PIL import Image

    from scsa.io import write_text

    out = Path(out_dir)
    for split, folder, n in (("train", "training", n_train), ("val", "validation", n_val)):
        images, masks = make_mnistseg(split, n, image_size=image_size, seed=seed)
        (out / "images" / folder).mkdir(parents=True, exist_ok=True)
        (out / "annotations" / folder).mkdir(parents=True, exist_ok=True)
        for i, (img, mask) in enumerate(zip(images, masks)):
            stem = f"mnistseg_{i:05d}"
            Image.fromarray(img).save(out / "images" / folder / f"{stem}.png")
            Image.fromarray(mask + 1).save(out / "annotations" / folder / f"{stem}.png")
    write_text(out / "classes.txt", "\n".join(MNISTSEG_CLASSES) + "\n")
    return out
