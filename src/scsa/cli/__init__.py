"""The ``scsa`` command line: a thin layer over the library, one module per task.

``scsa classify|detect|segment|yolo|explain ...`` are sub-apps: each is the ``app`` (a ``typer.Typer``)
of the module ``scsa.cli.<name>``, registered when that module exists. ``scsa train|eval|compare``
are aliases of ``scsa classify train|eval|compare``; ``scsa profile`` and ``scsa demo`` are tools.
Each command imports what it needs inside its body, so ``scsa --help`` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Annotated

import typer

import scsa
from scsa.cli import classify
from scsa.cli.demo import demo
from scsa.cli.profile import profile

__all__ = ["SUBAPPS", "app", "main"]

SUBAPPS = ("classify", "detect", "segment", "yolo", "explain")

app = typer.Typer(
    name="scsa",
    help="SCSA attention toolkit: blocks, backbones, training, reports.",
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
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """SCSA toolkit."""


def _broken(name: str, err: Exception) -> typer.Typer:
    """A stand-in for a sub-app whose module fails to import: says why instead of breaking every command."""
    stub = typer.Typer(name=name, help=f"(unavailable: {err})")

    @stub.callback(invoke_without_command=True)
    def _fail() -> None:
        typer.echo(f"error: scsa {name} is unavailable: {type(err).__name__}: {err}", err=True)
        raise typer.Exit(1)

    return stub


def _register() -> None:
    for name in SUBAPPS:
        module_name = f"{__name__}.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        try:
            sub = importlib.import_module(module_name).app
        except Exception as err:  # one task's broken import must not take the others down
            sub = _broken(name, err)
        app.add_typer(sub, name=name, rich_help_panel="Tasks")
    # the commands of the first scsa releases, kept as aliases
    for name, command in (("train", classify.train), ("eval", classify.eval_), ("compare", classify.compare)):
        app.command(name, short_help=f"= scsa classify {name}.", rich_help_panel="Aliases")(command)
    app.command(rich_help_panel="Tools")(profile)
    app.command(rich_help_panel="Tools")(demo)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
