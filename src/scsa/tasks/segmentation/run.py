"""One segmentation run, its evaluation and its predictions: what ``scsa segment train|eval|predict`` call.

SCSA (arXiv 2407.05128) segments ADE20K with UPerNet; :func:`train` builds the same kind of model
(:func:`~scsa.tasks.segmentation.model.build_segmenter`) on any data layout and runs it through
:func:`scsa.engine.fit` (run folder, checkpoints, exact resume, ``summary.json`` with ``miou``,
``macc``, ``aacc`` and ``per_class_iou`` in ``best`` and ``final``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scsa.tasks.segmentation.data import IGNORE_INDEX
from scsa.tasks.segmentation.datamodule import SegmentationDataModule
from scsa.tasks.segmentation.metrics import SegmentationMetrics
from scsa.tasks.segmentation.model import SINGLE_WIDTH, build_segmenter, segmenter_from_spec
from scsa.tasks.segmentation.recipes import SegRecipe, get_recipe

__all__ = ["evaluate", "load_segmenter", "palette", "predict", "train"]


def train(
    out_dir: str | os.PathLike,
    data: str = "mnistseg",
    fmt: str = "ade20k",
    decoder: str = "upernet",
    backbone: str = "resnet18",
    attention: str = "scsa",
    recipe: str | SegRecipe = "small",
    options: Any = None,
    output_stride: int | None = None,
    backbone_weights: str | None = None,
    aux_head: bool = False,
    n_train: int | None = None,
    n_val: int | None = None,
    image_size: int = 64,
    skip_bad_images: bool = False,
    classes_file: str | None = None,
    resume: str | None = None,
    recipe_overrides: dict[str, Any] | None = None,
    title: str = "",
    callbacks: tuple = (),
):
    """Train a segmenter; returns the engine's ``RunResult`` (``result.best["miou"]``...).

    ``options``: a :class:`scsa.engine.TrainerOptions`; its ``max_epochs`` is replaced by the
    recipe's validation rounds and ``max_steps`` by its iterations.
    """
    from scsa.engine import TrainerOptions, fit
    from scsa.tasks.segmentation.module import SegmentationModule

    options = options or TrainerOptions()
    rec = recipe if isinstance(recipe, SegRecipe) else get_recipe(recipe)
    if recipe_overrides:
        rec = dataclasses.replace(rec, **{k: v for k, v in recipe_overrides.items() if v is not None})
    dm = SegmentationDataModule(
        data,
        fmt=fmt,
        recipe=rec,
        num_workers=options.num_workers,
        seed=options.seed,
        image_size=image_size,
        n_train=n_train,
        n_val=n_val,
        skip_bad_images=skip_bad_images,
        classes_file=classes_file,
    )
    torch.manual_seed(options.seed)  # the initial weights are the run's seed's (fit seeds later)
    model = build_segmenter(
        decoder,
        backbone,
        attention,
        num_classes=dm.num_classes,
        output_stride=output_stride,
        backbone_weights=backbone_weights,
        aux_head=aux_head,
        # the recipe's width applies where the decoder has one (UPerNet, FPN, DeepLab); Unet keeps smp's
        decoder_channels=rec.decoder_channels if _decoder_key(decoder) in SINGLE_WIDTH else None,
    )
    global_batch = rec.batch_size * options.accumulate_grad_batches
    module = SegmentationModule(
        model.spec, dm.classes, rec, global_batch=global_batch, seed=options.seed, model=model
    )
    # the last round may be shorter than val_interval: max_steps cuts it there
    max_steps = rec.iterations if rec.iterations % rec.val_interval else -1
    options = dataclasses.replace(options, max_epochs=rec.epochs, max_steps=max_steps)
    config = dict(
        data=str(data),
        format=fmt,
        decoder=decoder,
        backbone=backbone,
        attention=attention,
        output_stride=output_stride,
        backbone_weights=backbone_weights,
        aux_head=aux_head,
        n_train=n_train,
        n_val=n_val,
        image_size=image_size,
        skip_bad_images=skip_bad_images,
        recipe=rec.to_dict(),
        seed=options.seed,
    )
    dm.setup("fit")

    def extra(history: list[dict]) -> dict:
        return {
            "data": dm.describe(),
            "model": model.spec,
            "params": sum(p.numel() for p in model.parameters()),
            "skipped_bad_images": dm.skipped,
        }

    return fit(
        module,
        dm,
        out_dir=out_dir,
        options=options,
        monitor="val_miou",
        mode="max",
        config=config,
        resume=resume,
        title=title or f"{decoder} {attention}_{backbone} on {Path(str(data)).name}",
        summary_extra=extra,
        task="segment",
        callbacks=callbacks,
    )


def _decoder_key(decoder: str) -> str:
    return decoder.lower().replace("-", "").replace("_", "")


def load_segmenter(checkpoint: str | os.PathLike, map_location: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """``(model in eval mode, info)`` from a ``scsa segment train`` checkpoint (no command line needed)."""
    path = Path(checkpoint)
    if path.is_dir():
        path = path / "checkpoints" / "best.ckpt"
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    info = ckpt.get("scsa")
    if not info or info.get("task") != "segment":
        raise ValueError(
            f"{str(path)!r} is not a scsa segmentation checkpoint (no 'scsa' entry of task 'segment')"
        )
    model = segmenter_from_spec(info["model"])
    state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    return model.eval(), info


def _recipe_of(info: dict) -> SegRecipe:
    fields = {f.name for f in dataclasses.fields(SegRecipe)}
    raw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in info["recipe"].items() if k in fields}
    return SegRecipe(**raw)


@torch.no_grad()
def evaluate(
    checkpoint: str | os.PathLike,
    data: str = "mnistseg",
    fmt: str = "ade20k",
    inference: str | None = None,
    n_val: int | None = None,
    image_size: int | None = None,
    skip_bad_images: bool = False,
    classes_file: str | None = None,
    device: str = "cpu",
) -> dict:
    """mIoU, mAcc, aAcc and per-class IoU of a checkpoint on the val split of ``data``."""
    from scsa.tasks.segmentation.module import SegmentationModule

    model, info = load_segmenter(checkpoint)
    rec = _recipe_of(info)
    if inference:
        rec = dataclasses.replace(rec, inference=inference)
    trained_on = info.get("data", {})
    if data == "mnistseg":  # the run's canvases unless told otherwise
        image_size = image_size or trained_on.get("image_size")
        n_val = n_val or trained_on.get("n_val")
    image_size = image_size or 64
    dm = SegmentationDataModule(
        data, fmt=fmt, recipe=rec, n_val=n_val, image_size=image_size, skip_bad_images=skip_bad_images,
        classes_file=classes_file, n_train=1 if data == "mnistseg" else None,
    )  # fmt: skip
    if list(dm.classes) != list(info["classes"]):
        raise ValueError(
            f"the data's classes ({len(dm.classes)}: {list(dm.classes)[:5]}...) differ from the checkpoint's "
            f"({len(info['classes'])}: {info['classes'][:5]}...)"
        )
    dm.setup("validate")
    module = SegmentationModule(info["model"], info["classes"], rec, model=model).to(device).eval()
    metrics = SegmentationMetrics(len(info["classes"]), info["classes"]).to(device)
    for batch in dm.val_dataloader():
        batch["image"] = batch["image"].to(device)
        for logits, mask, (mh, mw) in zip(module.predict_logits(batch), batch["mask"], batch["mask_size"]):
            metrics.update(logits[None], mask[:mh, :mw][None].to(device))
    scores = metrics.compute()
    scores["images"] = len(dm.val_set)
    scores["skipped_bad_images"] = dm.skipped
    return scores


def palette(num_classes: int) -> np.ndarray:
    """``(256, 3)`` uint8 colours: Pascal VOC's bit-interleaved palette (class 0 black), 255 white."""
    out = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out[i] = (r, g, b)
    out[IGNORE_INDEX] = (255, 255, 255)
    return out


@torch.no_grad()
def predict(
    checkpoint: str | os.PathLike,
    inputs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    alpha: float = 0.5,
    inference: str | None = None,
    device: str = "cpu",
) -> list[dict]:
    """Segment image files: ``<stem>_labels.png`` (class indices, palette PNG) and ``<stem>_overlay.png``
    (the image blended with the class colours) per image; returns ``[{image, labels, overlay, classes}]``
    where ``classes`` maps each predicted class name to its pixel fraction."""
    from PIL import Image

    from scsa.tasks.segmentation.module import SegmentationModule
    from scsa.tasks.segmentation.transforms import EvalTransform

    model, info = load_segmenter(checkpoint)
    rec = _recipe_of(info)
    if inference:
        rec = dataclasses.replace(rec, inference=inference)
    module = SegmentationModule(info["model"], info["classes"], rec, model=model).to(device).eval()
    transform = EvalTransform(scale=rec.test_scale)
    colours = palette(len(info["classes"]))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        files += (
            sorted(q for q in p.iterdir() if q.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
            if p.is_dir()
            else [p]
        )
    for path in files:
        try:
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
        except Exception as err:
            raise ValueError(f"cannot read image file {str(path)!r}: {err}") from err
        image = torch.from_numpy(rgb.copy()).permute(2, 0, 1)
        x, _ = transform(image, torch.zeros(rgb.shape[:2], dtype=torch.long))
        h, w = rgb.shape[:2]
        batch = {"image": x[None].to(device), "image_size": [tuple(x.shape[-2:])], "mask_size": [(h, w)]}
        labels = module.predict_logits(batch)[0].argmax(0).to(torch.uint8).cpu().numpy()
        label_img = Image.fromarray(labels, mode="P")
        label_img.putpalette(colours.flatten().tolist())
        label_path = out / f"{path.stem}_labels.png"
        label_img.save(label_path)
        colour = colours[labels].astype(np.float32)
        blend = (
            np.where(labels[..., None] > 0, (1 - alpha) * rgb + alpha * colour, rgb)
            if info["classes"][0] == "background"
            else (1 - alpha) * rgb + alpha * colour
        )
        overlay_path = out / f"{path.stem}_overlay.png"
        Image.fromarray(blend.clip(0, 255).astype(np.uint8)).save(overlay_path)
        counts = np.bincount(labels.ravel(), minlength=len(info["classes"]))
        results.append(
            {
                "image": str(path),
                "labels": str(label_path),
                "overlay": str(overlay_path),
                "classes": {info["classes"][i]: float(c / labels.size) for i, c in enumerate(counts) if c},
            }
        )
    return results
