"""Recompute SCSA's output in the backward instead of keeping it: one full-size tensor less per block.

SCSA: Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
https://arxiv.org/abs/2407.05128.

In a residual block ``ReLU → SCSA → conv``, SCSA's own backward keeps the ReLU output x (which the
ReLU keeps anyway) and a few small gates, but the conv after it saves SCSA's output s for its weight
gradient: a second full-size tensor per block, the whole of SCSA's training memory overhead. Under
:func:`attention_outputs_recomputed`, autograd saves such an s as a function that recomputes it bit
for bit from x and the gates (:func:`scsa.attention._scsa_fast.output_recompute`), and everything
else as before. The gradients are the same to the bit; the backward does one more elementwise pass
per block. The backbones in :mod:`scsa.models` use it in every residual block while training.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch.autograd.graph import saved_tensors_hooks

from scsa._compat import is_exporting, saved_tensors_hooks_enabled, top_saved_tensors_hooks
from scsa.attention._scsa_fast import output_recompute

__all__ = ["attention_outputs_recomputed"]

# the hooks in effect, so that ours hand everything they do not replace on to them (checkpointing,
# offloading, a profiler's count); torch versions without it get no hooks of ours
_top_hooks = top_saved_tensors_hooks


class _Recomputed:
    """What is saved in place of a recomputable tensor: the function that recomputes it."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], torch.Tensor]) -> None:
        self.fn = fn


def _hooks_apply() -> bool:
    # eager autograd only: without grad nothing is saved; TorchScript, tracing, torch.compile and
    # torch.export capture the plain path, which has nothing to recompute; torch.func transforms
    # disable saved-tensor hooks (pushing one there raises)
    return (
        torch.is_grad_enabled()
        and not (torch.jit.is_scripting() or torch.jit.is_tracing())
        and not (torch.compiler.is_compiling() or is_exporting())
        and saved_tensors_hooks_enabled()
        and _top_hooks is not None
    )


def _same(t: Any) -> Any:
    return t


def attention_outputs_recomputed() -> contextlib.AbstractContextManager[None]:
    """A context manager under which autograd saves SCSA's outputs as a way to recompute them.

    Every tensor saved for the backward (by the conv after SCSA, typically) that is an unmodified
    training output of SCSA's fast path is saved as a function that recomputes it bit for bit from
    SCSA's input and small gates; every other tensor goes to the saved-tensor hooks that were in
    effect when this was called (or is saved as usual). A no-op without grad, under TorchScript,
    tracing, ``torch.compile``/``torch.export`` and ``torch.func`` transforms. Gradients, double
    backward included, are unchanged::

        with attention_outputs_recomputed():
            y = conv(scsa(x))  # conv keeps a recipe for scsa(x), not the tensor
    """
    if not _hooks_apply():
        return contextlib.nullcontext()
    outer = _top_hooks(False)
    outer_pack, outer_unpack = outer if outer is not None else (_same, _same)

    def pack(t: torch.Tensor) -> Any:
        fn = output_recompute(t)
        return outer_pack(t) if fn is None else _Recomputed(fn)

    def unpack(saved: Any) -> torch.Tensor:
        return saved.fn() if type(saved) is _Recomputed else outer_unpack(saved)

    return saved_tensors_hooks(pack, unpack)
