"""``capture(model)``: what every SCSA block of a model computed in its last forward, by block name.

SCSA (Si et al., https://arxiv.org/abs/2407.05128) multiplies its input by two spatial gates and a
channel gate. The block's fast path never materialises them, so they are recomputed here from the
block's input, in a forward pre-hook, with the block's own public pieces (``smsa_gates``,
``pcsa_gate``, ``down_sample``, its norm and q/k/v parameters), and checked against the block's
actual output in a forward hook. No monkeypatching: outside the ``with`` no hook is installed (the
model runs at its usual speed), and inside it the block's own forward still makes the output, so
the model's outputs are bit-identical with and without capture.

Recorded per block (B batch, C channels, H×W the block's map, in the block's compute dtype):

==================  ==========================  ================================================
key                 shape                       meaning
==================  ==========================  ================================================
``a_h``             (B, C, H, 1)                SMSA's gate along the height
``a_w``             (B, C, 1, W)                SMSA's gate along the width
``spatial``         (B, H, W)                   channel mean of ``a_h * a_w`` (what a heat map shows)
``channel_gate``    (B, C, 1, 1)                PCSA's gate
``attention``       (B, heads, C/heads, C/heads)  PCSA's channel-to-channel softmax (``attention=True``)
==================  ==========================  ================================================

SMSA alone records ``a_h``, ``a_w``, ``spatial``; PCSA alone ``channel_gate`` (and ``attention``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scsa.attention import PCSA, SCSA, SMSA

__all__ = ["CaptureMismatchError", "capture", "channel_attention"]


class CaptureMismatchError(RuntimeError):
    """The gates recomputed from a block's input do not reproduce the block's output."""


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    # SCSA runs its gate path in float32 for half inputs (see scsa.attention.scsa)
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def channel_attention(block: nn.Module, x_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PCSA's C×C attention (B, heads, C/heads, C/heads) and the gate (B, C, 1, 1) it leads to.

    The steps of ``pcsa_gate`` in :mod:`scsa.attention.scsa`, keeping the matrix that it does not
    return; :func:`capture` checks the gate against the block's own ``pcsa_gate``."""
    dtype = _compute_dtype(x_s)
    b, c = x_s.shape[0], x_s.shape[1]
    y = block.down_sample(x_s).to(dtype)  # (b, c, h', w')
    norm = block.norm
    w = norm.weight.to(dtype) if norm.weight is not None else None
    bias = norm.bias.to(dtype) if norm.bias is not None else None
    y = torch.group_norm(y, 1, w, bias, norm.eps, False)
    n = y.shape[2] * y.shape[3]

    def proj(conv: nn.Conv2d) -> torch.Tensor:
        cb = conv.bias.to(dtype) if conv.bias is not None else None
        out = F.conv2d(y, conv.weight.to(dtype), cb, groups=c)
        return out.reshape(b, block.head_num, block.head_dim, n)  # (b, heads, c/heads, n)

    q, k, v = proj(block.q), proj(block.k), proj(block.v)
    attn = (q @ k.transpose(-2, -1)) * block.scaler  # (b, heads, c/heads, c/heads)
    attn = attn.to(torch.promote_types(attn.dtype, torch.float32)).softmax(dim=-1)
    attn = block.attn_drop(attn.to(v.dtype))
    g = (attn @ v).reshape(b, c, n).mean(dim=2).reshape(b, c, 1, 1).to(dtype)
    gate = g.softmax(dim=1) if block.ca_softmax else g.sigmoid()
    return attn, gate


def _tolerance(dtype: torch.dtype) -> tuple[float, float]:
    # the fast path sums in another order than the readable definition; half inputs round on output
    if dtype in (torch.float16, torch.bfloat16):
        return 2e-2, 2e-2
    if dtype == torch.float64:
        return 1e-9, 1e-9
    return 1e-4, 1e-5


def _check(name: str, what: str, got: torch.Tensor, want: torch.Tensor) -> None:
    rtol, atol = _tolerance(got.dtype)
    want = want.to(got.dtype)
    if not torch.allclose(got, want, rtol=rtol, atol=atol * max(1.0, float(want.abs().max()))):
        err = float((got - want).abs().max())
        raise CaptureMismatchError(
            f"block {name!r}: the recomputed {what} differs from the block's by up to {err:.3g} "
            f"(rtol={rtol}, atol={atol}); its forward no longer matches the readable definition"
        )


class _Recorder:
    def __init__(
        self, name: str, block: nn.Module, store: dict[str, dict[str, torch.Tensor]], attention: bool
    ):
        self.name, self.block, self.store, self.attention = name, block, store, attention
        self.expected: torch.Tensor | None = None

    def pre(self, _m: nn.Module, args: tuple[Any, ...]) -> None:
        # before the forward: an inplace block writes its output over its input
        x = args[0]
        blk = self.block
        rec: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            if isinstance(blk, (SCSA, SMSA)):
                a_h, a_w = blk.smsa_gates(x)  # (b, c, h), (b, c, w)
                a_h, a_w = a_h.unsqueeze(-1), a_w.unsqueeze(-2)  # (b, c, h, 1), (b, c, 1, w)
                rec["a_h"], rec["a_w"] = a_h, a_w
                rec["spatial"] = (a_h * a_w).mean(dim=1)  # (b, h, w)
                x_s = x * a_h.to(x.dtype) * a_w.to(x.dtype)
            else:
                x_s = x
            if isinstance(blk, (SCSA, PCSA)):
                gate = blk.pcsa_gate(x_s)  # (b, c, 1, 1)
                rec["channel_gate"] = gate
                if self.attention:
                    attn, gate2 = channel_attention(blk, x_s)
                    _check(self.name, "channel gate (from the C×C attention)", gate2, gate)
                    rec["attention"] = attn
                out = x_s * gate.to(x.dtype)
            else:
                out = x_s
        self.expected = out
        self.store[self.name] = {k: v.detach() for k, v in rec.items()}

    def post(self, _m: nn.Module, _args: tuple[Any, ...], output: torch.Tensor) -> None:
        expected, self.expected = self.expected, None
        if expected is not None:
            _check(self.name, "output", output.detach(), expected)


def attention_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, block)`` of every SCSA, SMSA and PCSA module inside ``model``, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (SCSA, SMSA, PCSA))]


@contextlib.contextmanager
def capture(
    model: nn.Module, attention: bool = False, check: bool = True
) -> Iterator[dict[str, dict[str, torch.Tensor]]]:
    """Record the gates of every SCSA block of ``model`` in each forward run inside the ``with``.

    Yields a dict ``block name -> {key: tensor}`` (keys and shapes in the module docstring) that each
    forward refills with that forward's tensors (detached). ``attention=True`` also records PCSA's
    C×C matrix. ``check``: compare the output rebuilt from the recorded gates with the block's own
    (:class:`CaptureMismatchError` if they differ beyond float tolerance). Hooks are removed on exit.

    Example:
        >>> with capture(model) as maps:
        ...     model(x)
        >>> maps["layer4.1.attn"]["channel_gate"].shape  # (B, C, 1, 1)
    """
    blocks = attention_blocks(model)
    if not blocks:
        raise ValueError(f"{type(model).__name__} holds no SCSA, SMSA or PCSA block to capture")
    store: dict[str, dict[str, torch.Tensor]] = {}
    handles = []
    try:
        for name, blk in blocks:
            r = _Recorder(name, blk, store, attention)
            handles.append(blk.register_forward_pre_hook(r.pre))
            if check:
                handles.append(blk.register_forward_hook(r.post))
        yield store
    finally:
        for h in handles:
            h.remove()
