"""``evaluate``: top-1 / top-5 and a confusion matrix of a trained checkpoint on a data split.

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
Neurocomputing 2025, https://arxiv.org/abs/2407.05128 — report top-1 and top-5 on the validation set.

The checkpoint is loaded with ``weights_only=True`` (no code runs from the file). The model is rebuilt
from the spec that :func:`scsa.tasks.classification.train` stored in it, and the images get the preprocessing of
the training run (size, resize, mean/std), so the command line needs only the checkpoint and the data.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from scsa.engine.plots import plot_confusion
from scsa.io import write_json
from scsa.tasks.classification.data import default_workers
from scsa.tasks.classification.datasets import (
    MNIST5K,
    ImageFolderData,
    TensorImages,
    find_bad_images,
    load_mnist5k,
    scan_image_folder,
)
from scsa.tasks.classification.module import CKPT_KEY, ImageClassifier
from scsa.tasks.classification.recipes import Recipe
from scsa.tasks.classification.transforms import ImageTransform

__all__ = ["EvalResult", "evaluate", "load_checkpoint_model"]

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Top-1 / top-5 (percent), mean loss, image count and the confusion matrix (rows: true class)."""

    top1: float
    top5: float
    loss: float
    images: int
    confusion: list[list[int]]
    classes: list[str]
    skipped_images: list[str]
    out_dir: Path | None


def load_checkpoint_model(checkpoint: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The model of a :func:`scsa.tasks.classification.train` checkpoint with its weights, and the run's stored info."""
    path = Path(checkpoint)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    info = ckpt.get(CKPT_KEY) if isinstance(ckpt, dict) else None
    if not info or not info.get("model_spec"):
        raise ValueError(
            f"{str(path)!r} is not a checkpoint of `scsa train` (no {CKPT_KEY!r} entry with a model spec); "
            "for other weights build the model yourself and use scsa.models.create_model(pretrained=...)"
        )
    from scsa.models import create_model

    model = create_model(**info["model_spec"])
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    return model, info


def _dataset(data: str, split: str, info: dict[str, Any], skip_bad_images: bool):
    t = info["transform"]
    tf = ImageTransform(t["image_size"], t["mean"], t["std"], train=False, resize_size=t["resize_size"])
    classes = list(info["classes"])
    if data == MNIST5K:
        if classes != [str(i) for i in range(10)]:
            raise ValueError(f"the checkpoint's classes {classes} are not mnist5k's digits 0-9")
        tx, ty, vx, vy = load_mnist5k()
        images, labels = (tx, ty) if split == "train" else (vx, vy)
        return TensorImages(images, labels, tf), []
    listing = scan_image_folder(data, splits=(split,))
    if listing["classes"] != classes:
        raise ValueError(
            f"class folders of {str(Path(data) / split)!r} differ from the checkpoint's classes: "
            f"only in the data: {sorted(set(listing['classes']) - set(classes)) or '-'}; "
            f"only in the checkpoint: {sorted(set(classes) - set(listing['classes'])) or '-'}"
        )
    samples = listing[split]
    skipped: list[str] = []
    if skip_bad_images:
        skipped = find_bad_images([p for p, _ in samples])
        bad = set(skipped)
        samples = [s for s in samples if str(s[0]) not in bad]
        if skipped:
            log.warning("left out %d unreadable image(s)", len(skipped))
        if not samples:
            raise ValueError(f"every image under {str(Path(data) / split)!r} is unreadable")
    return ImageFolderData(samples, tf), skipped


def evaluate(
    checkpoint: str | Path,
    data: str = MNIST5K,
    *,
    split: str = "val",
    batch_size: int = 128,
    out_dir: str | Path | None = None,
    accelerator: str = "auto",
    precision: str = "32",
    num_workers: int | None = None,
    skip_bad_images: bool = False,
    progress: bool = True,
) -> EvalResult:
    """Evaluate ``checkpoint`` on ``split`` (``"val"`` or ``"train"``) of ``data``.

    With ``out_dir``, writes ``eval.json`` and ``confusion.png`` there.
    """
    if split not in ("val", "train"):
        raise ValueError(f"split must be 'val' or 'train', got {split!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    model, info = load_checkpoint_model(checkpoint)
    dataset, skipped = _dataset(str(data), split, info, skip_bad_images)
    if num_workers is None:
        num_workers = default_workers(str(data))
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    module = ImageClassifier(model, Recipe(name="eval"), len(info["classes"]))
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.test(module, dataloaders=loader, verbose=False)
    r = module.test_results
    result = EvalResult(
        top1=r["top1"],
        top5=r["top5"],
        loss=r["loss"],
        images=r["images"],
        confusion=r["confusion"],
        classes=list(info["classes"]),
        skipped_images=skipped,
        out_dir=Path(out_dir) if out_dir is not None else None,
    )
    if out_dir is not None:
        out = Path(out_dir)
        summary = {
            "checkpoint": str(checkpoint),
            "data": str(data),
            "split": split,
            **{k: r[k] for k in ("top1", "top5", "loss", "images")},
            "skipped_images": len(skipped),
            "classes": result.classes,
            "confusion": r["confusion"],
        }
        write_json(out / "eval.json", summary)
        plot_confusion(r["confusion"], result.classes, out / "confusion.png")
    return result
