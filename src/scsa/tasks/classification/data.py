"""Loaders for the engine: seeded, rank-sharded samplers and the Lightning data module.

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
Neurocomputing 2025, https://arxiv.org/abs/2407.05128 — compares attention blocks by training the
same backbone on the same data (:mod:`scsa.tasks.classification.datasets`) in the same order.

Batches are drawn by our own samplers (Lightning's distributed sampler is turned off): the train order
and every sample's augmentation seed depend only on the run seed and the epoch, and each process takes
every ``world_size``-th sample of the same global order. So one process with batch B and N processes
with batch B/N see the same global batches, and a resumed run sees what the uninterrupted one saw.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from scsa.engine.samplers import SeededSampler, ShardSampler
from scsa.tasks.classification.datasets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MNIST5K,
    MNIST_MEAN,
    MNIST_STD,
    BadImageError,
    ImageFolderData,
    TensorImages,
    find_bad_images,
    load_mnist5k,
    scan_image_folder,
)
from scsa.tasks.classification.recipes import Recipe
from scsa.tasks.classification.transforms import ImageTransform

__all__ = [
    "MNIST5K",
    "BadImageError",
    "ImageDataModule",
    "ImageFolderData",
    "SeededSampler",
    "ShardSampler",
    "TensorImages",
    "default_workers",
    "find_bad_images",
    "load_mnist5k",
    "scan_image_folder",
]


# ----------------------------------------------------------------------------------------------
# the data module


def default_workers(data: str) -> int:
    """Loader processes: none for the in-memory mnist5k (they would cost more than they save), else
    one per core but one, at most 8."""
    return 0 if data == MNIST5K else min(8, max(1, (os.cpu_count() or 2) - 1))


class ImageDataModule(L.LightningDataModule):
    """Train/val loaders for ``data`` = ``"mnist5k"`` or an ImageNet-layout folder.

    Built for the SCSA comparisons (Si et al., https://arxiv.org/abs/2407.05128). ``batch_size`` is the
    global batch; each of the trainer's processes loads ``batch_size / world_size``. With
    ``skip_bad_images`` every folder image is decoded once up front and unreadable files are left out
    (``skipped`` lists them); otherwise the first unreadable file stops the run with its name.
    """

    def __init__(
        self,
        data: str | Path,
        recipe: Recipe,
        *,
        seed: int = 0,
        num_workers: int | None = None,
        skip_bad_images: bool = False,
    ) -> None:
        super().__init__()
        self.data, self.recipe, self.seed = str(data), recipe, seed
        self.skip_bad_images = skip_bad_images
        self.skipped: list[str] = []
        if self.data == MNIST5K:
            self.classes = [str(i) for i in range(10)]
            self.mean, self.std, self.flip = MNIST_MEAN, MNIST_STD, False  # a mirrored digit is another sign
        else:
            self._listing = scan_image_folder(self.data)
            self.classes = self._listing["classes"]
            self.mean, self.std, self.flip = IMAGENET_MEAN, IMAGENET_STD, True
        self.mean = recipe.mean or self.mean
        self.std = recipe.std or self.std
        self.num_workers = default_workers(self.data) if num_workers is None else num_workers
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def transform(self, train: bool) -> ImageTransform:
        r = self.recipe
        return ImageTransform(
            r.image_size,
            self.mean,
            self.std,
            train=train,
            augment=r.augment,
            resize_size=r.eval_resize() if self.data != MNIST5K else r.image_size,
            flip=self.flip,
            crop_padding=r.crop_padding,
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_tf, val_tf = self.transform(True), self.transform(False)
        if self.data == MNIST5K:
            tx, ty, vx, vy = load_mnist5k()
            self.train_set, self.val_set = TensorImages(tx, ty, train_tf), TensorImages(vx, vy, val_tf)
            return
        train, val = self._listing["train"], self._listing["val"]
        if self.skip_bad_images:
            bad = set(find_bad_images([p for p, _ in train + val]))
            self.skipped = sorted(bad)
            train = [s for s in train if str(s[0]) not in bad]
            val = [s for s in val if str(s[0]) not in bad]
            if not train or not val:
                raise ValueError(f"every image of a split under {self.data!r} is unreadable")
        self.train_set, self.val_set = ImageFolderData(train, train_tf), ImageFolderData(val, val_tf)

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def per_process_batch(self) -> int:
        world, _ = self._world()
        if self.recipe.batch_size % world:
            raise ValueError(
                f"batch_size (global) must be divisible by the number of processes, got "
                f"batch_size={self.recipe.batch_size} and {world} processes"
            )
        return self.recipe.batch_size // world

    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch of each process, after the trainer's ``limit_train_batches``.

        The module asks this instead of Lightning's ``estimated_stepping_batches``, which builds the
        train loader (and prefetches a batch) before a checkpoint's epoch counter is restored.
        """
        world, _ = self._world()
        steps = math.ceil(math.ceil(len(self.train_set) / world) / self.per_process_batch())
        limit = getattr(self.trainer, "limit_train_batches", 1.0)
        return min(steps, limit) if isinstance(limit, int) else max(1, int(steps * limit))

    def _loader(self, dataset: Dataset, sampler: Sampler) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.per_process_batch(),
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        world, rank = self._world()
        sampler = SeededSampler(len(self.train_set), self.seed, world, rank)
        # Lightning creates the first iterator (and prefetches a batch) before it calls set_epoch, so
        # a run resumed after epoch k would draw epoch 0's order for epoch k. Start at the epoch the
        # fit loop is about to run: its count of processed epochs, restored from the checkpoint by now.
        progress = getattr(getattr(self.trainer, "fit_loop", None), "epoch_progress", None)
        sampler.set_epoch(progress.current.processed if progress is not None else 0)
        return self._loader(self.train_set, sampler)

    def val_dataloader(self) -> DataLoader:
        world, rank = self._world()
        return self._loader(self.val_set, ShardSampler(len(self.val_set), world, rank))
