"""``scsa segment train|eval|predict|compare|export-data``: semantic segmentation with smp decoders.

UPerNet (the SCSA paper's ADE20K framework, arXiv 2407.05128), FPN, DeepLabV3+, Unet... from
segmentation_models_pytorch on scsa's backbones with any attention; data as ADE20K, Pascal VOC, a
generic folder, or the embedded ``mnistseg``. Heavy imports stay inside the command bodies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from scsa.cli import common
from scsa.cli.common import Options, opt

app = typer.Typer(
    name="segment",
    help="Semantic segmentation: train, evaluate, predict, compare attention blocks (smp decoders).",
    no_args_is_help=True,
)

_DATA, _RECIPE, _OTHER = "Data and model", "Recipe (default: the recipe's)", "Other"

DATA = (
    opt("data", str, "mnistseg", "--data", "-d", help="mnistseg, or a data folder.", panel=_DATA),
    opt("format", str, "ade20k", "--format", help="ade20k, voc or folder.", panel=_DATA),
    opt("decoder", str, "upernet", "--decoder", help="upernet, fpn, deeplabv3plus, unet, ...", panel=_DATA),
    opt(
        "model",
        str,
        "resnet18",
        "--model",
        "-m",
        help="Backbone: resnet18/50/..., mobilenet_v2.",
        panel=_DATA,
    ),
    opt("attention", str, "scsa", "--attention", "-a", help="Attention block; none: plain.", panel=_DATA),
    opt("output_stride", int | None, None, help="8 or 16: dilated last stages.", panel=_DATA),
    opt("backbone_weights", str | None, None, help="Local classification checkpoint.", panel=_DATA),
    opt("aux_head", bool, False, "--aux-head", help="Auxiliary FCN head (loss x0.4).", panel=_DATA),
    opt("classes_file", str | None, None, help="folder format: class names file.", panel=_DATA),
    opt("n_train", int | None, None, help="mnistseg canvases / first N pairs.", panel=_DATA),
    opt("n_val", int | None, None, help="mnistseg val canvases / first N.", panel=_DATA),
    opt("image_size", int, 64, help="mnistseg canvas size.", panel=_DATA),
)
RECIPE = (
    opt("recipe", str, "small", help="small (mnistseg, CPU), ade20k-160k, ade20k-80k.", panel=_RECIPE),
    opt("iterations", int | None, None, help="Training iterations.", panel=_RECIPE),
    opt("val_interval", int | None, None, help="Validate every N iterations.", panel=_RECIPE),
    opt(
        "batch_size", int | None, None, "--batch-size", "-b", help="Global batch (lr scales).", panel=_RECIPE
    ),
    opt("lr", float | None, None, help="lr for the recipe's base batch.", panel=_RECIPE),
    opt("weight_decay", float | None, None, help="Weight decay.", panel=_RECIPE),
    opt("crop_size", int | None, None, help="Square training crop.", panel=_RECIPE),
    opt("inference", str | None, None, help="whole or slide.", panel=_RECIPE),
    opt("quick", bool, False, "--quick", help="A short run (mnistseg: ~2 min of one core).", panel=_RECIPE),
)
OTHER = (opt("skip_bad_images", bool, False, "--skip-bad-images", help="Leave bad pairs out.", panel=_OTHER),)
COMPARE = (
    opt("attentions", str, "none,se,eca,cbam,scsa", "--attentions", help="Blocks to compare.", panel=_DATA),
    opt("seeds", int, 1, help="Runs per block (seeds 0..K-1).", panel=common.RUN_PANEL),
    opt("throughput_batch", int, 8, help="Batch of the FPS measurement.", panel=common.RUN_PANEL),
)
# iterations are the unit: the engine's epochs/max_steps come from the recipe
TRAINER = common.without(common.TRAINER, "epochs", "max_steps")
QUICK = dict(iterations=300, val_interval=100, n_train=600, n_val=100)


def _train_kwargs(opts: Options) -> dict[str, Any]:
    overrides = {
        k: opts.get(k)
        for k in ("iterations", "val_interval", "batch_size", "lr", "weight_decay", "inference")
    }
    if opts.get("crop_size"):
        overrides["crop_size"] = (opts.crop_size, opts.crop_size)
    n_train, n_val = opts.n_train, opts.n_val
    if opts.quick:
        for key in ("iterations", "val_interval"):
            overrides[key] = overrides[key] or QUICK[key]
        n_train, n_val = n_train or QUICK["n_train"], n_val or QUICK["n_val"]
    return dict(
        data=opts.data,
        fmt=opts.format,
        decoder=opts.decoder,
        backbone=opts.model,
        output_stride=opts.output_stride,
        backbone_weights=opts.backbone_weights,
        aux_head=opts.aux_head,
        n_train=n_train,
        n_val=n_val,
        image_size=opts.image_size,
        skip_bad_images=opts.skip_bad_images,
        classes_file=opts.classes_file,
        recipe=opts.recipe,
        recipe_overrides={k: v for k, v in overrides.items() if v is not None},
        options=common.options_from({k: v for k, v in opts.items() if k != "epochs"}),
    )


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


@app.command()
@common.with_options(common.run_options("runs/segment"), DATA, RECIPE, TRAINER, OTHER)
def train(opts: Options) -> None:
    """Train a segmenter: checkpoints, metrics, curves, summary.json (miou, macc, aacc, per-class IoU).

    mnistseg (CPU): scsa segment train -o runs/seg

    Smoke run: scsa segment train --quick

    ADE20K, 8 GPUs: scsa segment train -d /data/ADEChallengeData2016 --format ade20k -m resnet50 --recipe ade20k-160k --aux-head --devices 8 --strategy ddp
    """
    from scsa.tasks.segmentation.run import train as run_train

    try:
        result = run_train(opts.out_dir, attention=opts.attention, resume=opts.resume, **_train_kwargs(opts))
    except (ValueError, FloatingPointError) as e:
        raise common.fail(e) from e
    if not common.is_rank_zero():
        return
    b, f = result.best, result.final
    typer.echo(
        f"best mIoU {_pct(b['miou'])} (iteration {b['step']}), mAcc {_pct(b['macc'])}, aAcc {_pct(b['aacc'])}; "
        f"final mIoU {_pct(f['miou'])}; {result.wall_time_s:.0f} s"
    )
    skipped = result.summary.get("skipped_bad_images") or []
    if skipped:
        typer.echo(f"skipped {len(skipped)} bad image/mask pair(s): listed in {result.out_dir}/summary.json")
    typer.echo(f"run folder: {result.out_dir}")


def _iou_table(scores: dict) -> str:
    from scsa.engine.report import markdown_table

    rows = [[name, _pct(v)] for name, v in scores["per_class_iou"].items()]
    return markdown_table(["class", "IoU"], rows)


@app.command("eval")
def eval_(
    checkpoint: Annotated[str, typer.Option("--checkpoint", "-c", help="Checkpoint (or run folder).")],
    data: Annotated[str, typer.Option("--data", "-d", help="mnistseg or a data folder.")] = "mnistseg",
    fmt: Annotated[str, typer.Option("--format", help="ade20k, voc or folder.")] = "ade20k",
    inference: Annotated[str | None, typer.Option(help="whole or slide (default: the recipe's).")] = None,
    n_val: Annotated[int | None, typer.Option(help="First N val images / canvases.")] = None,
    classes_file: Annotated[str | None, typer.Option(help="folder format: class names file.")] = None,
    out: Annotated[str | None, typer.Option("--out", "-o", help="Write eval.json here.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    skip_bad_images: Annotated[bool, typer.Option("--skip-bad-images", help="Leave bad pairs out.")] = False,
) -> None:
    """mIoU, mAcc, aAcc and the per-class IoU table of a checkpoint on the val split."""
    from scsa.io import write_json
    from scsa.tasks.segmentation.run import evaluate

    try:
        scores = evaluate(
            checkpoint, data, fmt=fmt, inference=inference, n_val=n_val, classes_file=classes_file,
            device=device, skip_bad_images=skip_bad_images,
        )  # fmt: skip
    except ValueError as e:
        raise common.fail(e) from e
    typer.echo(_iou_table(scores))
    typer.echo(
        f"mIoU {_pct(scores['miou'])}  mAcc {_pct(scores['macc'])}  aAcc {_pct(scores['aacc'])}  ({scores['images']} images)"
    )
    if scores["skipped_bad_images"]:
        typer.echo(f"skipped {len(scores['skipped_bad_images'])} bad image/mask pair(s)")
    if out:
        typer.echo(f"wrote {write_json(Path(out) / 'eval.json', scores)}")


@app.command()
def predict(
    inputs: Annotated[list[str], typer.Argument(help="Image files or folders.")],
    checkpoint: Annotated[str, typer.Option("--checkpoint", "-c", help="Checkpoint (or run folder).")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output folder.")] = "runs/segment-predict",
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Overlay opacity.")] = 0.5,
    inference: Annotated[str | None, typer.Option(help="whole or slide.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Segment images: <stem>_labels.png (class indices, palette PNG) and <stem>_overlay.png each."""
    from scsa.io import write_json
    from scsa.tasks.segmentation.run import predict as run_predict

    try:
        results = run_predict(checkpoint, inputs, out, alpha=alpha, inference=inference, device=device)
    except ValueError as e:
        raise common.fail(e) from e
    for r in results:
        top = ", ".join(
            f"{k} {100 * v:.1f}%" for k, v in sorted(r["classes"].items(), key=lambda kv: -kv[1])[:4]
        )
        typer.echo(f"{r['image']}: {top} -> {r['overlay']}")
    write_json(Path(out) / "predictions.json", results)


@app.command()
@common.with_options(
    common.run_options("runs/segment-compare", resume=False, seed=False),
    COMPARE,
    common.without(DATA, "attention"),
    RECIPE,
    common.without(TRAINER, "checkpoints"),
    OTHER,
)
def compare(opts: Options) -> None:
    """Train one decoder with each attention block (same recipe and seeds): md/csv/json table + plot.

    Smoke run: scsa segment compare --quick --attentions none,scsa
    """
    from scsa.tasks.segmentation.compare import compare_attentions

    kwargs = _train_kwargs(opts)
    kwargs["options"] = common.options_from(
        {k: v for k, v in opts.items() if k != "epochs"}, checkpoints="none"
    )
    attentions = [a.strip() for a in opts.attentions.split(",") if a.strip()]
    try:
        compare_attentions(
            opts.out_dir, attentions, seeds=opts.seeds, throughput_batch=opts.throughput_batch, **kwargs
        )
    except (ValueError, FloatingPointError) as e:
        raise common.fail(e) from e
    typer.echo((Path(opts.out_dir) / "compare.md").read_text())
    typer.echo(f"wrote compare.md, compare.csv, compare.json, compare.png in {opts.out_dir}")


@app.command("export-data")
def export_data(
    out: Annotated[str, typer.Option("--out", "-o", help="Output folder.")] = "data/mnistseg",
    n_train: Annotated[int, typer.Option(min=1, help="Train canvases.")] = 1000,
    n_val: Annotated[int, typer.Option(min=1, help="Val canvases.")] = 200,
    image_size: Annotated[int, typer.Option(min=32, help="Canvas size.")] = 64,
) -> None:
    """Write mnistseg in the ADE20K layout (train it back with --format ade20k)."""
    from scsa.tasks.segmentation.mnistseg import export_mnistseg

    path = export_mnistseg(out, n_train=n_train, n_val=n_val, image_size=image_size)
    typer.echo(json.dumps({"out": str(path), "train": n_train, "val": n_val, "format": "ade20k"}))
