"""The detection task for Lightning: :class:`DetectionModule` (model, losses, COCO metrics) and
:class:`DetectionDataModule` (``mnistdet``, COCO, Pascal VOC or YOLO data through transforms v2)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch

from scsa.engine import TaskModule
from scsa.engine.samplers import SeededSampler
from scsa.tasks.detection.metrics import DetectionMetrics, coco_results
from scsa.tasks.detection.model import build_detector

__all__ = ["DetectionDataModule", "DetectionModule", "collate", "open_dataset"]

FORMATS = ("mnistdet", "coco", "voc", "yolo")


def collate(batch):
    """Detection batches are lists: images differ in size and targets in length."""
    return tuple(zip(*batch))


def _transforms(train: bool, hflip: bool):
    from torchvision.transforms import v2

    steps = [v2.RandomHorizontalFlip(0.5)] if train and hflip else []
    # boxes and masks follow every geometric step; drop boxes that a crop or flip left degenerate
    steps += [v2.ToDtype(torch.float32, scale=True), v2.SanitizeBoundingBoxes(min_size=1.0)] if train else []
    steps += [] if train else [v2.ToDtype(torch.float32, scale=True)]
    return v2.Compose(steps)


def detect_format(data: str | Path) -> str:
    """``mnistdet`` for the embedded scenes, else the format of the folder/file ``data``."""
    if str(data) in ("mnistdet", "mnistdet-hard"):
        return "mnistdet"
    p = Path(data)
    if p.suffix in (".yaml", ".yml") or (p / "data.yaml").is_file():
        return "yolo"
    if (p / "annotations").is_dir():
        return "coco"
    if (p / "Annotations").is_dir() and (p / "ImageSets").is_dir():
        return "voc"
    raise ValueError(
        f"cannot tell the format of {str(data)!r}: expected 'mnistdet', a data.yaml (YOLO), a folder with "
        "annotations/instances_<split>.json (COCO) or with Annotations/ and ImageSets/ (VOC); pass --format"
    )


def _coco_paths(root: Path, split: str) -> tuple[Path, Path]:
    anns = sorted((root / "annotations").glob(f"instances_{split}*.json"))
    if not anns:
        raise ValueError(f"{root / 'annotations'}: no instances_{split}*.json")
    ann = anns[0]
    suffix = ann.stem[len("instances_") :]  # train2017 -> images in train2017/
    for image_dir in (root / suffix, root / "images" / suffix, root / split, root / "images" / split, root):
        if image_dir.is_dir() and image_dir != root / "annotations":
            return image_dir, ann
    raise ValueError(f"{root}: no image folder for {ann.name}")


def open_dataset(
    data: str | Path,
    split: str,
    *,
    fmt: str | None = None,
    train: bool = False,
    masks: bool = False,
    hflip: bool = False,
    image_size: int = 128,
    n: int | None = None,
    seed: int = 0,
    skip_bad_annotations: bool = False,
):
    """The dataset of ``split`` (``train``/``val``) of ``data`` with the task's transforms."""
    from scsa.tasks.detection.data.formats import CocoDetection, VOCDetection, YoloDetection
    from scsa.tasks.detection.mnistdet import MnistDet

    fmt = fmt or detect_format(data)
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    tf = _transforms(train, hflip)
    if fmt == "mnistdet":
        return MnistDet(split, variant=str(data), image_size=image_size, n=n, seed=seed, transforms=tf)
    common = {"transforms": tf, "train": train, "skip_bad_annotations": skip_bad_annotations}
    if fmt == "coco":
        image_dir, ann = _coco_paths(Path(data), split)
        return CocoDetection(image_dir, ann, masks=masks, **common)
    if fmt == "voc":
        return VOCDetection(data, split, **common)
    yaml_path = Path(data) if Path(data).suffix in (".yaml", ".yml") else Path(data) / "data.yaml"
    return YoloDetection(yaml_path, split, **common)


class DetectionDataModule(L.LightningDataModule):
    """Train and val splits of one detection dataset; built at construction, so ``classes`` is known."""

    def __init__(
        self,
        data: str | Path = "mnistdet",
        *,
        fmt: str | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        masks: bool = False,
        hflip: bool = True,
        image_size: int = 128,
        n_train: int | None = None,
        n_val: int | None = None,
        seed: int = 0,
        shuffle_seed: int = 0,
        skip_bad_annotations: bool = False,
        train_split: str = "train",
        val_split: str = "val",
    ) -> None:
        super().__init__()
        self.fmt = fmt or detect_format(data)
        kw = {
            "fmt": self.fmt,
            "masks": masks,
            "image_size": image_size,
            "seed": seed,
            "skip_bad_annotations": skip_bad_annotations,
        }
        self.train_set = open_dataset(data, train_split, train=True, hflip=hflip, n=n_train, **kw)
        self.val_set = open_dataset(data, val_split, train=False, n=n_val, **kw)
        self.classes = tuple(self.train_set.classes)
        if tuple(self.val_set.classes) != self.classes:
            raise ValueError(f"{data}: the train and val splits name different classes")
        self.label_to_cat_id = dict(self.val_set.label_to_cat_id)
        self.n_skipped = self.train_set.n_skipped + self.val_set.n_skipped
        self.batch_size, self.num_workers, self.shuffle_seed = batch_size, num_workers, shuffle_seed

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _loader(self, ds, sampler):
        return torch.utils.data.DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self):
        world, rank = self._world()
        sampler = SeededSampler(len(self.train_set), self.shuffle_seed, world, rank, sample_seeds=False)
        # Lightning builds the first iterator before it calls set_epoch: start at the epoch the fit loop
        # is about to run (restored from the checkpoint on resume)
        progress = getattr(getattr(self.trainer, "fit_loop", None), "epoch_progress", None)
        sampler.set_epoch(progress.current.processed if progress is not None else 0)
        return self._loader(self.train_set, sampler)

    def val_dataloader(self):
        world, rank = self._world()
        # every process scores its share; the metric gathers them (no padding: each image once)
        return self._loader(
            torch.utils.data.Subset(self.val_set, range(rank, len(self.val_set), world)), None
        )


class DetectionModule(TaskModule):
    """A torchvision detector from :func:`~scsa.tasks.detection.model.build_detector`, trained with SGD,
    linear warm-up and step decay; validated with COCO metrics (:class:`DetectionMetrics`).

    ``info["model"]`` holds the build arguments, ``info["classes"]`` the class names (label k is
    ``classes[k - 1]``) and ``info["cat_ids"]`` the dataset's category id of each label, so a checkpoint
    rebuilds the model and writes results files alone. Each validation records ``map``, ``map_50``, ...
    (and ``segm_*`` for Mask R-CNN), ``val_map`` (= ``map``, the monitored key) and the mean train losses.
    """

    def __init__(
        self,
        model: dict[str, Any],
        classes: list[str],
        cat_ids: list[int],
        *,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        milestones: tuple[int, ...] = (),
        warmup_iters: int = 0,
        warmup_factor: float = 0.001,
        seed: int = 0,
        info: dict[str, Any] | None = None,
    ) -> None:
        optim = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "milestones": list(milestones),
            "warmup_iters": warmup_iters,
            "warmup_factor": warmup_factor,
        }
        super().__init__(
            {
                "task": "detect",
                "model": dict(model),
                "classes": list(classes),
                "cat_ids": [int(c) for c in cat_ids],
                "optim": optim,
                **(info or {}),
            },
            seed,
        )
        self.model = build_detector(**{**model, "num_classes": len(classes) + 1})
        self.optim = optim
        self.masks = model.get("detector") == "maskrcnn"
        self.metrics = DetectionMetrics(masks=self.masks, classes=classes)
        self.label_to_cat_id = {i + 1: int(c) for i, c in enumerate(cat_ids)}
        self.last_results: list[dict[str, Any]] = []  # the latest validation's, COCO results format
        self.last_segm_results: list[dict[str, Any]] = []
        self.last_per_class: dict[str, float] = {}
        self._loss_sums: dict[str, float] = {}
        self._loss_count = 0

    def forward(self, images):
        return self.model(images)

    def training_step(self, batch, batch_idx):
        images, targets = batch
        targets = [{k: v for k, v in t.items() if k in ("boxes", "labels", "masks")} for t in targets]
        losses = self.model(list(images), targets)
        loss = self.check_loss(sum(losses.values()), batch_idx)
        if loss is None:
            return None
        for k, v in losses.items():
            self._loss_sums[k] = self._loss_sums.get(k, 0.0) + float(v.detach())
        self._loss_sums["loss"] = self._loss_sums.get("loss", 0.0) + float(loss.detach())
        self._loss_count += 1
        self.log("loss", loss.detach(), prog_bar=True, logger=False, batch_size=len(images))
        return loss

    def on_validation_epoch_start(self) -> None:
        self.metrics.to(self.device)
        self.metrics.reset()
        self._results: list[dict[str, Any]] = []
        self._segm_results: list[dict[str, Any]] = []

    def validation_step(self, batch, batch_idx):
        images, targets = batch
        preds = self.model(list(images))
        self.metrics.update(preds, targets)
        ids = [t["image_id"] for t in targets]
        self._results += coco_results(preds, ids, self.label_to_cat_id)
        if self.masks:
            self._segm_results += coco_results(preds, ids, self.label_to_cat_id, "segm")

    def on_validation_epoch_end(self) -> None:
        values = self.metrics.compute()
        self.last_per_class = values.pop("per_class")
        self.last_results, self.last_segm_results = self._results, self._segm_results
        row: dict[str, Any] = {"val_map": values["map"], **values}
        if self._loss_count:
            row.update({f"train_{k}": v / self._loss_count for k, v in sorted(self._loss_sums.items())})
        self._loss_sums, self._loss_count = {}, 0
        self.record(row)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        o = self.optim
        optimizer = torch.optim.SGD(
            params, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"]
        )
        trainer = self._trainer
        steps_per_epoch = 1
        if trainer is not None and trainer.max_epochs and trainer.max_epochs > 0:
            total = trainer.estimated_stepping_batches  # optimizer steps, after accumulation and devices
            if math.isfinite(total):
                steps_per_epoch = max(int(total) // trainer.max_epochs, 1)
        milestones = [m * steps_per_epoch for m in o["milestones"]]
        warmup, factor = int(o["warmup_iters"]), float(o["warmup_factor"])

        def lr_at(step: int) -> float:
            scale = 0.1 ** sum(step >= m for m in milestones)
            if step < warmup:  # linear from factor× to 1×, as MMDetection and torchvision's references
                scale *= factor + (1 - factor) * step / warmup
            return scale

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
