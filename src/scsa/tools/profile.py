"""The complexity report: parameters, FLOPs, throughput, train step time and memory per attention block.

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
Neurocomputing 2025, https://arxiv.org/abs/2407.05128 — compares attention blocks on the same backbone
by their parameters, FLOPs and throughput. This module measures those numbers for any block of the zoo:

* **Params**: every parameter of the model, shared ones once.
* **FLOPs**: the papers' convention, i.e. multiply-accumulates (MACs) of convolutions, linear layers and
  matrix products, per image. ``torch.utils.flop_counter.FlopCounterMode`` counts them on fake tensors
  (it reports 2 FLOPs per MAC, so we halve its total); nothing is hand-written per layer. Element-wise
  work (norms, activations, pooling, gates) is not counted: it is memory-bound and shows up in
  throughput instead (fvcore-style counters add a few small norm and pooling terms).
* **Throughput**: as the released code measures it: eval mode, no grad, one random batch
  (64×3×224×224 by default), 50 warm-up passes, then 30 timed passes; images per second, with CUDA
  synchronised around the timer.
* **Train step**: forward, cross-entropy on random labels, backward, SGD step; mean time and peak memory
  (see :func:`measure_train_step` for what "peak memory" means on CPU).

One file on purpose (past the usual ~300 lines): the measurements, the report over the zoo and its writers
form one public API that ``scsa profile`` and ``scsa compare`` import together.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from scsa._compat import fake_tensor_mode
from scsa.attention._layers import check_int
from scsa.io import write_csv, write_json, write_text

__all__ = [
    "check_report_path",
    "count_flops",
    "count_params",
    "format_markdown",
    "measure_throughput",
    "measure_train_step",
    "profile_attentions",
    "resolve_attentions",
    "write_report",
]

BASELINE = "none"
REPORT_SUFFIXES = (".md", ".csv", ".json")


# ----------------------------------------------------------------------------------------------
# helpers


def _resolve_device(device: str | torch.device) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={str(device)!r} was requested but CUDA is not available")
        if dev.index is None:  # "cuda" and "cuda:0" must compare equal, or models get copied for nothing
            dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def _sync(device: torch.device) -> None:
    # CUDA kernels run asynchronously; without this the timer would measure only the launches.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _float_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of the model's first floating-point tensor (CPU float32 for an empty model)."""
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode inside the block; every submodule's own flag restored after (not one flag for all)."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def _placed(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """``model`` on ``device`` (and channels-last): a copy when it must move, so the caller's stays put."""
    here, _ = _float_dtype(model)
    if here == device and not channels_last:
        return model
    moved = copy.deepcopy(model).to(device)
    return moved.to(memory_format=torch.channels_last) if channels_last else moved


def _logits(out: Any) -> torch.Tensor:
    # Some models return (logits, aux); the first tensor is the one a classifier trains on.
    return out[0] if isinstance(out, (tuple, list)) else out


# ----------------------------------------------------------------------------------------------
# single-model measurements


def count_params(model: nn.Module) -> int:
    """Number of parameters of ``model`` (trainable or not; a parameter shared by two modules counts once)."""
    return sum(p.numel() for p in model.parameters())


def _flop_total(model: nn.Module, size: tuple[int, ...], shapes_only: bool) -> int:
    device, dtype = _float_dtype(model)
    with _eval_mode(model), torch.no_grad():
        if shapes_only:
            # Real parameters are turned into fake ones on first use; nothing is computed or written.
            with fake_tensor_mode(allow_non_fake_inputs=True):
                x = torch.empty(size, device=device, dtype=dtype)
                with FlopCounterMode(display=False) as counter:
                    model(x)
        else:
            x = torch.randn(size, device=device, dtype=dtype)
            with FlopCounterMode(display=False) as counter:
                model(x)
    return counter.get_total_flops()


def count_flops(model: nn.Module, input_size: Sequence[int] = (1, 3, 224, 224)) -> int:
    """Multiply-accumulates (MACs) of one forward pass, per image, in eval mode under ``no_grad``.

    This is the papers' "FLOPs": MACs of convolutions, linear layers and matrix products (bias adds and
    element-wise work are not counted). ``torch.utils.flop_counter.FlopCounterMode`` counts 2 FLOPs per
    MAC, so its total is halved, then divided by the batch ``input_size[0]``.

    The pass runs on fake tensors (``FakeTensorMode``: shapes only, no arithmetic, no memory), which
    also makes every block run its readable definition: :class:`scsa.SCSA`'s fast path, which pools by
    matrix products, takes over only on real CPU/CUDA tensors and would count MACs of its own algebra
    rather than of the block the paper defines. A model that cannot run on fake tensors (data-dependent
    Python control flow, say) is counted on a real random input instead, with a warning. The model's
    train/eval flags are restored after.
    """
    size = tuple(input_size)
    if len(size) < 2:
        raise ValueError(f"input_size must be (batch, channels, ...), got input_size={input_size!r}")
    for i, s in enumerate(size):
        check_int(f"input_size[{i}]", s, 1)
    try:
        total = _flop_total(model, size, shapes_only=True)
    except (RuntimeError, NotImplementedError) as e:  # fake-tensor errors derive from RuntimeError
        warnings.warn(
            f"count_flops: the shapes-only pass failed ({type(e).__name__}: {e}); counting on a real "
            "forward pass, where a fast path (SCSA's) counts the MACs of its own algebra",
            stacklevel=2,
        )
        total = _flop_total(model, size, shapes_only=False)
    return total // (2 * size[0])


def measure_throughput(
    model: nn.Module,
    batch_size: int = 64,
    image_size: int = 224,
    warmup: int = 50,
    iters: int = 30,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    *,
    in_chans: int = 3,
) -> float:
    """Eval throughput in images per second, measured as the released code does.

    Eval mode, no grad, one random ``(batch_size, in_chans, image_size, image_size)`` batch, ``warmup``
    untimed passes, then ``iters`` timed passes: ``iters * batch_size / seconds``. On CUDA the device is
    synchronised before starting and after stopping the timer. When ``model`` must move to ``device``
    (or to channels-last) a copy moves; the caller's model and its train/eval flags are left as they were.
    """
    check_int("batch_size", batch_size, 1)
    check_int("image_size", image_size, 1)
    check_int("warmup", warmup, 0)
    check_int("iters", iters, 1)
    dev = _resolve_device(device)
    net = _placed(model, dev, channels_last)
    _, dtype = _float_dtype(net)
    x = torch.randn(batch_size, in_chans, image_size, image_size, device=dev, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with _eval_mode(net), torch.no_grad():
        for _ in range(warmup):
            net(x)
        _sync(dev)
        start = time.perf_counter()
        for _ in range(iters):
            net(x)
        _sync(dev)
        elapsed = time.perf_counter() - start
    return iters * batch_size / elapsed


class _StorageBytes:
    """Bytes of distinct storages, so a tensor saved by two ops (or a view of it) counts once.

    Keyed by address, so only tensors alive at the same time may go into one instance (a freed
    address can be reused). Storages in ``skip`` (the parameters, counted elsewhere) are ignored.
    """

    def __init__(self, skip: set[int] | None = None) -> None:
        self.sizes: dict[int, int] = {}
        self.skip = skip or set()

    def add(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        if storage.data_ptr() != 0 and storage.data_ptr() not in self.skip:
            self.sizes[storage.data_ptr()] = storage.nbytes()

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        self.add(t)
        return t

    @property
    def total(self) -> int:
        return sum(self.sizes.values())


def measure_train_step(
    model: nn.Module,
    batch_size: int = 32,
    image_size: int = 224,
    steps: int = 10,
    device: str | torch.device = "cpu",
    *,
    warmup: int = 2,
    in_chans: int = 3,
    channels_last: bool = False,
) -> dict[str, float | int | str]:
    """Mean time of one training step and the step's peak memory, on a copy of ``model``.

    A step is: zero grads, forward on a random batch, cross-entropy against random labels, backward,
    SGD (momentum 0.9, as in the paper's recipe; a tiny lr so random labels cannot blow weights up).
    ``warmup`` untimed steps, then ``steps`` timed ones. The copy keeps ``model``'s weights and batch-norm
    statistics unchanged.

    Returns ``{"step_time_s", "peak_memory_bytes", "memory_method"}``. What ``peak_memory_bytes`` is:

    * CUDA (``memory_method="cuda_max_memory_allocated"``): ``torch.cuda.max_memory_allocated`` over the
      timed steps minus what was allocated when the call began: a true peak of the live tensors this
      measurement added (the model's copy, grads, optimizer state, activations, temporaries).
    * Elsewhere (``memory_method="estimate_saved_tensors"``): an *estimate*, not a measured peak. One extra
      untimed step records, through ``torch.autograd.graph.saved_tensors_hooks``, every tensor autograd
      saves for backward; the result is the bytes of the distinct storages of those saved activations
      plus parameters, buffers, gradients and optimizer state. It leaves out temporaries and allocator
      overhead, and counts all gradients and all saved activations together although backward frees the
      latter as it makes the former; it is meant for comparing blocks, not for sizing a machine.
    """
    check_int("batch_size", batch_size, 1)
    check_int("image_size", image_size, 1)
    check_int("steps", steps, 1)
    check_int("warmup", warmup, 0)
    dev = _resolve_device(device)
    before = torch.cuda.memory_allocated(dev) if dev.type == "cuda" else 0
    # Always a copy: the steps change weights and batch-norm statistics.
    net = copy.deepcopy(model).to(dev)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.train()
    _, dtype = _float_dtype(net)
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise ValueError("measure_train_step needs a model with trainable parameters")
    opt = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    x = torch.randn(batch_size, in_chans, image_size, image_size, device=dev, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    target: list[torch.Tensor] = []

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out = _logits(net(x))
        if out.dim() == 2:
            if not target:
                target.append(torch.randint(0, out.shape[1], (batch_size,), device=dev))
            loss = F.cross_entropy(out.float(), target[0])
        else:  # not a classifier: any scalar that reaches every output trains the same graph
            loss = out.float().square().mean()
        loss.backward()
        opt.step()

    if dev.type == "cuda":
        for _ in range(warmup):
            step()
        _sync(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(dev)
        elapsed = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated(dev) - before
        method = "cuda_max_memory_allocated"
    else:
        # Untimed, because the hooks slow the forward down. Saved activations (alive together at the
        # end of the forward) and the model's state (alive together after the step) are counted apart.
        model_state = _StorageBytes()
        saved = _StorageBytes(skip={p.untyped_storage().data_ptr() for p in net.parameters()})
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
            step()
        for p in params:
            model_state.add(p)
            if p.grad is not None:
                model_state.add(p.grad)
        for buf in net.buffers():
            model_state.add(buf)
        for state in opt.state.values():
            for v in state.values():
                if torch.is_tensor(v):
                    model_state.add(v)
        peak = saved.total + model_state.total
        method = "estimate_saved_tensors"
        for _ in range(warmup):
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        elapsed = time.perf_counter() - start
    return {"step_time_s": elapsed / steps, "peak_memory_bytes": int(peak), "memory_method": method}


# ----------------------------------------------------------------------------------------------
# the report over the zoo


def resolve_attentions(attentions: str | Sequence[str]) -> list[str]:
    """Attention names to profile: ``"all"``, a comma list (``"se,scsa"``) or a sequence of names.

    The plain backbone (``"none"``) always comes first, added if missing, because every delta is taken
    against it. Unknown names raise ``ValueError`` listing the known ones.
    """
    from scsa.attention import list_attentions

    known = list_attentions()
    if isinstance(attentions, str):
        if attentions.strip().lower() == "all":
            names = list(known)
        else:
            names = [a.strip() for a in attentions.split(",") if a.strip()]
    else:
        names = [str(a).strip() for a in attentions]
    names = [a.lower() for a in names]
    unknown = [a for a in names if a not in known]
    if unknown:
        raise ValueError(
            f"unknown attention(s) {', '.join(repr(a) for a in unknown)}; "
            f"known: {', '.join(known)} (or 'all')"
        )
    ordered = [BASELINE] + [a for a in dict.fromkeys(names) if a != BASELINE]
    return ordered


def _pct(value: float, base: float) -> float:
    return 100.0 * (value - base) / base if base else math.nan


def profile_attentions(
    model: str | Callable[[str], nn.Module] = "resnet50",
    attentions: str | Sequence[str] = "all",
    image_size: int = 224,
    batch_size: int = 64,
    num_classes: int = 1000,
    stem: str = "imagenet",
    measure_speed: bool = True,
    progress: bool = True,
    *,
    measure_train: bool = False,
    warmup: int = 50,
    iters: int = 30,
    train_steps: int = 5,
    train_warmup: int = 2,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    in_chans: int = 3,
    attention_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One row per attention block on the same backbone: absolute cost and the change vs the plain backbone.

    Args:
        model: a name for :func:`scsa.models.create_model` (``"resnet50"``, ``"mobilenet_v2"``, ...), or a
            callable that takes an attention name and returns the model to profile.
        attentions: ``"all"`` (every registered block), a comma list, or a sequence of names; ``"none"``
            is always measured first as the reference.
        image_size, batch_size: input of the FLOP count (one image), the throughput and the train step.
        num_classes, stem, in_chans: passed to ``create_model`` when ``model`` is a name.
        measure_speed: time eval throughput (``warmup`` + ``iters`` passes, see :func:`measure_throughput`).
        progress: show a tqdm bar on stderr.
        measure_train: also time ``train_steps`` training steps (after ``train_warmup`` untimed ones)
            and report peak memory (see :func:`measure_train_step`).
        device, channels_last: where and how speed and train steps run (the FLOP count runs on CPU).
        attention_kwargs: per-block constructor options, e.g. ``{"scsa": {"head_num": 2}}``.
        model_kwargs: more ``create_model`` options, e.g. ``{"attention_position": "post"}``.

    Returns:
        Rows (dicts) with ``model, attention, stem, image_size, params, params_delta, flops, flops_delta``
        (FLOPs are MACs per image), and with speed ``batch_size, device, threads, throughput,
        throughput_delta_pct``, and with train ``train_step_s, train_step_delta_pct, peak_memory_bytes,
        peak_memory_delta, memory_method``. Deltas are row minus the ``"none"`` row (percent where named).
    """
    from tqdm.auto import tqdm

    names = resolve_attentions(attentions)
    check_int("image_size", image_size, 1)
    check_int("batch_size", batch_size, 1)
    check_int("in_chans", in_chans, 1)
    dev = _resolve_device(device)
    per_block = dict(attention_kwargs or {})
    extra = sorted(set(per_block) - set(names))
    if extra:
        raise ValueError(f"attention_kwargs names blocks that are not profiled: {extra}; profiled: {names}")

    if isinstance(model, str):
        from scsa.models import create_model

        model_name = model

        def build(att: str) -> nn.Module:
            kw = per_block.get(att)
            return create_model(
                model_name,
                num_classes=num_classes,
                attention=att,
                attention_kwargs=dict(kw) if kw else None,
                in_chans=in_chans,
                stem=stem,
                **dict(model_kwargs or {}),
            )
    elif callable(model) and not model_kwargs:
        model_name = getattr(model, "__name__", type(model).__name__)
        build = model
    else:
        raise ValueError(
            f"model must be a model name or a callable(attention) -> nn.Module (model_kwargs only go with "
            f"a name), got model={model!r}, model_kwargs={model_kwargs!r}"
        )

    def checked_build(att: str) -> nn.Module:
        try:
            return build(att)
        except ValueError as e:  # say which of a long list failed, not only why
            raise ValueError(f"cannot build {model_name} with attention {att!r}: {e}") from e

    timed = measure_speed or measure_train
    bar = tqdm(
        total=len(names) * (2 if timed else 1),
        desc=f"profile {model_name}",
        unit="step",
        disable=not progress,
    )
    # Pass 1 builds every model and counts it, cheap next to timing, so a block that cannot be built
    # fails before the minutes of timing. Pass 2 rebuilds each model to time it (keeping 16 models alive
    # instead would cost gigabytes for the large backbones).
    rows: list[dict[str, Any]] = []
    for att in names:
        bar.set_postfix_str(f"count {att}")
        net = checked_build(att)
        rows.append(
            {
                "model": model_name,
                "attention": att,
                "stem": stem,
                "image_size": image_size,
                "params": count_params(net),
                "flops": count_flops(net, (1, in_chans, image_size, image_size)),
            }
        )
        bar.update()
    for row in rows if timed else ():
        bar.set_postfix_str(f"time {row['attention']}")
        net = checked_build(row["attention"])
        row.update(batch_size=batch_size, device=str(dev))
        if measure_speed:
            row["threads"] = torch.get_num_threads() if dev.type == "cpu" else None
            row["throughput"] = measure_throughput(
                net, batch_size, image_size, warmup, iters, dev, channels_last, in_chans=in_chans
            )
        if measure_train:
            train = measure_train_step(
                net,
                batch_size,
                image_size,
                train_steps,
                dev,
                warmup=train_warmup,
                in_chans=in_chans,
                channels_last=channels_last,
            )
            row.update(
                train_step_s=train["step_time_s"],
                peak_memory_bytes=train["peak_memory_bytes"],
                memory_method=train["memory_method"],
            )
        del net
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        bar.update()
    bar.close()

    base = rows[0]
    for row in rows:
        row["params_delta"] = row["params"] - base["params"]
        row["flops_delta"] = row["flops"] - base["flops"]
        if measure_speed:
            row["throughput_delta_pct"] = _pct(row["throughput"], base["throughput"])
        if measure_train:
            row["train_step_delta_pct"] = _pct(row["train_step_s"], base["train_step_s"])
            row["peak_memory_delta"] = row["peak_memory_bytes"] - base["peak_memory_bytes"]
    return rows


# ----------------------------------------------------------------------------------------------
# output

# (row key, markdown header, cell format); deltas are columns of their own.
_COLUMNS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("model", "Model", str),
    ("attention", "Attention", str),
    ("params", "Params (M)", lambda v: f"{v / 1e6:.3f}"),
    ("params_delta", "ΔParams (K)", lambda v: f"{v / 1e3:+.1f}"),
    ("flops", "FLOPs (G)", lambda v: f"{v / 1e9:.3f}"),
    ("flops_delta", "ΔFLOPs (M)", lambda v: f"{v / 1e6:+.2f}"),
    ("throughput", "Throughput (img/s)", lambda v: f"{v:.1f}"),
    ("throughput_delta_pct", "ΔThroughput", lambda v: f"{v:+.1f}%"),
    ("train_step_s", "Train step (ms)", lambda v: f"{v * 1e3:.1f}"),
    ("train_step_delta_pct", "ΔStep", lambda v: f"{v:+.1f}%"),
    ("peak_memory_bytes", "Peak mem (MiB)", lambda v: f"{v / 2**20:.1f}"),
    ("peak_memory_delta", "ΔMem (MiB)", lambda v: f"{v / 2**20:+.1f}"),
]


def format_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table of :func:`profile_attentions` rows, with a note on how the numbers were measured.

    Columns appear only when some row has them; the reference row (``"none"``) shows "—" for its deltas.
    """
    if not rows:
        raise ValueError("format_markdown needs at least one row")
    cols = [c for c in _COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    lines = ["| " + " | ".join(h for _, h, _ in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        cells = []
        for key, _, fmt in cols:
            v = r.get(key)
            is_ref_delta = key.endswith(("_delta", "_delta_pct")) and r.get("attention") == BASELINE
            cells.append("—" if v is None or is_ref_delta else fmt(v))
        lines.append("| " + " | ".join(cells) + " |")
    first = rows[0]
    note = (
        f"FLOPs: multiply-accumulates per {first.get('image_size', '?')}×{first.get('image_size', '?')} "
        f"image (the papers' convention); stem {first.get('stem', '?')}."
    )
    if first.get("device") is not None:
        threads = f", {first['threads']} threads" if first.get("threads") else ""
        note += f" Speed: batch {first.get('batch_size')}, {first['device']}{threads}"
        if first.get("throughput") is not None:
            note += ", eval, no grad"
        note += "."
    if first.get("memory_method") == "estimate_saved_tensors":
        note += " Peak mem: estimate (params + grads + optimizer state + tensors saved for backward)."
    return "\n".join(lines) + "\n\n" + note + "\n"


def check_report_path(path: str | Path) -> Path:
    """``path`` as a Path if its suffix is one :func:`write_report` knows, else ``ValueError``."""
    path = Path(path)
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise ValueError(f"report path must end in one of {REPORT_SUFFIXES}, got {str(path)!r}")
    return path


def write_report(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write rows to ``path`` as markdown (``.md``), CSV (``.csv``) or JSON (``.json``), chosen by suffix."""
    path = check_report_path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return write_csv(path, rows)
    if suffix == ".json":
        return write_json(path, list(rows))
    return write_text(path, format_markdown(rows))
