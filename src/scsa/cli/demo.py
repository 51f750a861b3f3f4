"""``scsa demo``: SCSA on a random batch, in a few lines of output."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["demo"]


def demo(
    channels: Annotated[int, typer.Option(help="Channels C of the batch.")] = 64,
    size: Annotated[int, typer.Option(help="Height and width of the batch.")] = 56,
    batch: Annotated[int, typer.Option(help="Batch size.")] = 8,
) -> None:
    """Apply SCSA to a random batch: shapes, parameters, parity with the plain definition."""
    from scsa.tools.demo import run_demo

    run_demo(channels=channels, size=size, batch=batch)
