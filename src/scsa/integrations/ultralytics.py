"""SCSA and the attention zoo inside ultralytics YOLO models (optional; ultralytics is AGPL-3.0).

Importing this module (or calling :func:`register`) makes every zoo block and ``C2SCSA`` a name that
ultralytics model YAMLs can use, and configures ultralytics to work offline (below). It is ~630
lines because the mechanism, its checks, the surgery and the YAML helpers share private state.

How a YAML name reaches our block, and why this way
---------------------------------------------------
``ultralytics.nn.tasks.parse_model`` looks every YAML module name up in its own module's globals, and
gives the few classes it knows (``Conv``, ``C2PSA``, ...) their input channels and width-scaled output
channels; any other class gets the YAML arguments unchanged and is assumed to keep its input's
channel count. We add names to that namespace (no file of ultralytics is changed) and:

* attention layers (``SCSA``, ``SE``, ``CBAM``, ``ECA``, ``CA``, ``EMA``, ... one per zoo name, upper
  case, plus the zoo class names such as ``CoordAttention``) read their input channel count from the
  ``parse_model`` frame that is building them (its ``ch`` list at the row's ``from`` index). That count
  is the real, width-scaled output of the previous layer, so one YAML serves n/s/m/l/x, and the
  channel-preserving rule ``parse_model`` applies to unknown modules is exactly right for them. Only a
  direct call from ``parse_model`` is read this way; built from Python, a layer takes ``channels``
  first, like every zoo block.
* ``C2SCSA`` must also get C2PSA's treatment (scaled channels, repeats passed inside the block);
  ``parse_model`` decides that by membership in a set holding ``C2PSA``, so ``C2SCSA``'s metaclass makes
  the class hash and compare equal to ``C2PSA`` (and it subclasses it, so ``isinstance`` agrees). A
  side effect to know: a set or dict keyed by classes holds ``C2PSA`` and ``C2SCSA`` as one key.

The alternatives were worse: a patched ``parse_model`` is a fork of 200 lines that drifts with every
release, lazy modules leave the blocks unbuilt until the first forward, and ultralytics has no hook
for custom layers. :func:`register` checks the ``parse_model`` it finds (the locals it reads exist, and
a two-row model builds with the right channel counts) and raises naming the ultralytics version if not.

YAML rows: ``[-1, 1, SCSA, []]``, ``[-1, 1, SCSA, [{head_num: 2}]]`` (the block's keyword arguments as
one mapping), or with the channel count first as in other YAML rows, ``[-1, 1, SCSA, [256, {...}]]``:
that number is checked against the input (after width scaling) and never changes it. ``C2SCSA`` rows
are C2PSA's, ``[1024]`` or ``[1024, 0.5]``, plus an optional mapping of SCSA's keyword arguments (its
key ``attention`` picks another zoo block).

Checkpoints: our classes pickle as ``ultralytics.nn.tasks.<Name>``. A ``best.pt`` loads after
``import scsa.integrations.ultralytics`` (or :func:`register`); without it the load fails with an
AttributeError, and ultralytics never treats the missing name as a package to pip-install (it does so
for a missing top-level module, and an unrelated project named ``scsa`` exists on PyPI).

Offline: before ultralytics is first imported we set (unless already set) ``YOLO_OFFLINE=1`` (no
online check, analytics, update check or downloads), ``YOLO_AUTOINSTALL=false`` and ``YOLO_CONFIG_DIR``
to a folder of scsa's under the temp directory, where a local ``Arial.ttf`` (matplotlib's DejaVu Sans,
copied) saves ``check_font`` its download; settings ``sync`` is turned off. Train with ``amp=False`` on
CPU and no ``*.pt`` name that is not a local file (see :func:`offline_train_args`).
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from copy import deepcopy
from pathlib import Path
from typing import Any, ClassVar


def configure_offline(config_dir: str | os.PathLike | None = None) -> Path:
    """Set the environment that keeps ultralytics offline; returns its settings folder.

    Takes effect fully only before ultralytics is first imported (it reads these at import); values
    already in the environment are kept, so ``YOLO_OFFLINE=0`` opts back in to the network.
    """
    if config_dir is not None:
        os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    default = Path(tempfile.gettempdir()) / f"scsa-ultralytics-{os.getuid() if hasattr(os, 'getuid') else 0}"
    folder = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(default))).expanduser() / "Ultralytics"
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    utils = sys.modules.get("ultralytics.utils")
    if utils is not None:  # imported before us: its settings folder is fixed already, and so is ONLINE
        folder = Path(utils.USER_CONFIG_DIR)
        if getattr(utils, "ONLINE", False):
            warnings.warn(
                "ultralytics was imported before scsa.integrations.ultralytics and found the network: "
                "set YOLO_OFFLINE=1 before importing it to keep it offline",
                stacklevel=2,
            )
    folder.mkdir(parents=True, exist_ok=True)  # ultralytics' USER_CONFIG_DIR: settings.json and fonts
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin:
        dejavu = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):  # the two fonts ultralytics' check_font fetches
            if dejavu.is_file() and not (folder / name).exists():
                tmp = folder / f".{name}.{os.getpid()}"
                shutil.copyfile(dejavu, tmp)
                os.replace(tmp, folder / name)
    return folder


configure_offline()

import torch  # noqa: E402
import ultralytics  # noqa: E402
from torch import nn  # noqa: E402
from ultralytics.nn import tasks  # noqa: E402
from ultralytics.nn.modules import C2PSA  # noqa: E402
from ultralytics.utils import SETTINGS  # noqa: E402

from scsa.attention import create_attention, get_attention_class, list_attentions  # noqa: E402

if SETTINGS.get("sync", False):
    SETTINGS.update({"sync": False})  # no analytics events, even where YOLO_OFFLINE was set to 0

_VERSION = f"ultralytics {ultralytics.__version__}"
_PARSE_LOCALS = ("ch", "f", "i", "n", "args", "width", "max_channels")
CFG_DIR = Path(__file__).with_name("cfg")


# ---------------------------------------------------------------------------------------------------- layers
def _parse_model_frame() -> Any:
    """The ``parse_model`` frame whose row is calling a layer's constructor right now, else None."""
    frame = inspect.currentframe()
    try:
        caller = frame.f_back.f_back  # this helper <- ZooLayer.__init__ <- the constructor's caller
        if caller is not None and caller.f_code.co_name == "<genexpr>":  # parse_model's n > 1 repeats
            caller = caller.f_back
        if (
            caller is not None
            and caller.f_code.co_name == "parse_model"
            and Path(caller.f_code.co_filename).resolve() == Path(tasks.__file__).resolve()
        ):
            return caller
        return None
    finally:
        del frame


class ZooLayer(nn.Module):
    """A zoo attention block as a YOLO layer: ``y = attn(x)``, channels unchanged.

    Built from a YAML row by ``parse_model`` (channels read from the previous layer) or from Python as
    ``SCSA(channels, **kwargs)``; subclasses fix the zoo name (see :func:`layer_class`).
    """

    zoo_name: ClassVar[str] = ""
    _scsa_layer: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        frame = _parse_model_frame()
        name = type(self).__name__
        if frame is not None:
            channels, kwargs = _from_yaml_row(name, args, kwargs, frame.f_locals)
        else:
            if not args or isinstance(args[0], bool) or not isinstance(args[0], int):
                raise TypeError(f"{name}(channels, **kwargs): channels must be an int, got {args!r}")
            if len(args) > 1:
                raise TypeError(
                    f"{name}(channels, **kwargs) takes the block's options as keywords, got {args!r}"
                )
            channels = args[0]
        self.channels = int(channels)
        self.kwargs = dict(kwargs)
        self.attn = create_attention(self.zoo_name, self.channels, **self.kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ultralytics' load_checkpoint sets `inplace = True` on every module that has the attribute; an
        # SCSA writing its output over its input would corrupt a layer output the head saved for later
        if getattr(self.attn, "inplace", False):
            self.attn.inplace = False
        return self.attn(x)


def _from_yaml_row(name: str, args: Sequence[Any], kwargs: Mapping[str, Any], loc: Mapping[str, Any]):
    i, f, ch = loc["i"], loc["f"], loc["ch"]
    where = f"model row {i} ({name})"
    if not isinstance(f, int):
        raise ValueError(f"{where}: an attention layer takes one input, so 'from' must be an int, got {f!r}")
    channels = ch[f]
    rest = list(args)
    nominal = None
    if rest and isinstance(rest[0], int) and not isinstance(rest[0], bool):
        nominal = rest.pop(0)
    options = dict(kwargs)
    if rest and isinstance(rest[0], Mapping):
        options.update(rest.pop(0))
    if rest:
        raise ValueError(
            f"{where}: arguments {list(args)!r} not understood; write [], [{{key: value}}] (the block's "
            f"keyword arguments) or [channels, {{key: value}}]"
        )
    if nominal is not None:
        scaled = tasks.make_divisible(min(nominal, loc["max_channels"]) * loc["width"], 8)
        if scaled != channels:
            raise ValueError(
                f"{where}: {nominal} channels scale to {scaled} at width {loc['width']}, but its input has "
                f"{channels}; an attention layer keeps its input's channels, so leave the number out: []"
            )
    return channels, options


_LAYER_CLASSES: dict[str, type[ZooLayer]] = {}


def layer_class(name: str) -> type[ZooLayer]:
    """The YOLO layer class of zoo block ``name`` (``"scsa"`` -> ``SCSA``), created once."""
    key = name.lower()
    get_attention_class(key)  # an unknown name raises here, listing the known ones
    if key not in _LAYER_CLASSES:
        yaml_name = key.upper()
        doc = f"Zoo block {key!r} as an ultralytics layer; YAML: ``[-1, 1, {yaml_name}, []]``."
        # pickled as ultralytics.nn.tasks.<NAME>: see the module docstring (no pip-install of 'scsa')
        attrs = {"zoo_name": key, "__doc__": doc, "__module__": tasks.__name__, "__qualname__": yaml_name}
        _LAYER_CLASSES[key] = type(yaml_name, (ZooLayer,), attrs)
    return _LAYER_CLASSES[key]


def yaml_names() -> dict[str, str]:
    """YAML module name -> zoo name, for every attention layer :func:`register` provides."""
    names: dict[str, str] = {}
    for key in list_attentions():
        if key == "none":
            continue
        names[key.upper()] = key
        alias = get_attention_class(key).__name__
        if alias.isidentifier() and alias.upper() != key.upper():
            names.setdefault(alias, key)
    return names


# ---------------------------------------------------------------------------------------------------- C2SCSA
class _ScaledLikeC2PSA(type(nn.Module)):
    """Metaclass: the class hashes and compares equal to C2PSA, so parse_model scales it like C2PSA."""

    def __eq__(cls, other: object) -> bool:
        return cls is other or other is C2PSA

    def __hash__(cls) -> int:
        return hash(C2PSA)


class C2SCSA(C2PSA, metaclass=_ScaledLikeC2PSA):
    """ultralytics' C2PSA with SCSA (or another zoo block) in place of each PSABlock's attention.

    ``C2SCSA(c1, c2, n=1, e=0.5, options=None)``; ``options`` holds the block's keyword arguments and
    may name another zoo block under ``attention``. Channels, repeats and the feed-forward part are C2PSA's.
    """

    __module__ = tasks.__name__  # pickled as ultralytics.nn.tasks.C2SCSA (see the module docstring)
    _scsa_layer: ClassVar[bool] = True

    def __init__(
        self, c1: int, c2: int, n: int = 1, e: float | Mapping = 0.5, options: Mapping | None = None
    ) -> None:
        if isinstance(e, Mapping):  # YAML [1024, {head_num: 2}]: the mapping took e's place
            e, options = 0.5, e
        options = dict(options or {})
        attention = str(options.pop("attention", "scsa"))
        super().__init__(c1, c2, n, e)
        self.attention = attention
        for block in self.m:
            block.attn = layer_class(attention)(self.c, **options)


# ---------------------------------------------------------------------------------------------------- register
_CHECKED = False


def register() -> dict[str, type[nn.Module]]:
    """Make the zoo layers and ``C2SCSA`` resolvable in ultralytics YAMLs. Idempotent; returns the names.

    Raises RuntimeError, naming the ultralytics version, if its ``parse_model`` no longer works the way
    this relies on, or if it already defines one of the names ``SCSA``/``C2SCSA`` itself.
    """
    global _CHECKED
    code = tasks.parse_model.__code__
    names = set(code.co_varnames) | set(code.co_cellvars)  # 'i' and 'args' are closed over by genexprs
    missing = [v for v in _PARSE_LOCALS if v not in names]
    if code.co_name != "parse_model" or missing:
        raise RuntimeError(
            f"{_VERSION}: ultralytics.nn.tasks.parse_model lacks the locals {missing or '?'} (or was replaced); "
            "scsa's YAML layers read their input channels from it. Use ultralytics 8.3-8.4 or "
            "scsa.integrations.ultralytics.insert_attention on a built model."
        )
    table: dict[str, type[nn.Module]] = {name: layer_class(key) for name, key in yaml_names().items()}
    table["C2SCSA"] = C2SCSA
    for name, cls in table.items():
        existing = getattr(tasks, name, None)
        if existing is not None and existing is not cls and not getattr(existing, "_scsa_layer", False):
            if name in ("SCSA", "C2SCSA"):
                raise RuntimeError(f"{_VERSION} defines its own {name}; scsa's would shadow it")
            warnings.warn(
                f"{_VERSION} defines {name}; left to ultralytics (scsa's is not registered)", stacklevel=2
            )
            continue
        setattr(tasks, name, cls)
    if not _CHECKED:
        _self_check()
        _CHECKED = True
    return {name: getattr(tasks, name) for name in table}


def _self_check() -> None:
    d = {
        "nc": 1,
        "scales": {"n": [0.5, 0.25, 1024]},
        "scale": "n",
        "backbone": [[-1, 1, "Conv", [64, 3, 2]], [-1, 1, "SCSA", []], [-1, 2, "C2SCSA", [64]]],
        "head": [[-1, 1, "Conv", [32, 1, 1]]],
    }
    try:
        layers, _ = tasks.parse_model(d, ch=3, verbose=False)
        ok = (
            isinstance(layers[1], ZooLayer)
            and layers[1].channels == 16
            and isinstance(layers[2], C2SCSA)
            and layers[2].cv1.conv.in_channels == 16
            and len(layers[2].m) == 1
            and layers[3].conv.in_channels == 16
        )
    except Exception as err:  # the check names the version whatever broke
        raise RuntimeError(
            f"{_VERSION}: a model YAML with SCSA and C2SCSA no longer builds: {err!r}"
        ) from err
    if not ok:
        raise RuntimeError(f"{_VERSION}: parse_model gave SCSA/C2SCSA the wrong channel counts")


register()


# ---------------------------------------------------------------------------------------------------- surgery
WHERE = ("backbone", "p3", "p4", "p5", "neck", "c2psa")


def _detection_model(model: Any) -> tasks.BaseModel:
    inner = getattr(model, "model", None)
    det = inner if isinstance(inner, tasks.BaseModel) else model
    if not isinstance(det, tasks.BaseModel) or not isinstance(getattr(det, "yaml", None), dict):
        raise TypeError(
            f"expected an ultralytics YOLO or DetectionModel built from a YAML, got {type(model)!r}"
        )
    return det


def _rows(d: Mapping[str, Any]) -> list[list[Any]]:
    return [list(r) for r in (*d["backbone"], *d["head"])]


def _absolute(f: int | Sequence[int], i: int) -> list[int]:
    return [x if x >= 0 else i + x for x in ([f] if isinstance(f, int) else f)]


def _positions(d: Mapping[str, Any], where: str) -> list[int]:
    """Indices of the rows after which a layer goes, for ``where`` (see :func:`insert_attention`)."""
    rows, nb = _rows(d), len(d["backbone"])
    if where == "neck":
        return sorted(set(_absolute(rows[-1][0], len(rows) - 1)))
    read = sorted({a for i in range(nb, len(rows)) for a in _absolute(rows[i][0], i) if a < nb})
    if where == "backbone":
        return read
    if len(read) != 3:
        raise ValueError(
            f"where={where!r} needs a head reading 3 backbone outputs (P3-P5); this one reads {read}"
        )
    return [read[("p3", "p4", "p5").index(where)]]


def insert_rows(
    d: Mapping[str, Any], after: Sequence[int], name: str, options: Mapping | None = None
) -> dict:
    """A copy of model dict ``d`` with a ``[-1, 1, name, [options]]`` row after each row in ``after``.

    'from' indices are renumbered; a later row that read a row in ``after`` now reads the new layer.
    """
    rows, nb, after = _rows(d), len(d["backbone"]), sorted(set(after))
    new_index = [i + sum(p < i for p in after) for i in range(len(rows))]

    def target(a: int) -> int:  # the new index a reference to old row a now means
        return new_index[a] + 1 if a in after else new_index[a]

    row = [-1, 1, name, [dict(options)] if options else []]
    out = deepcopy(dict(d))
    out["backbone"], out["head"] = [], []
    for i, (f, n, m, args) in enumerate(rows):
        j = new_index[i]
        if isinstance(f, int):
            f2 = f if f == -1 else (target(f) if f >= 0 else target(i + f) - j)
        else:
            f2 = [x if x == -1 else target(x if x >= 0 else i + x) for x in f]
        part = "backbone" if i < nb else "head"
        out[part].append([f2, n, m, deepcopy(args)])
        if i in after:
            out[part].append(deepcopy(row))
    return out


def c2psa_rows(d: Mapping[str, Any], options: Mapping | None = None) -> tuple[dict, list[int]]:
    """A copy of model dict ``d`` with every C2PSA row made a C2SCSA row; returns it and the rows' indices."""
    out, nb = deepcopy(dict(d)), len(d["backbone"])
    idx = [i for i, row in enumerate(_rows(d)) if row[2] == "C2PSA"]
    if not idx:
        raise ValueError("where='c2psa': this model has no C2PSA layer (YOLO11 has one; YOLOv8 has none)")
    for i in idx:
        row = out["backbone"][i] if i < nb else out["head"][i - nb]
        row[2] = "C2SCSA"
        row[3] = [*(a for a in row[3] if not isinstance(a, Mapping)), *([dict(options)] if options else [])]
    return out, idx


def insert_attention(
    model: Any, attention: str = "scsa", where: str = "backbone", **kwargs: Any
) -> list[int]:
    """Insert zoo block ``attention`` into a built ultralytics model, in place; returns the new layers' indices.

    Args:
        model: an ``ultralytics.YOLO`` or its ``DetectionModel`` (built from a YAML, or loaded from a ``.pt``).
        attention: zoo name (``"scsa"``, ``"cbam"``, ...).
        where: ``"backbone"`` (after each backbone output the neck reads: P3, P4, P5), ``"p3"``/``"p4"``/``"p5"``
            (one of those), ``"neck"`` (after each layer the Detect head reads), or ``"c2psa"`` (in place of
            the attention of every C2PSA, which becomes a :class:`C2SCSA`; nothing is inserted).
        **kwargs: the block's keyword arguments.

    Every existing layer keeps its module object, so its weights, device and dtype; ``model.yaml`` is
    rewritten to match (training rebuilds the model from it), and the new layers are built from it.
    """
    if where not in WHERE:
        raise ValueError(f"where must be one of {WHERE}, got {where!r}")
    get_attention_class(attention)
    det = _detection_model(model)
    if det is not model and hasattr(model, "ckpt") and not model.ckpt:
        # YOLO.train rebuilds a YAML-built model from its YAML *path* (the surgery would be lost); with a
        # checkpoint it rebuilds from `model.yaml`, which we rewrite, and transfers the weights
        model.ckpt = {"model": det}
    old_layers = list(det.model)
    if where == "c2psa":
        options = {**({"attention": attention} if attention.lower() != "scsa" else {}), **kwargs}
        new_yaml, idx = c2psa_rows(det.yaml, options)
        built, _ = _build_layers(new_yaml)
        for i in idx:
            old, new = old_layers[i], built[i]
            new.cv1, new.cv2 = old.cv1, old.cv2  # the pretrained parts move over as they are
            for a, b in zip(old.m, new.m):
                b.ffn = a.ffn
            _adopt(new, old)
            old_layers[i] = new
        det.model, det.yaml = nn.Sequential(*old_layers), new_yaml
        return idx
    after = _positions(det.yaml, where)
    new_yaml = insert_rows(det.yaml, after, layer_class(attention).__name__, kwargs)
    built, save = _build_layers(new_yaml)
    shift = [i + sum(p < i for p in after) for i in range(len(old_layers))]
    layers: list[nn.Module] = []
    for i, old in enumerate(old_layers):
        old.i, old.f = shift[i], built[shift[i]].f
        layers.append(old)
        if i in after:
            _adopt(built[shift[i] + 1], old)
            layers.append(built[shift[i] + 1])
    det.model, det.yaml, det.save = nn.Sequential(*layers), new_yaml, save
    return [shift[p] + 1 for p in after]


def _build_layers(d: dict) -> tuple[nn.Sequential, list[int]]:
    from ultralytics.utils.torch_utils import initialize_weights

    layers, save = tasks.parse_model(deepcopy(d), ch=d.get("channels", 3), verbose=False)
    initialize_weights(layers)  # as DetectionModel does for a model built from the YAML
    return layers, save


def _adopt(new: nn.Module, near: nn.Module) -> None:
    p = next(near.parameters(), None)
    if p is not None:
        new.to(device=p.device, dtype=p.dtype)
    new.train(near.training)


# ---------------------------------------------------------------------------------------------------- YAMLs
# name -> (ultralytics base YAML, where, title); the files in cfg/ are generated from these (tested)
SHIPPED = {
    "yolo11-scsa": (
        "11/yolo11.yaml",
        "backbone",
        "YOLO11 with SCSA after the backbone's P3, P4 and P5 outputs",
    ),
    "yolo11-scsa-neck": ("11/yolo11.yaml", "neck", "YOLO11 with SCSA on each of the three inputs of Detect"),
    "yolo11-c2scsa": ("11/yolo11.yaml", "c2psa", "YOLO11 with C2SCSA: SCSA in place of C2PSA's attention"),
    "yolov8-scsa": (
        "v8/yolov8.yaml",
        "backbone",
        "YOLOv8 with SCSA after the backbone's P3, P4 and P5 outputs",
    ),
    "yolov8-scsa-neck": ("v8/yolov8.yaml", "neck", "YOLOv8 with SCSA on each of the three inputs of Detect"),
}


def _flow(v: Any) -> str:
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    if isinstance(v, str) and v in ("nearest", "bilinear"):
        return f'"{v}"'
    return str(v)


def shipped_yaml_text(name: str) -> str:
    """The text of shipped model YAML ``name``, generated from ultralytics' own YAML (see :data:`SHIPPED`)."""
    from ultralytics.utils import ROOT, YAML

    base, where, title = SHIPPED[name]
    d = YAML.load(ROOT / "cfg" / "models" / base)
    new = c2psa_rows(d)[0] if where == "c2psa" else insert_rows(d, _positions(d, where), "SCSA")
    lines = [
        f"# {title}.",
        f"# Derived from Ultralytics' {Path(base).name} (AGPL-3.0, https://ultralytics.com/license), so this file",
        "# is AGPL-3.0 too. Needs `import scsa.integrations.ultralytics` (or its register()) before YOLO(...).",
        f"# Written by scsa.integrations.ultralytics.shipped_yaml_text({name!r}); use: YOLO('{name.replace('-', 'n-', 1)}.yaml')",
        "",
        f"nc: {new['nc']}",
        "scales: # [depth, width, max_channels]",
        *(f"  {k}: {_flow(v)}" for k, v in new["scales"].items()),
    ]
    i = 0
    for part in ("backbone", "head"):
        lines += ["", f"{part}:", "  # [from, repeats, module, args]"]
        for f, n, m, args in new[part]:
            lines.append(f"  - {_flow([f, n, m, args])} # {i}")
            i += 1
    return "\n".join(lines) + "\n"


def list_model_yamls() -> list[Path]:
    """The model YAMLs shipped with scsa (ultralytics' YOLO11/YOLOv8 with SCSA at the common places)."""
    return sorted(CFG_DIR.glob("*.yaml"))


def model_yaml(name: str) -> Path:
    """Path of a shipped model YAML: ``"yolo11-scsa"``, or with a scale, ``"yolo11s-scsa"``.

    With a scale the path is ``cfg/yolo11s-scsa.yaml``, which does not exist as a file: ultralytics
    reads the scale from the name and the layers from ``yolo11-scsa.yaml`` (its convention for
    ``yolo11s.yaml``), so ``YOLO(model_yaml("yolo11s-scsa"))`` builds the s model.
    """
    import re

    stem = Path(name).name.removesuffix(".yaml")
    if (CFG_DIR / f"{stem}.yaml").is_file():
        return CFG_DIR / f"{stem}.yaml"
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", stem)
    if not (CFG_DIR / f"{unified}.yaml").is_file():
        known = ", ".join(p.stem for p in list_model_yamls())
        raise ValueError(
            f"no shipped model YAML {name!r}; known: {known} (a scale letter may follow the version)"
        )
    return CFG_DIR / f"{stem}.yaml"


def build_model(
    model: str = "yolo11n",
    attention: str = "none",
    where: str = "backbone",
    weights: str | None = None,
    **kwargs: Any,
):
    """An ``ultralytics.YOLO`` for base ``model`` (``yolo11n``, ``yolov8s``, ... or a YAML path), with zoo
    block ``attention`` inserted at ``where`` (``"none"``: the unmodified model). ``weights``: a local
    ``.pt`` to start from (never downloaded)."""
    from ultralytics import YOLO

    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"weights {weights!r}: no such file (scsa never downloads weights)")
    spec = model if model.endswith((".yaml", ".yml", ".pt")) else f"{model}.yaml"
    if spec.endswith(".pt") and not Path(spec).is_file():
        raise FileNotFoundError(f"model {spec!r}: no such file (scsa never downloads weights)")
    yolo = YOLO(spec, task="detect")
    if weights is not None:
        yolo.load(weights)
    if attention.lower() != "none":
        insert_attention(yolo, attention, where=where, **kwargs)
    return yolo


def measure(model: Any, imgsz: int, fps_seconds: float = 1.0) -> dict[str, float]:
    """``params``, ``GFLOPs`` (torch's FLOP counter at ``imgsz``, SCSA's fast path off so every op is
    seen) and ``FPS`` (batch 1, eval, on the model's device; a rough figure on a shared CPU) of a YOLO,
    its DetectionModel or a ``.pt`` path."""
    from torch.utils.flop_counter import FlopCounterMode

    from scsa.attention import fast_path

    if isinstance(model, (str, Path)):
        from ultralytics import YOLO

        model = YOLO(str(model))
    det = deepcopy(_detection_model(model)).float().eval()
    p = next(det.parameters())
    x = torch.zeros(1, det.yaml.get("channels", 3), imgsz, imgsz, device=p.device)
    with torch.inference_mode():
        with fast_path(False), FlopCounterMode(display=False) as counter:
            det(x)
        det(x)  # warm-up
        n, t0 = 0, time.perf_counter()
        while n < 3 or time.perf_counter() - t0 < fps_seconds:
            det(x)
            n += 1
        fps = n / (time.perf_counter() - t0)
    params = sum(q.numel() for q in det.parameters())
    return {"params": params, "GFLOPs": counter.get_total_flops() / 1e9, "FPS": fps}


def offline_train_args(device: str = "cpu", **overrides: Any) -> dict[str, Any]:
    """Arguments for ``YOLO.train`` that download nothing: no AMP check on CPU, no pretrained weights
    by name, no plots unless asked for (they work offline too, with the local font)."""
    args: dict[str, Any] = {"device": device, "amp": device != "cpu", "plots": False, "pretrained": False}
    args.update(overrides)
    return args


__all__ = [
    "C2SCSA",
    "WHERE",
    "ZooLayer",
    "build_model",
    "configure_offline",
    "insert_attention",
    "insert_rows",
    "layer_class",
    "list_model_yamls",
    "measure",
    "model_yaml",
    "offline_train_args",
    "register",
    "yaml_names",
]
