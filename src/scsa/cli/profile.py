"""``scsa profile``: the complexity report (params, FLOPs, throughput) of one backbone with each block."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["profile"]


def profile(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Backbone: resnet18, resnet50, ...")
    ] = "resnet50",
    attention: Annotated[
        str, typer.Option("--attention", "-a", help="all, or a list: none,se,scsa (none is the reference).")
    ] = "all",
    batch_size: Annotated[int, typer.Option(help="Batch of the timed passes.")] = 64,
    image_size: Annotated[int, typer.Option(help="Input height and width.")] = 224,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up passes.")] = 50,
    iters: Annotated[int, typer.Option(help="Timed passes.")] = 30,
    speed: Annotated[bool, typer.Option("--speed/--no-speed", help="Time eval throughput.")] = True,
    train: Annotated[bool, typer.Option("--train", help="Also time train steps, peak memory.")] = False,
    train_steps: Annotated[int, typer.Option(help="Timed train steps (--train).")] = 5,
    train_warmup: Annotated[int, typer.Option(help="Untimed train steps (--train).")] = 2,
    stem: Annotated[str, typer.Option(help="imagenet, or cifar (for 32x32).")] = "imagenet",
    num_classes: Annotated[int, typer.Option(help="Classes of the head.")] = 1000,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, ...")] = "cpu",
    channels_last: Annotated[bool, typer.Option("--channels-last", help="Channels-last memory.")] = False,
    out: Annotated[str | None, typer.Option("--out", "-o", help="Also write .md, .csv or .json.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar.")] = True,
) -> None:
    """Complexity report: params, FLOPs (MACs), throughput, Δ vs the plain backbone.

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
