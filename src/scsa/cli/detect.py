"""``scsa detect``: train, evaluate, predict, compare and export data for object detection.

Heavy imports (torch, Lightning, torchvision) happen inside the commands, so ``scsa --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from scsa.cli import common
from scsa.cli.common import Options, opt

app = typer.Typer(
    help="Object detection: torchvision detectors on scsa's backbones with any attention.",
    no_args_is_help=True,
)

QUICK = {"epochs": 2, "n_train": 400, "n_val": 80}  # the --quick run of the small recipe on mnistdet

_DATA, _RECIPE, _RUN = "Data and model", "Recipe (default: the recipe's)", "Run"

DATA = (
    opt(
        "data",
        str,
        "mnistdet",
        "--data",
        "-d",
        help="mnistdet, mnistdet-hard, or a COCO/VOC/YOLO path.",
        panel=_DATA,
    ),
    opt(
        "format",
        str | None,
        None,
        "--format",
        help="coco, voc or yolo (default: from the path).",
        panel=_DATA,
    ),
    opt("detector", str, "fasterrcnn", help="fasterrcnn, retinanet, fcos, maskrcnn.", panel=_DATA),
    opt("backbone", str | None, None, "--model", "-m", help="resnet18/50/..., mobilenet_v2.", panel=_DATA),
    opt(
        "backbone_weights", str | None, None, help="Local classify/torchvision/MMPretrain file.", panel=_DATA
    ),
    opt(
        "skip_bad_annotations",
        bool,
        False,
        "--skip-bad-annotations",
        help="Drop bad entries, count them.",
        panel=_DATA,
    ),
)
RECIPE = (
    opt("recipe", str, "small", help="small (CPU, mnistdet), coco-1x, coco-2x.", panel=_RECIPE),
    opt(
        "batch_size",
        int | None,
        None,
        "--batch-size",
        "-b",
        help="Images per device and step.",
        panel=_RECIPE,
    ),
    opt(
        "lr", float | None, None, help="Learning rate (default: scaled with the global batch).", panel=_RECIPE
    ),
    opt("weight_decay", float | None, None, help="Weight decay.", panel=_RECIPE),
    opt("min_size", int | None, None, help="Resize: shorter side.", panel=_RECIPE),
    opt("max_size", int | None, None, help="Resize: longest side at most.", panel=_RECIPE),
    opt("trainable_layers", int | None, None, help="Backbone stages that train (0-5).", panel=_RECIPE),
    opt("norm_layer", str | None, None, help="frozen_bn or bn.", panel=_RECIPE),
    opt("anchor_base", int | None, None, help="Anchor size of the finest level.", panel=_RECIPE),
    opt("image_size", int | None, None, help="mnistdet canvas size.", panel=_RECIPE),
    opt("n_train", int | None, None, help="mnistdet train scenes.", panel=_RECIPE),
    opt("n_val", int | None, None, help="mnistdet val scenes.", panel=_RECIPE),
)
TRAIN = (
    opt("attention", str, "scsa", "--attention", "-a", help="Attention block; none: plain.", panel=_DATA),
    opt("quick", bool, False, "--quick", help="A short run (100 steps; ~2 min of one CPU core).", panel=_RUN),
)
COMPARE = (
    opt(
        "attentions",
        str,
        "none,se,eca,cbam,scsa",
        "--attentions",
        "-a",
        help="Blocks to compare.",
        panel=_DATA,
    ),
    opt("seeds", int, 1, help="Runs per block (>= 2: mean ± std, tie verdicts).", panel=_RUN),
    opt("quick", bool, False, "--quick", help="The --quick train run per block.", panel=_RUN),
)


def detect_config(opts: Options, attention: str = "scsa"):
    """The :class:`scsa.tasks.detection.train.DetectConfig` of a command's options."""
    import dataclasses

    from scsa.tasks.detection.train import DetectConfig

    fields = {f.name for f in dataclasses.fields(DetectConfig)}
    values = {k: v for k, v in opts.items() if k in fields}
    values["epochs"] = opts.get("epochs")
    if opts.get("quick"):
        values.update({k: v for k, v in QUICK.items() if values.get(k) is None})
    return DetectConfig(**{**values, "attention": attention})


@app.command()
@common.with_options(common.run_options("runs/detect"), DATA, TRAIN, RECIPE, common.TRAINER)
def train(opts: Options) -> None:
    """Train a detector: checkpoints, COCO metrics per epoch, curves, predictions_val.json.

    mnistdet on CPU (Faster R-CNN, ResNet-18 + SCSA, recipe small): scsa detect train

    COCO on 8 GPUs: scsa detect train -d /data/coco -m resnet50 -a scsa --recipe coco-1x --devices 8 --strategy ddp
    """
    from scsa.tasks.detection.train import train_detector

    cfg = detect_config(opts, opts.attention)
    options = common.options_from(opts)
    try:
        result = train_detector(cfg, options, opts.out_dir, resume=opts.resume)
    except (ValueError, FloatingPointError) as e:  # bad options or data; a non-finite loss
        raise common.fail(e) from e
    if not common.is_rank_zero():
        return
    _print_metrics("best", result.best, result.best_epoch)
    _print_metrics("final", result.final, int(result.final["epoch"]))
    skipped = result.summary.get("skipped_bad_annotations")
    if skipped:
        typer.echo(f"skipped {skipped} bad annotation(s)")
    typer.echo(f"wall time {result.wall_time_s:.0f} s; run folder {opts.out_dir}")


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
    fmt: str | None = typer.Option(None, "--format", help="coco, voc or yolo (default: from the path)"),
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
@common.with_options(
    common.run_options("runs/detect-compare", resume=False), DATA, COMPARE, RECIPE, common.TRAINER
)
def compare(opts: Options) -> None:
    """One detector, each attention, the same recipe and seeds: params, GFLOPs, FPS, mAP, AP50/75, APs/m/l.

    mnistdet on CPU: scsa detect compare --quick -a none,scsa
    """
    from scsa.tasks.detection.compare import compare_detectors

    cfg = detect_config(opts)
    options = common.options_from(opts, progress=False)
    names = [a.strip() for a in opts.attentions.split(",") if a.strip()]
    try:
        compare_detectors(cfg, options, opts.out_dir, names, opts.seeds)
    except (ValueError, FloatingPointError) as e:
        raise common.fail(e) from e
    typer.echo(f"wrote {opts.out_dir}/compare.md, compare.csv, compare.json, compare.png")


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
