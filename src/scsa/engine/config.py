"""Configuration files and the resume rule, for every task's command line and for :func:`scsa.engine.fit`.

* :func:`load_config_file`: a YAML or JSON mapping whose keys are option names (``image-size`` or
  ``image_size``); a run's own ``config.json`` is read as the options that made it, so giving it back
  repeats the run.
* :func:`check_resume`: a resumed run takes its configuration from its run folder. An option given
  again with another value is refused, naming it, except the ones that may safely change
  (:data:`SAFE_ON_RESUME`: a larger ``epochs``, ``devices``, ``num_nodes``, ``strategy``, ``progress``,
  ``num_workers``), which are applied with a note.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "IGNORED_ON_RESUME",
    "NESTED",
    "SAFE_ON_RESUME",
    "check_resume",
    "flatten_config",
    "load_config_file",
    "normalize_key",
    "read_run_config",
]

SAFE_ON_RESUME = ("epochs", "max_epochs", "devices", "num_nodes", "strategy", "progress", "num_workers")
_GROWING = ("epochs", "max_epochs")  # safe only when not smaller: the schedule is already past them
# where a run is, how it was started: not part of what it computes
IGNORED_ON_RESUME = ("resume", "out_dir", "out", "config")
# groups of a task's stored configuration that are options too (classification's recipe overrides)
NESTED = ("overrides",)


def normalize_key(key: str) -> str:
    """``--image-size`` / ``image-size`` / ``image_size`` -> ``image_size``."""
    return str(key).strip().lstrip("-").replace("-", "_")


def flatten_config(config: Mapping[str, Any], nested: tuple[str, ...] = NESTED) -> dict[str, Any]:
    """Keys normalized; the values of the ``nested`` groups (dicts) lifted to the top level."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = normalize_key(key)
        if name in nested and isinstance(value, Mapping):
            out.update(flatten_config(value, ()))
        else:
            out[name] = value
    return out


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The options in ``path`` (YAML or JSON, a mapping of option names to values), keys normalized.

    A run's ``config.json`` (``{"task": ..., "config": {...}}``) gives the options of that run.
    Raises ``ValueError`` naming the file when it is missing, unreadable or not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)  # YAML is a superset of JSON: any other suffix reads both
    except Exception as err:  # json.JSONDecodeError, yaml.YAMLError
        raise ValueError(f"config file {str(path)!r} is not valid YAML/JSON: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(
            f"config file {str(path)!r} must hold a mapping of option names to values, got {type(data).__name__}"
        )
    if "config" in data and isinstance(data["config"], Mapping) and "task" in data:
        data = data["config"]  # a run folder's config.json
    return flatten_config(data)


def read_run_config(out_dir: str | Path) -> dict[str, Any] | None:
    """The run folder's ``config.json`` as written by :func:`scsa.engine.fit`, or ``None``."""
    path = Path(out_dir) / "config.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r} is not valid JSON ({err}); cannot resume the run from it") from err


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, str) != isinstance(b, str) and a is not None and b is not None:
        return str(a) == str(b)  # "1" and 1 devices
    return a == b


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def check_resume(
    stored: Mapping[str, Any],
    given: Mapping[str, Any],
    *,
    where: str = "the run",
    safe: tuple[str, ...] = SAFE_ON_RESUME,
    ignored: tuple[str, ...] = IGNORED_ON_RESUME,
) -> tuple[dict[str, Any], list[str]]:
    """``(options, notes)``: the stored options with the safe changes of ``given`` applied.

    ``stored`` and ``given`` are flat option dicts (``given``: only what was given again). A value equal
    to the stored one is fine; a different one is refused (``ValueError`` naming every such option)
    unless it is in ``safe`` (``epochs`` only when not smaller); each applied change gives a note.
    """
    merged = dict(stored)
    notes: list[str] = []
    refused: list[str] = []
    for key, value in given.items():
        if key in ignored:
            continue
        if key not in stored:
            merged[key] = value
            notes.append(f"{_flag(key)} {value!r} applied (the run's configuration does not name it)")
            continue
        old = stored[key]
        if _same(old, value):
            continue
        growing_ok = key not in _GROWING or old is None or (value is not None and value >= old)
        if key in safe and growing_ok:
            merged[key] = value
            notes.append(f"{_flag(key)} changed from {old!r} to {value!r}")
        else:
            refused.append(f"{_flag(key)} {value!r} (the run has {old!r})")
    if refused:
        raise ValueError(
            f"cannot resume {where} with other options: {'; '.join(refused)}. A resumed run keeps its "
            f"configuration; only {', '.join(_flag(k) for k in safe if k != 'max_epochs')} may change (epochs only upwards). "
            "Leave these options out, or start a new run in another folder."
        )
    return merged, notes
