"""``mnistdet``: detection scenes composed from the 5,000 real MNIST digits embedded in scsa (no download).

Each scene is a square canvas (``image_size``, default 128 px) holding 1-5 digits, class = the digit
(labels 1..10 for digits 0..9, 0 is the detectors' background). Each digit is drawn at one of three
scales, picked so that COCO's three area ranges all occur: *small* (digit height 8-24 px), *medium*
(40-72 px) and *large* (0.80-0.95 of the canvas; at most one per scene). COCO's range of an object is
decided by its actual box (``area`` = box width × height, the convention of datasets converted from
boxes; the strokes themselves cover only a fifth of their box), so a narrow "1" drawn large can still be
medium. Boxes are the extent of the visible strokes (pixels >= 64 of 255 after scaling), instance masks
are those strokes. Digits overlap by at most IoU 0.2 of their boxes.

``mnistdet-hard`` adds, in the spirit of the paper's complex-scene sets: clutter (2-7 fragments of other
digits and stray strokes that are not objects), partial occlusion (a third of the digits has up to 35 %
of its box covered by a patch of clutter-textured noise; masks and boxes follow), low light (gain
0.25-0.6 on a dim uneven background) and sensor noise (Gaussian, sigma 4-14 of 255).

Train scenes use only the train digits of :func:`scsa.data.mnist_split`, val scenes only the val digits.
Scene ``i`` of a split is a pure function of ``(seed, variant, split, i, image_size)``, so the data is the
same on every machine and in every worker. Needs numpy and torch only (no Lightning, no ultralytics).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from scsa.data import mnist_digits, mnist_split

__all__ = ["CLASSES", "VARIANTS", "MnistDet", "Scene", "make_scene"]

VARIANTS = ("mnistdet", "mnistdet-hard")
CLASSES = tuple(str(d) for d in range(10))
STROKE_THRESHOLD = 64  # of 255: where an anti-aliased, rescaled stroke counts as part of the digit
_SPLIT_CODE = {"train": 1, "val": 2}


@dataclass
class Scene:
    """One composed image: ``image`` uint8 (3, S, S); ``boxes`` float32 (N, 4) XYXY in pixels;
    ``labels`` int64 (N,) in 1..10; ``masks`` bool (N, S, S)."""

    image: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor


def _check(variant: str, split: str, image_size: int) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown mnistdet variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if split not in _SPLIT_CODE:
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if not isinstance(image_size, int) or image_size < 96:
        raise ValueError(f"image_size must be an integer >= 96 (large digits need room), got {image_size!r}")


def _scaled(digit: np.ndarray, height: int) -> np.ndarray:
    """The 28×28 digit resized so that its stroke extent is about ``height`` px tall; float (P, P) in 0..255."""
    rows = np.flatnonzero(digit.max(axis=1) >= STROKE_THRESHOLD)
    extent = max(int(rows[-1] - rows[0] + 1), 1) if len(rows) else 20
    side = max(round(28 * height / extent), 4)
    t = torch.from_numpy(digit.astype(np.float32))[None, None]
    return F.interpolate(t, size=(side, side), mode="bilinear", antialias=True, align_corners=False)[
        0, 0
    ].numpy()


def _box_of(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _paste(canvas: np.ndarray, patch: np.ndarray, x0: int, y0: int) -> tuple[slice, slice, np.ndarray]:
    """The canvas window and the patch part that lands in it (the patch may hang over the border)."""
    s = canvas.shape[0]
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x0 + patch.shape[1], s), min(y0 + patch.shape[0], s)
    part = patch[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return slice(cy0, cy1), slice(cx0, cx1), part


def make_scene(
    index: int, *, split: str = "train", variant: str = "mnistdet", image_size: int = 128, seed: int = 0
) -> Scene:
    """Compose scene ``index`` of ``split`` (deterministic; see the module docstring)."""
    _check(variant, split, image_size)
    hard = variant == "mnistdet-hard"
    s = image_size
    rng = np.random.default_rng([seed, _SPLIT_CODE[split], int(hard), s, index])
    digits, digit_labels = mnist_digits()
    pool = mnist_split()[0 if split == "train" else 1]

    if hard:  # dim, uneven background: a random linear gradient
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
        g = rng.uniform(-1, 1, 2)
        background = rng.uniform(10, 45) + 25 * (g[0] * xx + g[1] * yy)
        canvas = np.repeat(np.clip(background, 0, 255)[..., None], 3, axis=2)
    else:
        canvas = np.zeros((s, s, 3), np.float32)

    n_objects = int(rng.integers(1, 6))
    placed: list[tuple[int, int, int, int]] = []
    masks: list[np.ndarray] = []
    labels: list[int] = []
    has_large = False
    for _ in range(n_objects):
        bucket = rng.choice(3, p=[0.45, 0.4, 0.15])
        if bucket == 2 and has_large:
            bucket = 1
        if bucket == 0:
            height = int(rng.integers(8, 25))
        elif bucket == 1:
            height = int(rng.integers(40, 73))
        else:
            height = int(rng.uniform(0.80, 0.95) * s)
        k = int(pool[rng.integers(len(pool))])
        patch = _scaled(digits[k], height)
        local = _box_of(patch >= STROKE_THRESHOLD)
        if local is None:
            continue
        longest = max(local[2] - local[0], local[3] - local[1])
        if longest > 0.95 * s:  # a wide digit drawn large: shrink it to fit the canvas
            patch = _scaled(digits[k], int(height * 0.95 * s / longest))
            local = _box_of(patch >= STROKE_THRESHOLD)
        bx0, by0, bx1, by1 = local
        for _attempt in range(20):  # rejection: a box inside the canvas, overlapping others by IoU <= 0.2
            x0 = int(rng.integers(-bx0, s - bx1 + 1)) if s - bx1 >= -bx0 else -bx0
            y0 = int(rng.integers(-by0, s - by1 + 1)) if s - by1 >= -by0 else -by0
            box = (x0 + bx0, y0 + by0, x0 + bx1, y0 + by1)
            if all(_iou(box, other) <= 0.2 for other in placed):
                break
        else:
            continue
        has_large |= bucket == 2
        ys, xs, part = _paste(canvas, patch, x0, y0)
        color = rng.uniform(0.55, 1.0, 3) if not hard else rng.uniform(0.35, 1.0, 3)
        canvas[ys, xs] = np.maximum(canvas[ys, xs], part[..., None] * color)
        full = np.zeros((s, s), bool)
        full[ys, xs] = part >= STROKE_THRESHOLD
        for m in masks:  # the newest digit is on top: the ones below lose the pixels it covers
            m &= ~full
        placed.append(box)
        masks.append(full)
        labels.append(int(digit_labels[k]) + 1)

    if hard:
        for _ in range(int(rng.integers(2, 8))):  # clutter: fragments of digits and stray strokes
            k = int(pool[rng.integers(len(pool))])
            patch = _scaled(digits[k], int(rng.integers(12, 60)))
            p = patch.shape[0]
            fy, fx = rng.integers(0, max(p // 2, 1), 2)
            frag = patch[fy : fy + max(p // 3, 3), fx : fx + max(p // 3, 3)]
            if rng.random() < 0.5:
                frag = frag.T.copy()
            ys, xs, part = _paste(canvas, frag, int(rng.integers(0, s)), int(rng.integers(0, s)))
            canvas[ys, xs] = np.maximum(canvas[ys, xs], part[..., None] * rng.uniform(0.35, 1.0, 3))
        for box in placed:  # partial occlusion by a noise patch over one side of the box
            if rng.random() >= 1 / 3:
                continue
            w, h = box[2] - box[0], box[3] - box[1]
            if rng.random() < 0.5:
                ow, oh = max(int(w * rng.uniform(0.15, 0.35)), 1), h
                ox = box[0] if rng.random() < 0.5 else box[2] - ow
                oy = box[1]
            else:
                ow, oh = w, max(int(h * rng.uniform(0.15, 0.35)), 1)
                ox = box[0]
                oy = box[1] if rng.random() < 0.5 else box[3] - oh
            window = canvas[oy : oy + oh, ox : ox + ow]
            window[...] = rng.uniform(0, 90, (*window.shape[:2], 1))
            occluded = np.zeros((s, s), bool)
            occluded[oy : oy + oh, ox : ox + ow] = True
            for m in masks:
                m &= ~occluded
        canvas = canvas * rng.uniform(0.25, 0.6) + rng.normal(0, rng.uniform(4, 14), canvas.shape)

    boxes, keep = [], []
    for i, m in enumerate(masks):
        b = _box_of(m)
        if b is not None and m.sum() >= 4:  # a digit hidden (almost) entirely is no object any more
            boxes.append(b)
            keep.append(i)
    image = torch.from_numpy(np.clip(canvas, 0, 255).round().astype(np.uint8)).permute(2, 0, 1).contiguous()
    return Scene(
        image=image,
        boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor([labels[i] for i in keep], dtype=torch.int64),
        masks=torch.from_numpy(np.stack([masks[i] for i in keep]) if keep else np.zeros((0, s, s), bool)),
    )


class MnistDet(torch.utils.data.Dataset):
    """The ``mnistdet`` scenes of one split as a detection dataset (composed on the fly, deterministic).

    Items are ``(image, target)`` as torchvision's detection references use them: ``image`` a
    ``tv_tensors.Image`` uint8 (3, S, S) and ``target`` a dict with ``boxes`` (``tv_tensors.BoundingBoxes``,
    XYXY), ``labels`` (1..10), ``masks`` (``tv_tensors.Mask``), ``image_id``, ``area`` (box area) and
    ``iscrowd`` (zeros); ``transforms(image, target)`` is applied last (torchvision transforms v2).

    Example:
        >>> ds = MnistDet("val", n=200)
        >>> image, target = ds[0]
    """

    classes = CLASSES

    def __init__(
        self,
        split: str = "train",
        *,
        variant: str = "mnistdet",
        image_size: int = 128,
        n: int | None = None,
        seed: int = 0,
        transforms=None,
    ) -> None:
        _check(variant, split, image_size)
        self.split, self.variant, self.image_size, self.seed = split, variant, image_size, seed
        self.n = (2000 if split == "train" else 200) if n is None else int(n)
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {n!r}")
        self.transforms = transforms
        self.label_to_cat_id = {i + 1: i + 1 for i in range(10)}  # the COCO export uses ids 1..10
        self.n_skipped = 0

    def __len__(self) -> int:
        return self.n

    def scene(self, index: int) -> Scene:
        if not 0 <= index < self.n:
            raise IndexError(f"scene {index} out of range for {self.n} scenes")
        return make_scene(
            index, split=self.split, variant=self.variant, image_size=self.image_size, seed=self.seed
        )

    def __getitem__(self, index: int):
        from torchvision import tv_tensors

        sc = self.scene(index)
        size = sc.image.shape[-2:]
        boxes = sc.boxes
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=tuple(size)),
            "labels": sc.labels,
            "masks": tv_tensors.Mask(sc.masks.to(torch.uint8)),
            "image_id": index,
            "area": (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]),
            "iscrowd": torch.zeros(len(boxes), dtype=torch.int64),
        }
        image = tv_tensors.Image(sc.image)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target
