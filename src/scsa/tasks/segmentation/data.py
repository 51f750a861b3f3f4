"""Segmentation data as users have it: ADE20K, Pascal VOC 2012, a generic folder, and ``mnistseg``.

Every layout becomes a list of ``(image, mask)`` file pairs plus a label rule, read by one dataset
class that checks what it reads (the UPerNet experiments of SCSA, arXiv 2407.05128, use ADE20K):

* **ADE20K** (``images/{training,validation}/*.jpg``, ``annotations/{training,validation}/*.png``,
  same stem). ``reduce_zero_label``: value 0 ("other") becomes the ignore index 255 and 1..K become
  0..K-1, as MMSegmentation does. Class names from ``objectInfo150.csv``/``classes.txt`` if present.
* **Pascal VOC 2012** (``JPEGImages/``, ``SegmentationClass/*.png`` palette images whose indices are
  the labels, 255 the ignored border, ``ImageSets/Segmentation/{train,val}.txt``); the 21 classes.
* **folder**: ``images/`` + ``masks/`` (same stems; split subfolders ``train``/``val`` inside each)
  and a classes file with one name a line; mask values are class indices, 255 ignored.

Bad input is an error naming the file, the value and the rule (:class:`BadSegmentationData`): a
missing image or mask, a mask whose size differs from its image, a label outside the classes that
is not the ignore value, a file that does not decode. ``skip_bad_images=True`` checks every pair up
front instead, leaves the bad ones out and reports how many (``dataset.skipped``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

__all__ = [
    "FORMATS",
    "IGNORE_INDEX",
    "VOC_CLASSES",
    "ArraySegmentation",
    "BadSegmentationData",
    "SegmentationFiles",
    "read_classes_file",
    "scan_ade20k",
    "scan_folder",
    "scan_layout",
    "scan_voc",
]

IGNORE_INDEX = 255
FORMATS = ("ade20k", "voc", "folder")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip


class BadSegmentationData(ValueError):
    """A segmentation image or mask that is missing, unreadable, of the wrong size or holds a bad label."""


@dataclass(frozen=True)
class Layout:
    """What a scan found: the pairs of each split, the class names and the label rule."""

    train: list[tuple[Path, Path]]
    val: list[tuple[Path, Path]]
    classes: tuple[str, ...]
    reduce_zero_label: bool = False
    missing: tuple[str, ...] = ()  # "file: why" of pairs left out by skip_bad_images


def read_classes_file(path: str | os.PathLike) -> tuple[str, ...]:
    """Class names, one a line (blank lines and ``#`` comments skipped); at least two, all distinct."""
    path = Path(path)
    if not path.is_file():
        raise BadSegmentationData(f"classes file {str(path)!r} does not exist (one class name a line)")
    names = [ln.strip() for ln in path.read_text().splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if len(names) < 2:
        raise BadSegmentationData(f"classes file {str(path)!r} lists {len(names)} classes; need at least 2")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BadSegmentationData(f"classes file {str(path)!r} lists {dup} more than once")
    if len(names) > IGNORE_INDEX:
        raise BadSegmentationData(f"classes file {str(path)!r} lists {len(names)} classes; at most 255")
    return tuple(names)


def _by_stem(folder: Path, exts: Sequence[str]) -> dict[str, Path]:
    if not folder.is_dir():
        raise BadSegmentationData(f"folder {str(folder)!r} does not exist")
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in exts and p.is_file()}


def _pair(
    image_dir: Path, mask_dir: Path, stems: Sequence[str] | None, skip: bool, missing: list[str]
) -> list[tuple[Path, Path]]:
    images = _by_stem(image_dir, IMAGE_EXTENSIONS)
    masks = _by_stem(mask_dir, (".png", ".bmp", ".tif", ".tiff"))
    wanted = list(stems) if stems is not None else sorted(set(images) | set(masks))
    pairs = []
    for stem in wanted:
        img, mask = images.get(stem), masks.get(stem)
        if img is None or mask is None:
            what = (
                f"image {stem!r} has no mask in {str(mask_dir)!r}"
                if mask is None and img is not None
                else f"mask {str(mask)!r} has no image in {str(image_dir)!r}"
                if img is None and mask is not None
                else f"{stem!r} (listed) has neither an image in {str(image_dir)!r} nor a mask in {str(mask_dir)!r}"
            )
            if not skip:
                raise BadSegmentationData(f"{what}; fix the data or pass skip_bad_images (--skip-bad-images)")
            missing.append(what)
            continue
        pairs.append((img, mask))
    if not pairs:
        raise BadSegmentationData(f"no image/mask pairs in {str(image_dir)!r} and {str(mask_dir)!r}")
    return pairs


def _ade20k_classes(root: Path) -> tuple[str, ...] | None:
    if (root / "classes.txt").is_file():
        return read_classes_file(root / "classes.txt")
    info = root / "objectInfo150.csv"
    if info.is_file():  # ADEChallengeData2016: Idx,Ratio,Train,Val,Name ("wall", "building;edifice", ...)
        import csv

        with info.open(newline="") as f:
            rows = list(csv.DictReader(f))
        return tuple(r["Name"].split(";")[0] for r in rows)
    return None


def scan_ade20k(
    root: str | os.PathLike,
    reduce_zero_label: bool = True,
    classes: Sequence[str] | None = None,
    skip_bad_images: bool = False,
) -> Layout:
    """The ADE20K layout under ``root``; classes from ``classes``, ``classes.txt``, ``objectInfo150.csv``,
    else ADE20K's 150 (named ``class_1`` ... as no names file came with the data)."""
    root = Path(root)
    missing: list[str] = []
    train = _pair(root / "images/training", root / "annotations/training", None, skip_bad_images, missing)
    val = _pair(root / "images/validation", root / "annotations/validation", None, skip_bad_images, missing)
    names = tuple(classes) if classes is not None else _ade20k_classes(root)
    if names is None:
        names = tuple(f"class_{i}" for i in range(1, 151))
    return Layout(train, val, names, reduce_zero_label, tuple(missing))


def scan_voc(root: str | os.PathLike, skip_bad_images: bool = False) -> Layout:
    """Pascal VOC 2012 under ``root`` (the ``VOC2012`` folder, or a folder holding ``VOCdevkit/VOC2012``)."""
    root = Path(root)
    if not (root / "SegmentationClass").is_dir() and (root / "VOCdevkit/VOC2012").is_dir():
        root = root / "VOCdevkit/VOC2012"
    missing: list[str] = []
    splits = []
    for split in ("train", "val"):
        listing = root / "ImageSets/Segmentation" / f"{split}.txt"
        if not listing.is_file():
            raise BadSegmentationData(f"{str(listing)!r} is missing (the VOC split list of {split!r})")
        stems = [s.strip() for s in listing.read_text().split() if s.strip()]
        splits.append(_pair(root / "JPEGImages", root / "SegmentationClass", stems, skip_bad_images, missing))
    return Layout(splits[0], splits[1], VOC_CLASSES, False, tuple(missing))


def scan_folder(
    root: str | os.PathLike, classes_file: str | os.PathLike | None = None, skip_bad_images: bool = False
) -> Layout:
    """``root/images/{train,val}`` + ``root/masks/{train,val}`` (same stems) + ``root/classes.txt``."""
    root = Path(root)
    names = read_classes_file(classes_file if classes_file is not None else root / "classes.txt")
    missing: list[str] = []
    train = _pair(root / "images/train", root / "masks/train", None, skip_bad_images, missing)
    val = _pair(root / "images/val", root / "masks/val", None, skip_bad_images, missing)
    return Layout(train, val, names, False, tuple(missing))


def scan_layout(root: str | os.PathLike, fmt: str, skip_bad_images: bool = False, **kwargs) -> Layout:
    """Dispatch on ``fmt`` (``ade20k``, ``voc``, ``folder``)."""
    if fmt == "ade20k":
        return scan_ade20k(root, skip_bad_images=skip_bad_images, **kwargs)
    if fmt == "voc":
        return scan_voc(root, skip_bad_images=skip_bad_images)
    if fmt == "folder":
        return scan_folder(root, skip_bad_images=skip_bad_images, **kwargs)
    raise ValueError(f"unknown segmentation data format {fmt!r}; known: {', '.join(FORMATS)}")


# ----------------------------------------------------------------------------------------------
# reading and checking one pair


def _apply(dataset, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``dataset.transform`` of sample ``index``; an ``(index, seed)`` item seeds its randomness alone."""
    index, seed = item if isinstance(item, tuple) else (item, None)
    image, labels = dataset.load(index)
    if dataset.transform is None:
        return image, labels
    if seed is None:
        return dataset.transform(image, labels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return dataset.transform(image, labels)


Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _read(path: Path, kind: str) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.load()  # decodes the whole file, so truncation shows up here
            return img.convert("RGB") if kind == "image" else img.copy()
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError... depending on the format
        raise BadSegmentationData(
            f"cannot read {kind} file {str(path)!r}: {err}; fix or delete it, or pass skip_bad_images "
            "(--skip-bad-images)"
        ) from err


def map_labels(raw: np.ndarray, num_classes: int, reduce_zero_label: bool, where: str) -> np.ndarray:
    """Raw mask values -> training labels (``0..K-1`` and 255); a value that is neither is an error."""
    raw = raw.astype(np.int64)
    if reduce_zero_label:
        labels = raw - 1
        labels[raw == 0] = IGNORE_INDEX
    else:
        labels = raw
    bad = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= num_classes))
    if bad.any():
        values = np.unique(raw[bad])
        rule = (
            f"1..{num_classes} (0 is ignored, reduce_zero_label)"
            if reduce_zero_label
            else f"0..{num_classes - 1} or {IGNORE_INDEX} (ignored)"
        )
        raise BadSegmentationData(
            f"mask {where!r} holds label value(s) {values[:10].tolist()} outside the {num_classes} classes: "
            f"values must be {rule}"
        )
    return labels.astype(np.uint8)


def load_pair(
    image_path: Path, mask_path: Path, num_classes: int, reduce_zero_label: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image uint8 (3, H, W), labels int64 (H, W))`` of one pair, checked."""
    image = _read(image_path, "image")
    mask = _read(mask_path, "mask")
    if mask.mode not in ("L", "P", "I", "I;16"):
        raise BadSegmentationData(
            f"mask {str(mask_path)!r} has mode {mask.mode!r}: masks must be single-channel label images "
            "(grey or palette PNG whose values are the class indices), not colour pictures"
        )
    if mask.size != image.size:
        raise BadSegmentationData(
            f"mask {str(mask_path)!r} is {mask.size[0]}x{mask.size[1]} but its image {str(image_path)!r} is "
            f"{image.size[0]}x{image.size[1]} (width x height); they must be the same size"
        )
    labels = map_labels(np.asarray(mask), num_classes, reduce_zero_label, str(mask_path))
    img = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).contiguous()
    return img, torch.from_numpy(labels).long()


class SegmentationFiles(Dataset):
    """Image/mask file pairs; items are ``(image float (3, H, W), labels int64 (H, W))`` after ``transform``.

    ``transform(image_uint8, labels)`` returns the tensors the model sees. With ``skip_bad_images``
    every pair is read once up front (threads), bad ones are left out: ``skipped`` holds
    ``"file: why"`` for each.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[Path, Path]],
        num_classes: int,
        transform: Transform | None = None,
        reduce_zero_label: bool = False,
        skip_bad_images: bool = False,
        skipped: Sequence[str] = (),
    ) -> None:
        self.pairs = [(Path(a), Path(b)) for a, b in pairs]
        self.num_classes = num_classes
        self.reduce_zero_label = reduce_zero_label
        self.transform = transform
        self.skipped: list[str] = list(skipped)
        if skip_bad_images:
            self._drop_bad()

    def _drop_bad(self) -> None:
        def why(pair: tuple[Path, Path]) -> str | None:
            try:
                load_pair(*pair, self.num_classes, self.reduce_zero_label)
            except BadSegmentationData as err:
                return str(err)
            return None

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            reasons = list(pool.map(why, self.pairs))
        self.skipped += [r for r in reasons if r is not None]
        self.pairs = [p for p, r in zip(self.pairs, reasons) if r is None]
        if not self.pairs:
            raise BadSegmentationData(f"every image/mask pair is bad; the first: {self.skipped[0]}")

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return load_pair(*self.pairs[index], self.num_classes, self.reduce_zero_label)

    def name(self, index: int) -> str:
        return self.pairs[index][0].stem

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        return _apply(self, item)


class ArraySegmentation(Dataset):
    """In-memory uint8 images ``(N, H, W, 3)`` and labels ``(N, H, W)`` (``mnistseg``)."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, transform: Transform | None = None) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        self.masks = torch.from_numpy(np.ascontiguousarray(masks))
        self.transform = transform
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.masks)

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index].contiguous(), self.masks[index].long()

    def name(self, index: int) -> str:
        return f"mnistseg_{index:05d}"

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        return _apply(self, item)
