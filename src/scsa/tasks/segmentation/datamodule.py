"""``SegmentationDataModule``: any layout of :mod:`scsa.tasks.segmentation.data`, iterations as epochs.

Training draws from an endless seeded stream of permutations of the train set, cut into "epochs" of
``val_interval`` global batches (MMSegmentation's ``InfiniteSampler`` with an iteration loop): epoch
``e`` always holds the same samples, so resuming at an epoch boundary replays the same data. The
engine leaves sharding to the task (``use_distributed_sampler=False``): each of N processes takes every
N-th sample of the same global order with batch ``B / N``, so the global batches match one process's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset, Sampler

from scsa.engine.samplers import ShardSampler
from scsa.tasks.segmentation.data import ArraySegmentation, SegmentationFiles, scan_layout
from scsa.tasks.segmentation.mnistseg import MNISTSEG, MNISTSEG_CLASSES, make_mnistseg
from scsa.tasks.segmentation.recipes import SegRecipe
from scsa.tasks.segmentation.transforms import EvalTransform, TrainTransform, collate_eval

__all__ = ["IterationSampler", "SegmentationDataModule", "ShardSampler"]


class IterationSampler(Sampler):
    """Epoch ``e``: ``samples_per_epoch`` items of seeded permutations laid end to end, this rank's share
    (every ``num_replicas``-th). Items are ``(index, seed)``: the seed, a function of the run's seed and
    the item's place in the stream, drives that sample's augmentation, so the data do not depend on
    how many loader workers there are or on what else drew from torch's generator (exact resume)."""

    def __init__(
        self, size: int, samples_per_epoch: int, seed: int, num_replicas: int = 1, rank: int = 0
    ) -> None:
        self.size, self.per_epoch, self.seed = size, samples_per_epoch, seed
        self.num_replicas, self.rank, self.epoch = num_replicas, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(range(self.rank, self.per_epoch, self.num_replicas))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        start = self.epoch * self.per_epoch
        first, last = start // self.size, (start + self.per_epoch - 1) // self.size
        stream = np.concatenate(
            [np.random.default_rng((self.seed, k)).permutation(self.size) for k in range(first, last + 1)]
        )
        offset = start - first * self.size
        picked = stream[offset : offset + self.per_epoch]
        seeds = np.random.default_rng((self.seed, 1_000_003, self.epoch)).integers(0, 2**62, self.per_epoch)
        return iter(
            [
                (int(i), int(s))
                for i, s in zip(picked[self.rank :: self.num_replicas], seeds[self.rank :: self.num_replicas])
            ]
        )


class SegmentationDataModule(L.LightningDataModule):
    """Data of one run: ``data`` is ``"mnistseg"`` or a folder of ``fmt`` (``ade20k``, ``voc``, ``folder``).

    ``batch_size`` is global; ``val_batch_size`` per process (1 for real data of mixed sizes).
    ``n_train``/``n_val``: mnistseg canvases (or a prefix of a folder's pairs).
    """

    seed_data = 0  # the canvases are part of the data's definition, not of a run's seed

    def __init__(
        self,
        data: str | os.PathLike = MNISTSEG,
        fmt: str = "ade20k",
        recipe: SegRecipe | None = None,
        batch_size: int | None = None,
        val_batch_size: int | None = None,
        num_workers: int | None = None,
        seed: int = 0,
        image_size: int = 64,
        n_train: int | None = None,
        n_val: int | None = None,
        skip_bad_images: bool = False,
        classes_file: str | os.PathLike | None = None,
        reduce_zero_label: bool = True,
    ) -> None:
        super().__init__()
        from scsa.tasks.segmentation.recipes import get_recipe

        self.data = str(data)
        self.fmt = fmt
        self.recipe = recipe or get_recipe("small")
        self.batch_size = batch_size or self.recipe.batch_size
        self.is_mnistseg = self.data == MNISTSEG
        self.val_batch_size = val_batch_size or (self.batch_size if self.is_mnistseg else 1)
        self.num_workers = num_workers
        self.seed = seed
        self.image_size = image_size
        self.n_train, self.n_val = n_train, n_val
        self.skip_bad_images = skip_bad_images
        self.classes_file = classes_file
        self.reduce_zero_label = reduce_zero_label
        self.classes: tuple[str, ...] = MNISTSEG_CLASSES if self.is_mnistseg else ()
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.skipped: list[str] = []
        if not self.is_mnistseg:
            self._scan()

    def _scan(self) -> None:
        kwargs = {}
        if self.fmt == "ade20k":
            kwargs["reduce_zero_label"] = self.reduce_zero_label
        if self.fmt == "folder" and self.classes_file is not None:
            kwargs["classes_file"] = self.classes_file
        if not Path(self.data).is_dir():
            raise ValueError(f"data folder {self.data!r} does not exist (or pass data='mnistseg')")
        self.layout = scan_layout(self.data, self.fmt, skip_bad_images=self.skip_bad_images, **kwargs)
        self.classes = self.layout.classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def transforms(self) -> tuple[TrainTransform, EvalTransform]:
        r = self.recipe
        train = TrainTransform(
            crop_size=r.crop_size, scale=r.scale, ratio_range=r.ratio_range, cat_max_ratio=r.cat_max_ratio
        )
        return train, EvalTransform(scale=r.test_scale)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_tf, eval_tf = self.transforms()
        if self.is_mnistseg:
            n_train = self.n_train or 2000
            n_val = self.n_val or 200
            images, masks = make_mnistseg("train", n_train, self.image_size, self.seed_data)
            self.train_set = ArraySegmentation(images, masks, train_tf)
            images, masks = make_mnistseg("val", n_val, self.image_size, self.seed_data)
            self.val_set = ArraySegmentation(images, masks, eval_tf)
            return
        layout = self.layout
        zero = layout.reduce_zero_label
        train_pairs = layout.train[: self.n_train] if self.n_train else layout.train
        val_pairs = layout.val[: self.n_val] if self.n_val else layout.val
        self.train_set = SegmentationFiles(
            train_pairs, self.num_classes, train_tf, zero, self.skip_bad_images, layout.missing
        )
        self.val_set = SegmentationFiles(val_pairs, self.num_classes, eval_tf, zero, self.skip_bad_images)
        self.skipped = self.train_set.skipped + self.val_set.skipped

    def _world(self) -> tuple[int, int]:
        trainer = self._trainer if hasattr(self, "_trainer") else None
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def per_process_batch(self) -> int:
        world, _ = self._world()
        if self.batch_size % world:
            raise ValueError(f"batch_size={self.batch_size} is not divisible by the {world} processes")
        return self.batch_size // world

    def _workers(self) -> int:
        if self.num_workers is not None:
            return self.num_workers
        # in-memory canvases: one worker keeps the augmentation off the training threads
        return 1 if self.is_mnistseg else min(8, os.cpu_count() or 1)

    def _loader(self, dataset: Dataset, sampler: Sampler, batch: int, collate=None) -> DataLoader:
        workers = self._workers()
        return DataLoader(
            dataset,
            batch_size=batch,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate,
            persistent_workers=workers > 0,
            pin_memory=False,
        )

    def train_dataloader(self) -> DataLoader:
        world, rank = self._world()
        samples = self.recipe.val_interval * self.batch_size
        sampler = IterationSampler(len(self.train_set), samples, self.seed, world, rank)
        return self._loader(self.train_set, sampler, self.per_process_batch())

    def val_dataloader(self) -> DataLoader:
        world, rank = self._world()
        return self._loader(
            self.val_set, ShardSampler(len(self.val_set), world, rank), self.val_batch_size, collate_eval
        )

    def steps_per_epoch(self) -> int:
        return self.recipe.val_interval

    def describe(self) -> dict:
        return dict(
            data=self.data,
            format="mnistseg" if self.is_mnistseg else self.fmt,
            classes=list(self.classes),
            train_size=len(self.train_set) if self.train_set is not None else None,
            val_size=len(self.val_set) if self.val_set is not None else None,
            skipped_bad_images=len(self.skipped),
        )
