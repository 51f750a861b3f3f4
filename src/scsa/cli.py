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
# ---- end profile ----

# ---- train / eval / compare (issue: engine) -- only edit between these markers ----
# ---- end train / eval / compare ----


def main() -> None:
    app()


if __name__ == "__main__":
    main()
