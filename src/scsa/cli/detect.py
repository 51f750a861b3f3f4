# ruff: noqa: B008 - typer declares options as call defaults
"""``scsa detect``: train, evaluate, predict, compare and export data for object detection.

Heavy imports (torch, Lightning, torchvision) happen inside the commands, so ``scsa --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    help="Object detection: torchvision detectors on scsa's backbones with any attention.",
    no_args_is_help=True,
)

QUICK = {"epochs": 2, "n_train": 240, "n_val": 100}  # the --quick run of the small recipe on mnistdet

DataOpt = typer.Option(
    "mnistdet", "--data", "-d", help="mnistdet, mnistdet-hard, or a COCO/VOC/YOLO dataset path"
)
FormatOpt = typer.Option(None, "--format", help="coco | voc | yolo (default: detected from the path)")
DetectorOpt = typer.Option("fasterrcnn", "--detector", help="fasterrcnn | retinanet | fcos | maskrcnn")
ModelOpt = typer.Option(None, "--model", "-m", help="backbone (default: the recipe's; small: resnet18)")
RecipeOpt = typer.Option("small", "--recipe", help="small (CPU, mnistdet) | coco-1x | coco-2x")
OutOpt = typer.Option(None, "--out", "-o", help="run folder")


def _trainer_options(**kw: Any):
    from scsa.engine import TrainerOptions

    return TrainerOptions(**{k: v for k, v in kw.items() if v is not None})


def _config(args: dict[str, Any], config_file: Path | None) -> dict[str, Any]:
    """Command-line values over the --config file's values (keys as option names, dashes or underscores)."""
    if config_file is None:
        return args
    from scsa.engine.config import load_config_file

    stored = {k.replace("-", "_"): v for k, v in load_config_file(config_file).items()}
    unknown = sorted(set(stored) - set(args))
    if unknown:
        raise typer.BadParameter(
            f"{config_file}: unknown option(s) {', '.join(unknown)}", param_hint="--config"
        )
    return {k: (args[k] if args[k] is not None else stored.get(k)) for k in args}


@app.command()
def train(
    data: str = DataOpt,
    fmt: str | None = FormatOpt,
    detector: str = DetectorOpt,
    model: str | None = ModelOpt,
    attention: str = typer.Option(
        "scsa", "--attention", "-a", help="attention block of the zoo (none: plain)"
    ),
    recipe: str = RecipeOpt,
    epochs: int | None = typer.Option(None, help="epochs (default: the recipe's)"),
    batch_size: int | None = typer.Option(None, help="images per device and step"),
    lr: float | None = typer.Option(
        None, help="learning rate (default: the recipe's, scaled with the global batch)"
    ),
    min_size: int | None = typer.Option(None, help="torchvision's resize: shorter side"),
    max_size: int | None = typer.Option(None, help="torchvision's resize: longest side at most"),
    trainable_layers: int | None = typer.Option(None, help="backbone stages that train (0-5)"),
    norm_layer: str | None = typer.Option(None, help="frozen_bn | bn"),
    backbone_weights: str | None = typer.Option(
        None, help="local classify checkpoint, torchvision or MMPretrain file"
    ),
    image_size: int | None = typer.Option(None, help="mnistdet canvas size"),
    n_train: int | None = typer.Option(None, help="mnistdet train scenes"),
    n_val: int | None = typer.Option(None, help="mnistdet val scenes"),
    skip_bad_annotations: bool = typer.Option(
        False, help="drop bad annotations (and report how many) instead of stopping"
    ),
    quick: bool = typer.Option(False, help="a short run of the small recipe (~3 min on 2 CPU cores)"),
    out: Path | None = OutOpt,
    resume: str | None = typer.Option(None, help="'last' or a checkpoint path: continue the run exactly"),
    config: Path | None = typer.Option(None, "--config", help="YAML/JSON file of option values"),
    seed: int = typer.Option(0, help="random seed"),
    accelerator: str = typer.Option("auto", help="cpu | gpu | auto"),
    devices: str = typer.Option("1", help="devices (int or 'auto')"),
    num_nodes: int = typer.Option(1, help="nodes"),
    strategy: str = typer.Option("auto", help="Lightning strategy (ddp, ...)"),
    precision: str | None = typer.Option(None, help="32 | bf16-mixed | 16-mixed"),
    num_workers: int | None = typer.Option(None, help="data loader workers"),
    limit_train_batches: float | None = typer.Option(None, help="fraction (<= 1) or number of train batches"),
    limit_val_batches: float | None = typer.Option(None, help="fraction (<= 1) or number of val batches"),
    skip_nonfinite_loss: bool = typer.Option(
        False, help="skip steps with a NaN/inf loss instead of stopping"
    ),
    progress: bool = typer.Option(True, help="progress bar"),
) -> None:
    """Train a detector (default: Faster R-CNN, ResNet-18 + SCSA, recipe small, on mnistdet)."""
    from scsa.tasks.detection.train import DetectConfig, train_detector

    values = _config(
        dict(
            data=data,
            fmt=fmt,
            detector=detector,
            model=model,
            attention=attention,
            recipe=recipe,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            min_size=min_size,
            max_size=max_size,
            trainable_layers=trainable_layers,
            norm_layer=norm_layer,
            backbone_weights=backbone_weights,
            image_size=image_size,
            n_train=n_train,
            n_val=n_val,
        ),
        config,
    )
    if quick:
        values = {**values, **{k: values[k] if values[k] is not None else v for k, v in QUICK.items()}}
    cfg = DetectConfig(
        data=values["data"],
        format=values["fmt"],
        detector=values["detector"],
        backbone=values["model"],
        attention=values["attention"],
        recipe=values["recipe"],
        epochs=values["epochs"],
        batch_size=values["batch_size"],
        lr=values["lr"],
        min_size=values["min_size"],
        max_size=values["max_size"],
        trainable_layers=values["trainable_layers"],
        norm_layer=values["norm_layer"],
        backbone_weights=values["backbone_weights"],
        image_size=values["image_size"],
        n_train=values["n_train"],
        n_val=values["n_val"],
        skip_bad_annotations=skip_bad_annotations,
    )
    options = _trainer_options(
        accelerator=accelerator,
        devices=int(devices) if devices.isdigit() else devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=precision,
        seed=seed,
        num_workers=num_workers,
        progress=progress,
        skip_nonfinite_loss=skip_nonfinite_loss,
        limit_train_batches=_limit(limit_train_batches),
        limit_val_batches=_limit(limit_val_batches),
    )
    out = out or Path("runs") / f"detect-{cfg.detector}-{cfg.attention}"
    result = train_detector(cfg, options, out, resume=resume)
    _print_metrics("best", result.best, result.best_epoch)
    _print_metrics("final", result.final, int(result.final["epoch"]))
    typer.echo(
        f"wall time {result.wall_time_s:.0f} s; run folder {out} (summary.json, predictions_val.json, curves.png)"
    )


def _limit(value: float | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value > 1 else float(value)


def _print_metrics(title: str, row: dict[str, Any], epoch: int | None = None) -> None:
    keys = [
        ("mAP", "map"),
        ("AP50", "map_50"),
        ("AP75", "map_75"),
        ("APs", "map_small"),
        ("APm", "map_medium"),
        ("APl", "map_large"),
        ("AR100", "mar_100"),
    ]
    parts = [f"{name} {100 * row[key]:.1f}" for name, key in keys if key in row]
    if "segm_map" in row:
        parts.append(f"| segm mAP {100 * row['segm_map']:.1f} AP50 {100 * row['segm_map_50']:.1f}")
    where = f" (epoch {epoch})" if epoch is not None else ""
    typer.echo(f"{title}{where}: " + "  ".join(parts))


@app.command("eval")
def evaluate(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="a scsa detect train checkpoint"),
    data: str | None = typer.Option(
        None, "--data", "-d", help="dataset (default: the one it was trained on)"
    ),
    fmt: str | None = FormatOpt,
    split: str = typer.Option("val", help="split to evaluate"),
    batch_size: int = typer.Option(8, help="images per batch"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="folder for metrics.json and predictions_<split>.json"
    ),
    device: str = typer.Option("cpu", help="cpu | cuda"),
) -> None:
    """COCO metrics (bbox, and segm for Mask R-CNN) of a checkpoint, with per-class AP."""
    from scsa.tasks.detection.train import evaluate_detector

    values = evaluate_detector(
        checkpoint, data, fmt=fmt, split=split, batch_size=batch_size, out_dir=out, device=device
    )
    _print_metrics(f"{split} ({values['images']} images)", values)
    typer.echo("per-class AP: " + "  ".join(f"{k} {100 * v:.1f}" for k, v in values["per_class"].items()))
    if out is not None:
        typer.echo(f"wrote {out / 'metrics.json'} and {out / f'predictions_{split}.json'}")


@app.command()
def predict(
    images: list[Path] = typer.Argument(..., help="image files"),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="a scsa detect train checkpoint"),
    out: Path = typer.Option(Path("runs/detect-predict"), "--out", "-o", help="output folder"),
    score_thresh: float = typer.Option(0.5, help="lowest score drawn and listed"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
) -> None:
    """Draw the detections (boxes, class, score, and masks) on each image; write PNGs and detections.json."""
    from scsa.tasks.detection.predict import predict_images

    report = predict_images(checkpoint, images, out, score_thresh=score_thresh, device=device)
    for item in report:
        found = ", ".join(f"{d['class']} {d['score']:.2f}" for d in item["detections"]) or "nothing"
        typer.echo(f"{item['file']}: {found}")
    typer.echo(f"wrote {len(report)} PNG(s) and {out / 'detections.json'}")


@app.command()
def compare(
    data: str = DataOpt,
    fmt: str | None = FormatOpt,
    detector: str = DetectorOpt,
    model: str | None = ModelOpt,
    attentions: str = typer.Option(
        "none,se,eca,cbam,scsa", "--attentions", "-a", help="comma-separated blocks"
    ),
    recipe: str = RecipeOpt,
    epochs: int | None = typer.Option(None, help="epochs (default: the recipe's)"),
    seeds: int = typer.Option(1, help="seeds per block (>= 2 for mean ± std and tie verdicts)"),
    n_train: int | None = typer.Option(None, help="mnistdet train scenes"),
    n_val: int | None = typer.Option(None, help="mnistdet val scenes"),
    quick: bool = typer.Option(False, help="the --quick run of train, per block"),
    out: Path = typer.Option(Path("runs/detect-compare"), "--out", "-o", help="output folder"),
    seed: int = typer.Option(0, help="first seed"),
    accelerator: str = typer.Option("auto", help="cpu | gpu | auto"),
    devices: str = typer.Option("1", help="devices"),
    strategy: str = typer.Option("auto", help="Lightning strategy"),
    precision: str | None = typer.Option(None, help="32 | bf16-mixed | 16-mixed"),
    progress: bool = typer.Option(False, help="progress bars"),
) -> None:
    """One detector, each attention, the same recipe and seeds: params, GFLOPs, FPS, mAP, AP50/75, APs/m/l."""
    from scsa.tasks.detection.compare import compare_detectors
    from scsa.tasks.detection.train import DetectConfig

    q = QUICK if quick else {}
    cfg = DetectConfig(
        data=data,
        format=fmt,
        detector=detector,
        backbone=model,
        recipe=recipe,
        epochs=epochs or q.get("epochs"),
        n_train=n_train or q.get("n_train"),
        n_val=n_val or q.get("n_val"),
    )
    options = _trainer_options(
        accelerator=accelerator,
        devices=int(devices) if devices.isdigit() else devices,
        strategy=strategy,
        precision=precision,
        seed=seed,
        progress=progress,
    )
    names = [a.strip() for a in attentions.split(",") if a.strip()]
    compare_detectors(cfg, options, out, names, seeds)
    typer.echo(f"wrote {out}/compare.md, compare.csv, compare.json, compare.png")


@app.command("export-data")
def export_data(
    out: Path = typer.Option(..., "--out", "-o", help="output folder"),
    fmt: str = typer.Option("yolo", "--format", help="yolo | coco"),
    variant: str = typer.Option("mnistdet", help="mnistdet | mnistdet-hard"),
    image_size: int = typer.Option(128, help="canvas size"),
    n_train: int = typer.Option(2000, help="train scenes"),
    n_val: int = typer.Option(200, help="val scenes"),
    seed: int = typer.Option(0, help="scene seed"),
) -> None:
    """Write mnistdet to disk in YOLO (data.yaml) or COCO (instances json) format."""
    from scsa.tasks.detection.data import export_mnistdet

    path = export_mnistdet(
        out, fmt=fmt, variant=variant, image_size=image_size, n_train=n_train, n_val=n_val, seed=seed
    )
    typer.echo(json.dumps({"written": str(path), "format": fmt, "train": n_train, "val": n_val}))
