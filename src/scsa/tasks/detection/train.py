"""One detection run (:func:`train_detector`), the evaluation of a checkpoint (:func:`evaluate_detector`)
and loading a checkpoint back into a model (:func:`load_detector`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from scsa.engine import CKPT_KEY, RunResult, TrainerOptions, fit
from scsa.io import write_json
from scsa.tasks.detection.metrics import DetectionMetrics, coco_results
from scsa.tasks.detection.module import DetectionDataModule, DetectionModule
from scsa.tasks.detection.recipes import get_recipe, scaled_lr

__all__ = ["DetectConfig", "evaluate_detector", "load_detector", "train_detector"]


@dataclass
class DetectConfig:
    """A detection run's own settings (the engine's options are in :class:`scsa.engine.TrainerOptions`).
    ``None`` fields take the recipe's value."""

    data: str = "mnistdet"
    format: str | None = None
    detector: str = "fasterrcnn"
    backbone: str | None = None
    attention: str = "scsa"
    recipe: str = "small"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    min_size: int | None = None
    max_size: int | None = None
    trainable_layers: int | None = None
    norm_layer: str | None = None
    anchor_base: int | None = None
    backbone_weights: str | None = None
    image_size: int | None = None
    n_train: int | None = None
    n_val: int | None = None
    skip_bad_annotations: bool = False
    detector_kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _global_batch(batch: int, options: TrainerOptions) -> int:
    devices = options.devices if isinstance(options.devices, int) and options.devices > 0 else 1
    return batch * devices * options.num_nodes * options.accumulate_grad_batches


def train_detector(
    config: DetectConfig, options: TrainerOptions, out_dir: str | Path, resume: str | None = None
) -> RunResult:
    """Train a detector as ``config`` says, through :func:`scsa.engine.fit` (monitor ``val_map``).

    Writes the engine's run files (``summary.json`` with ``best``/``final`` rows holding ``map``,
    ``map_50``, ``map_75``, ``map_small``, ``map_medium``, ``map_large``, ``mar_100``, and ``segm_*`` for
    Mask R-CNN) plus ``predictions_val.json``: the final model's val detections in COCO results format
    (and ``predictions_val_segm.json``, the masks, for Mask R-CNN).
    """
    r = get_recipe(
        config.recipe,
        epochs=config.epochs,
        batch_size=config.batch_size,
        weight_decay=config.weight_decay,
        min_size=config.min_size,
        max_size=config.max_size,
        trainable_layers=config.trainable_layers,
        norm_layer=config.norm_layer,
        anchor_base=config.anchor_base,
        image_size=config.image_size,
        n_train=config.n_train,
        n_val=config.n_val,
    )
    options = replace(options, max_epochs=r.epochs)  # the epochs are the recipe's, or config.epochs
    if options.gradient_clip_val is None and r.gradient_clip_val is not None:
        options = replace(options, gradient_clip_val=r.gradient_clip_val)
    masks = config.detector == "maskrcnn"
    dm = DetectionDataModule(
        config.data,
        fmt=config.format,
        batch_size=r.batch_size,
        num_workers=options.num_workers or 0,
        masks=masks,
        hflip=r.hflip,
        image_size=r.image_size,
        n_train=r.n_train,
        n_val=r.n_val,
        seed=0,  # mnistdet's scenes are part of the data's definition, not of a run
        shuffle_seed=options.seed,
        skip_bad_annotations=config.skip_bad_annotations,
    )
    detector_kwargs = {
        **(r.detector_kwargs if config.detector in ("fasterrcnn", "maskrcnn") else {}),
        **config.detector_kwargs,
    }
    spec = {
        "detector": config.detector,
        "backbone": config.backbone or r.backbone,
        "attention": config.attention,
        "trainable_layers": r.trainable_layers,
        "norm_layer": r.norm_layer,
        "min_size": r.min_size,
        "max_size": r.max_size,
        "backbone_weights": config.backbone_weights,
        "anchor_base": r.anchor_base,
        "box_head_dim": r.box_head_dim,
        **detector_kwargs,
    }
    lr = (
        config.lr
        if config.lr is not None
        else scaled_lr(r, config.detector, _global_batch(r.batch_size, options))
    )
    warmup = r.warmup_iters
    if r.warmup_fraction is not None:
        steps = -(-len(dm.train_set) // _global_batch(r.batch_size, options)) * options.max_epochs
        warmup = min(warmup, max(math.ceil(r.warmup_fraction * steps), 1))
    torch.manual_seed(options.seed)  # the initial weights are the seed's, whatever ran before in this process
    module = DetectionModule(
        spec,
        list(dm.classes),
        [dm.label_to_cat_id[k] for k in range(1, len(dm.classes) + 1)],
        lr=lr,
        momentum=r.momentum,
        weight_decay=r.weight_decay,
        milestones=tuple(m for m in r.milestones if m < options.max_epochs),
        warmup_iters=warmup,
        warmup_factor=r.warmup_factor,
        seed=options.seed,
        info={
            "data": {"data": str(config.data), "format": dm.fmt, "image_size": r.image_size, "n_val": r.n_val}
        },
    )
    if config.recipe == "small" and r.milestones and options.max_epochs != r.epochs:
        # the small recipe decays for the last fifth of the run, whatever its length
        module.optim["milestones"] = (
            [max(round(options.max_epochs * 0.8), 1)] if options.max_epochs > 1 else []
        )
    # the recipe's values as stored JSON reads them back (lists), less the epochs, which a resume may raise
    recipe_values = json.loads(json.dumps({k: v for k, v in r.to_dict().items() if k != "epochs"}))
    run_config = {**config.to_dict(), "recipe_values": recipe_values, "lr_effective": lr}
    result = fit(
        module,
        dm,
        out_dir=out_dir,
        options=options,
        monitor="val_map",
        mode="max",
        config=run_config,
        resume=resume,
        title=f"{config.detector} {spec['backbone']} {config.attention} on {config.data}",
        summary_extra=lambda history: {
            "per_class_ap": module.last_per_class,
            "skipped_bad_annotations": dm.n_skipped,
            "params": sum(p.numel() for p in module.model.parameters()),
        },
        task="detect",
    )
    if result.module.trainer.is_global_zero:
        write_json(Path(out_dir) / "predictions_val.json", module.last_results)
        if masks:
            write_json(Path(out_dir) / "predictions_val_segm.json", module.last_segm_results)
    return result


def load_detector(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """The detector of a ``scsa detect train`` checkpoint (eval mode) and its ``info`` (classes, cat ids...)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    info = ckpt.get(CKPT_KEY)
    if not info or info.get("task") != "detect":
        raise ValueError(
            f"{str(path)!r} is not a detection checkpoint of scsa (no 'scsa' entry with task 'detect')"
        )
    from scsa.tasks.detection.model import build_detector

    spec = {**info["model"], "backbone_weights": None, "num_classes": len(info["classes"]) + 1}
    model = build_detector(**spec)
    state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    return model.eval().to(device), info


@torch.no_grad()
def evaluate_detector(
    checkpoint: str | Path,
    data: str | None = None,
    *,
    fmt: str | None = None,
    split: str = "val",
    batch_size: int = 8,
    out_dir: str | Path | None = None,
    device: str = "cpu",
    limit: int | None = None,
) -> dict[str, Any]:
    """COCO metrics of ``checkpoint`` on ``split`` of ``data`` (default: the data it was trained on).
    With ``out_dir``, writes ``metrics.json`` and ``predictions_<split>.json`` there."""
    from scsa.tasks.detection.module import collate, open_dataset

    model, info = load_detector(checkpoint, device)
    data_info = info.get("data", {})
    same = data is None or str(data) == data_info.get("data")
    data = data or data_info.get("data", "mnistdet")
    masks = info["model"].get("detector") == "maskrcnn"
    n = data_info.get("n_val") if same and split == "val" else None  # mnistdet: the run's own val scenes
    ds = open_dataset(
        data, split, fmt=fmt, masks=masks, image_size=int(data_info.get("image_size", 128)), n=n
    )
    if list(ds.classes) != list(info["classes"]):
        raise ValueError(f"{data}: classes {list(ds.classes)} differ from the checkpoint's {info['classes']}")
    if limit:
        ds = torch.utils.data.Subset(ds, range(min(limit, len(ds))))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, collate_fn=collate)
    metrics = DetectionMetrics(masks=masks, classes=info["classes"], sync=False)
    label_to_cat = {i + 1: c for i, c in enumerate(info["cat_ids"])}
    results: list[dict[str, Any]] = []
    segm: list[dict[str, Any]] = []
    for images, targets in loader:
        preds = model([im.to(device) for im in images])
        preds = [{k: v.cpu() for k, v in p.items()} for p in preds]
        metrics.update(preds, targets)
        ids = [t["image_id"] for t in targets]
        results += coco_results(preds, ids, label_to_cat)
        if masks:
            segm += coco_results(preds, ids, label_to_cat, "segm")
    values = metrics.compute()
    values["images"] = len(ds)
    if out_dir is not None:
        write_json(Path(out_dir) / "metrics.json", values)
        write_json(Path(out_dir) / f"predictions_{split}.json", results)
        if masks:
            write_json(Path(out_dir) / f"predictions_{split}_segm.json", segm)
    return values
