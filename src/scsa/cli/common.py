"""What every task's ``train`` and ``compare`` commands share: option groups, ``--config``, resume.

Options are declared once, as :class:`Opt` groups, and a command takes them with :func:`with_options`::

    @app.command()
    @common.with_options(common.run_options("runs/detect"), MY_TASK_OPTIONS, common.TRAINER)
    def train(opts: common.Options) -> None:
        options = common.options_from(opts)  # a scsa.engine.TrainerOptions
        ...

The command receives one :class:`Options` mapping: the defaults, overridden by ``--config FILE``
(YAML or JSON, keys = option names, a run's ``config.json`` too), overridden by the command line. With
``--resume``, the run's own configuration (``OUT/config.json``) replaces the defaults and the file;
an option given again with another value is refused, naming it, except the safe ones (see
:func:`scsa.engine.config.check_resume`), which are applied with a printed note.

Nothing heavy is imported here (``scsa --help`` stays fast); the engine is imported inside functions.
"""

from __future__ import annotations

import functools
import inspect
import json
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = [
    "RUN_PANEL",
    "TRAINER",
    "TRAINER_NAMES",
    "TRAINER_PANEL",
    "Opt",
    "Options",
    "echo_rank_zero",
    "fail",
    "is_rank_zero",
    "number",
    "opt",
    "options_from",
    "parse_devices",
    "parse_json",
    "run_options",
    "trainer_values",
    "with_options",
    "without",
]


@dataclass(frozen=True)
class Opt:
    """One command-line option: the parameter name, its type, default, flags and short help."""

    name: str
    type: Any
    default: Any
    flags: tuple[str, ...]
    help: str
    panel: str
    extra: Mapping[str, Any]


def opt(
    name: str, type_: Any, default: Any, *flags: str, help: str, panel: str = "Options", **extra: Any
) -> Opt:
    """Declare an option (``flags`` default to ``--name-with-dashes``; ``extra`` goes to ``typer.Option``)."""
    return Opt(name, type_, default, flags or ("--" + name.replace("_", "-"),), help, panel, extra)


def without(group: Sequence[Opt], *names: str) -> tuple[Opt, ...]:
    """``group`` less the options ``names``."""
    unknown = set(names) - {o.name for o in group}
    if unknown:
        raise ValueError(f"no option(s) {sorted(unknown)} in the group")
    return tuple(o for o in group if o.name not in names)


class Options(dict):
    """The resolved option values of a command (a dict; also readable as attributes).

    ``given``: the names given on the command line or in the config file (not defaults).
    """

    given: frozenset[str] = frozenset()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


# ----------------------------------------------------------------------------------------------
# value parsers


def number(value: str | float | int | None, name: str = "value") -> int | float | None:
    """``"12"`` -> 12 (batches), ``"0.5"`` -> 0.5 (a fraction), as Lightning's ``limit_*`` read them."""
    if value is None or isinstance(value, (int, float)):
        return value
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            raise typer.BadParameter(f"{name}: expected a count or a fraction, got {value!r}") from None


def parse_devices(value: str | int) -> int | str:
    """``"2"`` -> 2; ``"auto"``, ``"0,1"`` stay strings (Lightning reads both)."""
    return int(value) if str(value).isdigit() else str(value)


def parse_json(value: str | Mapping | None, name: str) -> dict | None:
    """A JSON object given as a string (or already a mapping, from a config file)."""
    if value is None or isinstance(value, Mapping):
        return dict(value) if value is not None else None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as e:
        raise typer.BadParameter(
            f"--{name.replace('_', '-')} must be a JSON object, got {value!r}: {e}"
        ) from e
    if not isinstance(parsed, dict):
        raise typer.BadParameter(f"--{name.replace('_', '-')} must be a JSON object, got {value!r}")
    return parsed


def is_rank_zero() -> bool:
    """Under torchrun/SLURM every process runs the command; only global rank 0 reports."""
    from lightning.pytorch.utilities import rank_zero_only

    return rank_zero_only.rank == 0


def echo_rank_zero(message: str, err: bool = False) -> None:
    if is_rank_zero():
        typer.echo(message, err=err)


def fail(err: Exception) -> typer.Exit:
    """Print ``error: ...`` and give the exit to raise (status 2, as for bad options)."""
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(2)


# ----------------------------------------------------------------------------------------------
# the shared groups

RUN_PANEL = _RUN = "Run"  # the --help panels of the shared options
TRAINER_PANEL = _TRAINER = "Trainer"


def run_options(out_default: str, *, resume: bool = True, seed: bool = True) -> tuple[Opt, ...]:
    """``--config``, ``--out/-o`` (default ``out_default``), ``--resume``, ``--seed``."""
    group = [
        opt("config", str | None, None, "--config", help="YAML/JSON file of options.", panel=_RUN),
        opt("out_dir", str, out_default, "--out", "-o", help="Run folder.", panel=_RUN),
    ]
    if resume:
        group.append(opt("resume", str | None, None, help="'last' or a checkpoint.", panel=_RUN))
    if seed:
        group.append(opt("seed", int, 0, help="Seed of weights and data.", panel=_RUN))
    return tuple(group)


def _t(name, type_, default, *flags, help, **extra) -> Opt:
    return opt(name, type_, default, *flags, help=help, panel=_TRAINER, **extra)


# Every scsa.engine.TrainerOptions field but the seed (in run_options); `epochs` is max_epochs.
TRAINER: tuple[Opt, ...] = (
    _t("epochs", int | None, None, help="Epochs (task default)."),
    _t("accelerator", str, "auto", help="auto, cpu, gpu, ..."),
    _t("devices", str, "1", help="Devices per node, or auto."),
    _t("num_nodes", int, 1, help="Nodes."),
    _t("strategy", str, "auto", help="auto, ddp, ddp_spawn, ..."),
    _t("precision", str | None, None, help="32, bf16-mixed, 16-mixed."),
    _t("accumulate_grad_batches", int, 1, "--accumulate", help="Batches per optimizer step."),
    _t("gradient_clip_val", float | None, None, "--clip", help="Clip gradient norm to this."),
    _t("deterministic", bool, False, "--deterministic", help="Deterministic algorithms."),
    _t("max_steps", int, -1, help="Stop after N steps (-1: off)."),
    _t("limit_train_batches", str | None, None, "--limit-train-batches", help="Train batches/epoch."),
    _t("limit_val_batches", str | None, None, "--limit-val-batches", help="Val batches/epoch."),
    _t("val_check_interval", str | None, None, "--val-every", help="Validate every N batches."),
    _t("check_val_every_n_epoch", int, 1, "--val-epochs", help="Validate every N epochs."),
    _t("checkpoints", str, "best+last", help="best+last, last or none."),
    _t("progress", bool, True, "--progress/--no-progress", help="Progress bar."),
    _t("skip_nonfinite_loss", bool, False, "--skip-nonfinite-loss", help="Skip steps with NaN/inf loss."),
    _t("num_workers", int | None, None, "--num-workers", help="Loader workers."),
)
TRAINER_NAMES = frozenset(o.name for o in TRAINER)
_NUMBERS = ("limit_train_batches", "limit_val_batches", "val_check_interval")


def trainer_values(opts: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`scsa.engine.TrainerOptions` fields in ``opts`` that are set (not ``None``), parsed;
    ``epochs`` becomes ``max_epochs``."""
    from scsa.engine.options import TrainerOptions

    fields = {f.name for f in __import__("dataclasses").fields(TrainerOptions)}
    out: dict[str, Any] = {}
    for key, value in opts.items():
        name = "max_epochs" if key == "epochs" else key
        if name not in fields or value is None:
            continue
        if name in _NUMBERS:
            value = number(value, key)
        elif name == "devices":
            value = parse_devices(value)
        out[name] = value
    return out


def options_from(opts: Mapping[str, Any], **defaults: Any) -> Any:
    """A :class:`scsa.engine.TrainerOptions` from ``opts``; ``defaults`` (e.g. the task's
    ``max_epochs``) fill what ``opts`` leaves unset. Bad values raise ``typer.BadParameter``."""
    from scsa.engine.options import TrainerOptions

    try:
        return TrainerOptions(**{**defaults, **trainer_values(opts)})
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e


# ----------------------------------------------------------------------------------------------
# the decorator


def _key_map(options: Sequence[Opt]) -> dict[str, Opt]:
    """Config-file key -> option: the option's name and each of its long flags (dashes as underscores)."""
    keys: dict[str, Opt] = {}
    for o in options:
        keys[o.name] = o
        for flag in o.flags:
            for part in flag.split("/"):
                if part.startswith("--") and not part.startswith("--no-"):
                    keys.setdefault(part[2:].replace("-", "_"), o)
    return keys


def _base(type_: Any) -> Any:
    args = [a for a in typing.get_args(type_) if a is not type(None)]
    return args[0] if args else type_


def _cast(o: Opt, value: Any, where: str) -> Any:
    """A config file's value as the command line would give it (YAML/JSON have their own types)."""
    if value is None:
        return None
    base = _base(o.type)
    bad = typer.BadParameter(f"{where}: {o.name}={value!r} is not a valid {base.__name__}")
    if base is str:
        return json.dumps(value) if isinstance(value, (Mapping, list)) else str(value)
    if base is bool:
        if isinstance(value, bool):
            return value
        words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
        if str(value).lower() in words:
            return words[str(value).lower()]
        raise bad
    if isinstance(value, bool):
        raise bad
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise bad from None
    if base is int:
        if not number.is_integer():
            raise bad
        return int(number)
    return number


def _from_mapping(
    options: Sequence[Opt], values: Mapping[str, Any], where: str, *, strict: bool
) -> dict[str, Any]:
    keys = _key_map(options)
    unknown = sorted(k for k in values if k not in keys and k != "config")
    if unknown and strict:
        known = ", ".join(o.name for o in options)
        raise typer.BadParameter(f"{where}: unknown option(s) {unknown}; known: {known}")
    return {keys[k].name: _cast(keys[k], v, where) for k, v in values.items() if k in keys}


def _given(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _resolve(ctx: typer.Context, options: Sequence[Opt], values: dict[str, Any]) -> Options:
    from scsa.engine.config import check_resume, load_config_file, read_run_config

    explicit = {k: v for k, v in values.items() if _given(ctx, k)}
    from_file: dict[str, Any] = {}
    if values.get("config"):
        path = values["config"]
        try:
            raw = load_config_file(path)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from e
        from_file = _from_mapping(options, raw, f"config file {path!r}", strict=True)
        from_file = {k: v for k, v in from_file.items() if k not in explicit}
    given = {**from_file, **explicit}
    merged = {**values, **given}
    if merged.get("resume") and "out_dir" in merged:
        out_dir = Path(merged["out_dir"])
        stored = read_run_config(out_dir)
        resume = str(merged["resume"])
        if stored is None and resume != "last":
            stored = read_run_config(Path(resume).parent.parent)  # RUN/checkpoints/x.ckpt
        if stored is None:
            echo_rank_zero(
                f"note: no config.json in {out_dir}: resuming with the options given now", err=True
            )
        else:
            run = _from_mapping(options, _flat(stored.get("config", {})), "config.json", strict=False)
            for key in ("config", "resume", "out_dir"):
                run.pop(key, None)
            try:
                resumed, notes = check_resume(run, given, where=f"{str(out_dir)!r}")
            except ValueError as e:
                raise typer.BadParameter(str(e)) from e
            for note in notes:
                echo_rank_zero(f"note: {note}", err=True)
            merged = {
                **values,
                **resumed,
                **{k: merged[k] for k in ("config", "resume", "out_dir") if k in merged},
            }
            given = {**run, **given}
    out = Options(merged)
    out.given = frozenset(given)
    return out


def _flat(config: Mapping[str, Any]) -> dict[str, Any]:
    from scsa.engine.config import flatten_config

    return flatten_config(config)


_CTX = "_scsa_context"  # the click context typer passes in (a name no command uses)


def with_options(*groups: Iterable[Opt]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the command also takes every option of ``groups`` and receives their resolved values
    as its parameter ``opts`` (an :class:`Options`); see the module docstring for the order of
    precedence. The command's own parameters (other than ``opts``) stay as they are."""
    options = [o for group in groups for o in group]
    names = [o.name for o in options]
    if len(set(names)) != len(names):
        raise ValueError(f"options declared twice: {sorted({n for n in names if names.count(n) > 1})}")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in inspect.signature(fn).parameters.values()
            if p.name != "opts"
        ]
        added = [
            inspect.Parameter(
                o.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=o.default,
                annotation=Annotated[
                    o.type, typer.Option(*o.flags, help=o.help, rich_help_panel=o.panel, **o.extra)
                ],
            )
            for o in options
        ]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            ctx = kwargs.pop(_CTX)
            values = {name: kwargs.pop(name) for name in names}
            return fn(**kwargs, opts=_resolve(ctx, options, values))

        context = inspect.Parameter(_CTX, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        params = [context, *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own), *added]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__  # typer must see the new signature, not fn's
        return command

    return decorate
