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
# ---- end train / eval / compare ----


def main() -> None:
    app()


if __name__ == "__main__":
    main()
