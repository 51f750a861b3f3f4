"""Image sets for the explainers: the embedded digits (``"mnist5k"``) or a folder of image files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from scsa.explain._model import ImageLike, load_image

__all__ = ["IMAGE_SUFFIXES", "MNIST5K", "image_files", "load_images", "on_canvas"]

MNIST5K = "mnist5k"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def image_files(path: str | Path, split: str | None = None) -> list[Path]:
    """The image files under ``path`` (under ``path/split`` where that folder exists), sorted."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ValueError(f"{str(root)!r} is neither an image file nor a folder")
    if split and (root / split).is_dir():
        root = root / split
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {str(root)!r}")
    return files


def load_images(
    data: str | Path | torch.Tensor | Sequence[ImageLike],
    n: int | None = None,
    split: str = "val",
    size: int | None = None,
) -> torch.Tensor:
    """Up to ``n`` images as ``uint8`` (N, 3, H, W), all resized to ``size`` (square) if given.

    ``data``: ``"mnist5k"`` (the embedded digits, 32×32, ``split`` ``"train"`` or ``"val"``), a
    folder or image file, a (N, C, H, W) tensor, or a sequence of images (:func:`load_image`)."""
    if n is not None and n < 1:
        raise ValueError(f"the number of images must be >= 1, got n={n}")
    if isinstance(data, torch.Tensor):
        if data.dim() != 4:
            raise ValueError(f"an image batch must be (N, C, H, W), got shape {tuple(data.shape)}")
        batch = torch.stack([load_image(t) for t in data[:n]])
    elif isinstance(data, str) and data == MNIST5K:
        if split not in ("train", "val"):
            raise ValueError(f"mnist5k has the splits 'train' and 'val', got split={split!r}")
        from scsa.data import load_mnist5k

        tx, _, vx, _ = load_mnist5k()
        batch = (tx if split == "train" else vx)[:n]
    else:
        items = image_files(data, split) if isinstance(data, (str, Path)) else list(data)
        images = [load_image(p) for p in items[:n]]
        if size is None and len({tuple(t.shape) for t in images}) > 1:
            size = min(min(t.shape[-2:]) for t in images)  # one batch needs one size
        batch = torch.stack([_square(t, size) for t in images])
        size = None
    if size is not None:
        batch = torch.stack([_square(t, size) for t in batch])
    return batch.contiguous()


def _square(t: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None:
        return t
    from torchvision.transforms.v2 import functional as TF

    t = TF.resize(t, [size], antialias=True)
    return TF.center_crop(t, [size, size])


def on_canvas(
    image: torch.Tensor, size: int, corner: int = 0
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """``image`` (3, h, w) ``uint8`` in a corner of a blank ``size``×``size`` canvas (0: top left, 1: top
    right, 2: bottom left, 3: bottom right), and its box ``(top, left, bottom, right)``."""
    h, w = image.shape[-2:]
    if size < max(h, w):
        raise ValueError(f"the canvas ({size} px) must be at least as large as the image ({h}x{w})")
    top = 0 if corner % 4 in (0, 1) else size - h
    left = 0 if corner % 4 in (0, 2) else size - w
    canvas = torch.zeros(3, size, size, dtype=torch.uint8)
    canvas[:, top : top + h, left : left + w] = image
    return canvas, (top, left, top + h, left + w)
