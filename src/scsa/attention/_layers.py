"""Small helpers shared by the zoo's blocks: layer specs by name, argument checks, input checks.

Blocks take ``act_layer`` / ``gate_layer`` / ``norm_layer`` as a name (``"relu"``, ``"batchnorm"``), a
class or any callable, or ``None`` (identity), as timm's blocks do. A norm class is called as
``cls(num_channels, device=..., dtype=...)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.fx import Proxy  # imported once: attribute access through torch.fx costs ~1.5 us a call

LayerSpec = str | Callable[..., nn.Module] | None


class GroupNorm1(nn.GroupNorm):
    """GroupNorm with a single group: normalises each sample over all its channels (and positions).

    On a pooled (B, C, 1, 1) map this is a per-sample LayerNorm over C, which, unlike BatchNorm,
    works for batch 1 in training.
    """

    def __init__(
        self,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(1, num_channels, eps=eps, affine=affine, device=device, dtype=dtype)


_ACTS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hardswish": nn.Hardswish,
    "hard_swish": nn.Hardswish,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "hardsigmoid": nn.Hardsigmoid,
    "hard_sigmoid": nn.Hardsigmoid,
    "identity": nn.Identity,
}

_NORMS: dict[str, Callable[..., nn.Module]] = {
    "batchnorm": nn.BatchNorm2d,
    "bn": nn.BatchNorm2d,
    "groupnorm": GroupNorm1,
    "gn": GroupNorm1,
}


def create_act(spec: LayerSpec, arg_name: str = "act_layer") -> nn.Module:
    """An activation / gate module from a name, a class or callable, or ``None`` (identity)."""
    if spec is None:
        return nn.Identity()
    if isinstance(spec, str):
        key = spec.lower()
        if key not in _ACTS:
            raise ValueError(f"{arg_name} must be one of {sorted(_ACTS)} or a class, got {spec!r}")
        return _ACTS[key]()
    if isinstance(spec, nn.Module):
        raise ValueError(f"{arg_name} must be a name or a class, not a module instance, got {spec!r}")
    if not callable(spec):
        raise ValueError(f"{arg_name} must be a name, a class or None, got {spec!r}")
    return spec()


def create_norm(
    spec: LayerSpec,
    num_channels: int,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
    arg_name: str = "norm_layer",
) -> nn.Module:
    """A norm module for ``num_channels`` channels; ``None`` gives identity."""
    if spec is None:
        return nn.Identity()
    if isinstance(spec, str):
        key = spec.lower()
        if key not in _NORMS:
            raise ValueError(f"{arg_name} must be one of {sorted(_NORMS)}, a class or None, got {spec!r}")
        spec = _NORMS[key]
    if isinstance(spec, nn.Module) or not callable(spec):
        raise ValueError(f"{arg_name} must be a name, a class or None, got {spec!r}")
    return spec(num_channels, device=device, dtype=dtype)


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` must be an int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {name}={value!r}")
    return value


def check_odd(name: str, value: object, minimum: int = 1) -> int:
    """``value`` must be an odd int >= ``minimum`` (so that padding k // 2 keeps the length)."""
    check_int(name, value, minimum)
    if value % 2 == 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be odd (same-size padding k // 2), got {name}={value!r}")
    return value  # type: ignore[return-value]


def check_positive(name: str, value: object) -> float:
    """``value`` must be a real number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {name}={value!r}")
    return float(value)


def check_open_unit(name: str, value: object) -> float:
    """``value`` must be a real number strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number in (0, 1), got {name}={value!r}")
    return float(value)


def check_divisible(channels: int, divisor: int, rule: str) -> None:
    """``channels`` must be a multiple of ``divisor``; ``rule`` says where the divisor comes from."""
    if channels % divisor != 0:
        raise ValueError(f"channels must be divisible by {rule}, got channels={channels}")


def fit_groups(name: str, value: object, paper: int, divides: int, rule: str) -> int:
    """Resolve a group-like knob that must divide ``divides`` (a number derived from the channels).

    ``value=None`` gives the paper's value ``paper`` when it divides ``divides``, else the largest
    divisor below it, so that a block builds at every width of the paper's backbones (and of the
    torchvision / timm models it is inserted into). An explicit ``value`` that does not divide is a
    ValueError naming it and ``rule``. The paper's value wins whenever it fits, so blocks built at
    such widths are the same as before the fallback existed.
    """
    if value is None:
        return max(g for g in range(1, paper + 1) if divides % g == 0)
    check_int(name, value)
    if divides % value != 0:  # type: ignore[operator]
        raise ValueError(
            f"{name}={value} does not fit: {rule}; pass {name}=None for the largest value that does"
        )
    return value  # type: ignore[return-value]


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype of the small gate path: float32 for half inputs, else the input's own.

    Under ``torch.fx`` symbolic tracing, one leaf call in the graph (the dtype is not known there)."""
    if not torch.jit.is_scripting():  # noqa: SIM102  (TorchScript skips only this if's body)
        if isinstance(x, Proxy):
            return x.tracer.create_proxy("call_function", compute_dtype, (x,), {})  # type: ignore[return-value]
    if x.dtype == torch.float16 or x.dtype == torch.bfloat16:
        return torch.float32
    return x.dtype


def size_at_least(n: int, minimum: int) -> int:
    """``max(n, minimum)`` of a size that stays a graph value under capture: a leaf call under
    ``torch.fx`` symbolic tracing, ``torch.clamp`` of the 0-dim size tensor under ``torch.jit.trace``
    (a Python ``max`` would freeze the example's size into the trace)."""
    if not torch.jit.is_scripting():
        if isinstance(n, Proxy):
            return n.tracer.create_proxy("call_function", size_at_least, (n, minimum), {})  # type: ignore[return-value]
        if isinstance(n, torch.Tensor):
            return torch.clamp(n, min=minimum)  # type: ignore[return-value]
    return max(n, minimum)


def check_input(x: torch.Tensor, channels: int, block: str) -> None:
    """Fail with a readable message on a wrong input shape (string concatenation keeps it scriptable).

    Under ``torch.fx`` symbolic tracing the check becomes one leaf call in the graph (a branch on a
    proxy cannot be traced), so a traced module still raises the same ValueError on a wrong input.
    """
    if not torch.jit.is_scripting():  # noqa: SIM102  (TorchScript skips only this if's body)
        if isinstance(x, Proxy):
            x.tracer.create_proxy("call_function", _check_input_call, (x, channels, block), {})
            return
    if x.dim() != 4 or x.shape[1] != channels:  # inline, not a call: this runs on every forward
        _check_input(x, channels, block)


def _check_input(x: torch.Tensor, channels: int, block: str) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            block + " expects input of shape (B, " + str(channels) + ", H, W), got " + str(list(x.shape))
        )


@torch.fx.node.has_side_effect  # kept by dead-code elimination (create_feature_extractor runs one)
def _check_input_call(x: torch.Tensor, channels: int, block: str) -> None:
    """:func:`check_input` as the FX graph calls it."""
    _check_input(x, channels, block)
