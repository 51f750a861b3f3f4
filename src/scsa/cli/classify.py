"""``scsa classify train|eval|compare``: the classification task's commands (also ``scsa train``...).

The pattern of every task's module: the task's options declared once as groups, the shared ones
from :mod:`scsa.cli.common`, one function from options to the task's config, heavy imports inside
the command bodies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from scsa.cli import common
from scsa.cli.common import Options, opt

app = typer.Typer(
    name="classify",
    help="Image classification: train, evaluate, compare attention blocks.",
    no_args_is_help=True,
)

_DATA, _RECIPE, _OTHER, _RUN = "Data and model", "Recipe (default: the recipe's)", "Other", "Run"
_TRAINER = "Trainer"

DATA = (
    opt("data", str, "mnist5k", "--data", "-d", help="mnist5k, or DIR/{train,val}/<class>/.", panel=_DATA),
    opt("model", str, "resnet18", "--model", "-m", help="resnet18/50/..., mobilenet_v2.", panel=_DATA),
    opt("attention", str, "scsa", "--attention", "-a", help="Attention block; none: plain.", panel=_DATA),
    opt("attention_kwargs", str | None, None, help="Block kwargs, JSON: '{\"head_num\": 2}'.", panel=_DATA),
    opt("attention_position", str, "mid", help="mid (paper) or post.", panel=_DATA),
    opt("stem", str | None, None, help="cifar or imagenet (by size).", panel=_DATA),
    opt("pretrained", str | None, None, help="Local checkpoint to start from.", panel=_DATA),
)
# the recipe's values (scsa.tasks.classification.recipes); None keeps the recipe's
RECIPE = (
    opt("recipe", str, "small", help="small, paper-resnet, paper-mobilenetv2.", panel=_RECIPE),
    opt("batch_size", int | None, None, "--batch-size", "-b", help="Global batch size.", panel=_RECIPE),
    opt("lr", float | None, None, help="Learning rate.", panel=_RECIPE),
    opt("weight_decay", float | None, None, help="Weight decay.", panel=_RECIPE),
    opt("momentum", float | None, None, help="SGD momentum.", panel=_RECIPE),
    opt("optimizer", str | None, None, help="sgd or adamw.", panel=_RECIPE),
    opt("schedule", str | None, None, help="step, exp, cosine, constant.", panel=_RECIPE),
    opt("warmup_epochs", float | None, None, help="Linear warm-up epochs.", panel=_RECIPE),
    opt("label_smoothing", float | None, None, help="Label smoothing.", panel=_RECIPE),
    opt("image_size", int | None, None, help="Training image size.", panel=_RECIPE),
    opt("augment", str | None, None, help="rrc-flip, crop-flip or none.", panel=_RECIPE),
)
OTHER = (
    opt("channels_last", bool, False, "--channels-last", help="Channels-last memory.", panel=_OTHER),
    opt("compile", bool, False, "--compile", help="torch.compile the model.", panel=_OTHER),
    opt(
        "skip_bad_images", bool, False, "--skip-bad-images", help="Leave unreadable images out.", panel=_OTHER
    ),
    opt("precise_bn", int | None, None, help="Recompute BN stats on N batches.", panel=_OTHER),
)
_RECIPE_KEYS = ("epochs", *(o.name for o in RECIPE if o.name != "recipe"))

COMPARE = (
    opt(
        "attentions",
        str,
        "none,se,cbam,eca,ca,ema,scsa",
        "--attentions",
        "-a",
        help="Blocks to compare.",
        panel=_DATA,
    ),
    opt("seeds", int, 1, help="Runs per block (seeds 0..K-1).", panel=_RUN),
    opt("quick", bool, False, "--quick", help="A smoke run (~2 min on 2 cores).", panel=_RUN),
    opt(
        "save_checkpoints", bool, False, "--save-checkpoints", help="Keep each run's checkpoints.", panel=_RUN
    ),
    opt("throughput_batch", int | None, None, help="Batch of the speed measurement.", panel=_RUN),
)


def recipe_overrides(opts: Options) -> dict[str, Any]:
    """The recipe values that were set (``None`` keeps the recipe's)."""
    return {k: opts[k] for k in _RECIPE_KEYS if opts.get(k) is not None}


def train_config(opts: Options):
    """The :class:`scsa.tasks.classification.TrainConfig` of a ``train`` command's options."""
    import dataclasses

    from scsa.tasks.classification import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    trainer = common.trainer_values(opts)  # only those set: None keeps TrainConfig's defaults
    direct = {
        k: v
        for k, v in opts.items()
        if k in fields and k not in _RECIPE_KEYS and k not in common.TRAINER_NAMES
    }
    direct.update({k: v for k, v in trainer.items() if k in fields})  # max_epochs: the recipe's epochs
    direct["attention_kwargs"] = common.parse_json(opts.get("attention_kwargs"), "attention_kwargs")
    direct["precise_bn"] = opts.precise_bn or 0
    return TrainConfig(overrides=recipe_overrides(opts), **direct)


@app.command()
@common.with_options(common.run_options("runs/train"), DATA, RECIPE, common.TRAINER, OTHER)
def train(opts: Options) -> None:
    """Train a backbone with an attention block: checkpoints, metrics, curves.

    mnist5k (32x32, CPU): scsa classify train -a scsa --epochs 3

    Resume a stopped run: scsa classify train --resume last -o RUN

    ImageNet, 8 GPUs: scsa classify train -d /data/imagenet -m resnet50 --recipe paper-resnet --devices 8 --strategy ddp
    """
    from scsa.tasks.classification import train as run_train

    try:
        result = run_train(train_config(opts))
    except (ValueError, FloatingPointError) as e:  # bad options or data; a non-finite loss
        raise common.fail(e) from e
    if not common.is_rank_zero():
        return
    typer.echo(
        f"best val top-1 {result.best_top1:.2f}% (epoch {result.best_epoch}), top-5 {result.best_top5:.2f}%; "
        f"final top-1 {result.final_top1:.2f}%, top-5 {result.final_top5:.2f}%; {result.wall_time_s:.0f} s"
    )
    if result.skipped_images:
        typer.echo(
            f"skipped {len(result.skipped_images)} unreadable image(s): see {result.out_dir}/skipped_images.txt"
        )
    if result.skipped_nonfinite_steps:
        typer.echo(f"skipped {result.skipped_nonfinite_steps} step(s) with a non-finite loss")
    typer.echo(f"run folder: {result.out_dir}")


@app.command("eval")
def eval_(
    checkpoint: Annotated[str, typer.Option("--checkpoint", "-c", help="Checkpoint of a train run.")],
    data: Annotated[str, typer.Option("--data", "-d", help="mnist5k or an image folder.")] = "mnist5k",
    split: Annotated[str, typer.Option(help="val or train.")] = "val",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Batch size.")] = 128,
    out: Annotated[str | None, typer.Option("--out", "-o", help="Output folder (RUN/eval).")] = None,
    accelerator: Annotated[str, typer.Option(help="auto, cpu, gpu, ...", rich_help_panel=_TRAINER)] = "auto",
    precision: Annotated[
        str, typer.Option(help="32, bf16-mixed, 16-mixed.", rich_help_panel=_TRAINER)
    ] = "32",
    num_workers: Annotated[int | None, typer.Option(help="Loader workers.", rich_help_panel=_TRAINER)] = None,
    skip_bad_images: Annotated[
        bool, typer.Option("--skip-bad-images", help="Leave unreadable images out.")
    ] = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar.", rich_help_panel=_TRAINER)
    ] = True,
) -> None:
    """Top-1 / top-5 of a checkpoint on a data split, and a confusion-matrix PNG."""
    from scsa.tasks.classification import evaluate

    if out is None:
        ckpt = Path(checkpoint)
        out = str((ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent) / "eval")
    try:
        result = evaluate(
            checkpoint,
            data,
            split=split,
            batch_size=batch_size,
            out_dir=out,
            accelerator=accelerator,
            precision=precision,
            num_workers=num_workers,
            skip_bad_images=skip_bad_images,
            progress=progress,
        )
    except ValueError as e:
        raise common.fail(e) from e
    typer.echo(
        f"{split} top-1 {result.top1:.2f}%  top-5 {result.top5:.2f}%  loss {result.loss:.4f}  ({result.images} images)"
    )
    if result.skipped_images:
        typer.echo(f"skipped {len(result.skipped_images)} unreadable image(s)")
    typer.echo(f"wrote {Path(out) / 'eval.json'} and {Path(out) / 'confusion.png'}")


@app.command()
@common.with_options(
    common.run_options("runs/compare", resume=False, seed=False),
    COMPARE,
    common.without(DATA, "attention", "attention_kwargs"),
    RECIPE,
    common.without(common.TRAINER, "checkpoints"),
    OTHER,
)
def compare(opts: Options) -> None:
    """Train one backbone with each attention block (same recipe and seeds): table, CSV, plot.

    Smoke run on mnist5k (~2 min on 2 CPU cores): scsa compare --quick

    Default (mnist5k at 16x16, 2 short epochs): ~5-10 minutes on 2 CPU cores.

    Mean ± std and tie/gap verdicts: scsa compare --seeds 3

    8 GPUs: scsa compare -d /data/imagenet -m resnet50 --recipe paper-resnet --devices 8 --strategy ddp
    """
    from scsa.tasks.classification.compare import CompareConfig
    from scsa.tasks.classification.compare import compare as run_compare

    per_run = {"data", "model", "out_dir", "seed", "attention", *_RECIPE_KEYS, "recipe"}
    cfg = train_config(opts)
    options = {k: v for k, v in vars(cfg).items() if k not in per_run and k != "overrides"}
    # compare's own defaults (CPU_MNIST5K, QUICK) fill what was not given
    for key in ("limit_train_batches", "limit_val_batches", "precise_bn"):
        if opts.get(key) is None:
            options.pop(key)
    options.pop("resume")
    options["checkpoints"] = "best+last" if opts.save_checkpoints else "none"
    config = CompareConfig(
        data=opts.data,
        model=opts.model,
        attentions=[a.strip() for a in opts.attentions.split(",") if a.strip()],
        recipe=opts.recipe,
        seeds=opts.seeds,
        quick=opts.quick,
        overrides=recipe_overrides(opts),
        train_options=options,
        out_dir=opts.out_dir,
        throughput_batch=opts.throughput_batch,
    )

    def report(attention: str, seed: int, result) -> None:
        common.echo_rank_zero(
            f"[{attention} seed {seed}] best top-1 {result.best_top1:.2f}%  final top-1 {result.final_top1:.2f}%  "
            f"{result.wall_time_s:.0f} s",
            err=True,
        )

    try:
        result = run_compare(config, on_run=report)
    except ValueError as e:
        raise common.fail(e) from e
    if not common.is_rank_zero():
        return
    typer.echo(result.markdown)
    typer.echo(f"wrote {result.out_dir}/compare.md, compare.csv, compare.json, compare.png")
