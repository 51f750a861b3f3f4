"""SCSA as one custom operator for ``torch.compile`` (Si et al., arXiv 2407.05128).

Traced op by op, one SCSA is a few dozen small ops with guards on the map size (the window shrinks
on maps smaller than 7); a ResNet-50 holds 16 of them, and its compile takes several times the plain
backbone's. Registered with ``torch.library`` instead, each block is one node,
``torch.ops.scsa.scsa(x, params, ...)``, whose fake implementation only says "same shape, dtype and
strides as ``x``": the compiler neither traces nor guards the internals, so new map sizes need no
recompilation for SCSA's sake, and the eager fast path (the C module on CPU) runs inside the
compiled graph.

* Forward: the block's eager computation, without autograd, into a fresh tensor.
* Backward: a second operator, ``torch.ops.scsa.scsa_backward``, that recomputes the forward from
  ``x`` and differentiates it: by the fast path's own training forward and backward where the C
  module covers them (no autograd graph is needed there), else as the vector-Jacobian product of
  the readable definition (``torch.func.vjp``: autograd records nothing inside a custom operator).
  Training keeps ``x`` and the parameters for it, nothing else.
* Both compute with autocast off, as the fast path does in eager (the gates in float32 for half
  inputs; on CPU the same numbers as eager under autocast). Attention dropout in training, whose
  mask the backward would have to redraw, is traced as the definition instead.

Parameters travel as a list of tensors in a fixed order (:func:`block_params`), so the compiler sees
which tensors the block reads and AOTAutograd returns their gradients. The operator computes with a
parameter-less copy of the block (built once per configuration, per thread), into which each call
puts the tensors it was given.
"""

from __future__ import annotations

import threading

import torch
from torch import Tensor, nn

from scsa._compat import is_exporting
from scsa.attention import _scsa_fast
from scsa.attention import config as _config
from scsa.attention._scsa_ops import CONV_NAMES

__all__ = ["applies", "block_params", "call", "op_args", "set_block_type"]

_NORMS = ("norm_h", "norm_w", "norm")
# the tensors the operator takes, by (module, parameter): SMSA's, PCSA's norm, q/k/v, conv_d
_SMSA_LAYOUT = tuple((m, p) for m in (*CONV_NAMES, "norm_h", "norm_w") for p in ("weight", "bias"))

_BLOCK_TYPE: type[nn.Module] | None = None
_SHELLS = threading.local()


def set_block_type(cls: type[nn.Module]) -> None:
    """The class whose parameter-less copies compute the operator (:class:`scsa.SCSA`, which
    registers itself when :mod:`scsa.attention.scsa` is imported)."""
    global _BLOCK_TYPE
    _BLOCK_TYPE = cls


def _layout(qkv_bias: bool, recombine: bool) -> tuple[tuple[str, str], ...]:
    names = [*_SMSA_LAYOUT, ("norm", "weight"), ("norm", "bias")]
    for m in ("q", "k", "v"):
        names.append((m, "weight"))
        if qkv_bias:
            names.append((m, "bias"))
    if recombine:
        names.append(("conv_d", "weight"))
    return tuple(names)


def block_params(block: nn.Module) -> list[Tensor] | None:
    """The block's parameters in the operator's order, or None where one of them is not a plain
    parameter of its submodule (a parametrization, a replaced submodule): the compiler then traces
    the definition, which reads them through the modules."""
    modules = block._modules
    qkv_bias = modules["q"]._parameters.get("bias") is not None
    out = []
    for m, p in _layout(qkv_bias, bool(block.recombine)):
        module = modules.get(m)
        t = None if module is None else module._parameters.get(p)
        if t is None:
            return None
        out.append(t)
    return out


def applies(block: nn.Module, x: Tensor) -> bool:
    """Whether ``block(x)`` is captured as the operator: while ``torch.compile`` (not
    ``torch.export``, whose graphs must hold standard ops) traces, with the switch on, for a floating
    input, unless attention dropout draws a mask in training."""
    return (
        _config.COMPILE_OP
        and torch.compiler.is_compiling()
        and not is_exporting()
        and x.is_floating_point()
        and not (block.training and block.attn_drop.p > 0.0)
    )


def op_args(block: nn.Module, x: Tensor, params: list[Tensor]) -> tuple:
    """The arguments of ``torch.ops.scsa.scsa`` that compute ``block(x)``: the input, the parameters
    in the operator's order (:func:`block_params`) and the block's configuration."""
    return (
        x,
        params,
        list(block.group_kernel_sizes),
        block.head_num,
        block.window_size,
        block.down_sample_mode,
        block.sa_softmax,
        block.ca_softmax,
        [block.norm_h.eps, block.norm_w.eps, block.norm.eps],
    )


def call(block: nn.Module, x: Tensor, params: list[Tensor]) -> Tensor:
    """``block(x)`` as one operator node."""
    return torch.ops.scsa.scsa(*op_args(block, x, params))


# ----------------------------------------------------------------------------------------------
# the operators


def _shell(
    dim: int,
    kernels: list[int],
    head_num: int,
    window: int,
    mode: str,
    qkv_bias: bool,
    sa_softmax: bool,
    ca_softmax: bool,
    eps: list[float],
) -> nn.Module:
    """A parameter-less block of this configuration for this thread (built on the meta device)."""
    key = (dim, tuple(kernels), head_num, window, mode, qkv_bias, sa_softmax, ca_softmax, tuple(eps))
    cache = getattr(_SHELLS, "blocks", None)
    if cache is None:
        cache = _SHELLS.blocks = {}
    shell = cache.get(key)
    if shell is None:
        if _BLOCK_TYPE is None:  # pragma: no cover - scsa.attention imports scsa.attention.scsa
            raise RuntimeError("torch.ops.scsa.scsa: import scsa.attention first")
        shell = _BLOCK_TYPE(
            dim, head_num, window, kernels, qkv_bias, mode, inplace=False, device="meta"
        ).eval()
        shell.sa_softmax, shell.ca_softmax = sa_softmax, ca_softmax
        for name, e in zip(_NORMS, eps):
            shell._modules[name].eps = e
        shell.op_layout = _layout(qkv_bias, shell.recombine)
        shell.op_names = tuple(f"{m}.{p}" for m, p in shell.op_layout)  # as named_parameters names them
        cache[key] = shell
    return shell


def _bind(shell: nn.Module, params: list[Tensor] | tuple[Tensor, ...] | None) -> None:
    """Put ``params`` into the shell's submodules in the operator's order (None: take them out again,
    so the shell holds no tensor between calls)."""
    modules = shell._modules
    for i, (m, p) in enumerate(shell.op_layout):
        modules[m]._parameters[p] = None if params is None else params[i]


def _configured(x: Tensor, params: list[Tensor], *config) -> nn.Module:
    kernels, head_num, window, mode, sa_softmax, ca_softmax, eps = config
    recombine = window != -1 and mode == "recombination"
    qkv_bias = len(params) == len(_layout(True, recombine))
    return _shell(x.shape[1], kernels, head_num, window, mode, qkv_bias, sa_softmax, ca_softmax, eps)


def _like(t: Tensor, ref: Tensor) -> Tensor:
    """``t`` with the strides the fake implementation promised (those of ``empty_like(ref)``)."""
    if t.stride() == ref.stride():  # a dense ref: empty_like keeps its strides
        return t
    out = torch.empty_like(ref, dtype=t.dtype)
    return t if out.stride() == t.stride() else out.copy_(t)


@torch.library.custom_op("scsa::scsa", mutates_args=())
def _scsa_op(
    x: Tensor,
    params: list[Tensor],
    group_kernel_sizes: list[int],
    head_num: int,
    window_size: int,
    down_sample_mode: str,
    sa_softmax: bool,
    ca_softmax: bool,
    eps: list[float],
) -> Tensor:
    shell = _configured(
        x, params, group_kernel_sizes, head_num, window_size, down_sample_mode, sa_softmax, ca_softmax, eps
    )
    _bind(shell, params)
    try:
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            out = _scsa_fast.scsa_forward(shell, x) if _scsa_fast.applies(x) else shell.forward_plain(x)
    finally:
        _bind(shell, None)
    return _like(out, x)


@_scsa_op.register_fake
def _scsa_fake(
    x, params, group_kernel_sizes, head_num, window_size, down_sample_mode, sa_softmax, ca_softmax, eps
):
    return torch.empty_like(x)


@torch.library.custom_op("scsa::scsa_backward", mutates_args=())
def _scsa_backward_op(
    grad: Tensor,
    x: Tensor,
    params: list[Tensor],
    group_kernel_sizes: list[int],
    head_num: int,
    window_size: int,
    down_sample_mode: str,
    sa_softmax: bool,
    ca_softmax: bool,
    eps: list[float],
) -> list[Tensor]:
    shell = _configured(
        x, params, group_kernel_sizes, head_num, window_size, down_sample_mode, sa_softmax, ca_softmax, eps
    )
    grad = grad.to(x.dtype)
    leaves = tuple(p.detach().requires_grad_() for p in params)

    def forward(x: Tensor, *params: Tensor) -> Tensor:
        _bind(shell, params)
        return shell.forward_plain(x)

    try:
        # the C module's forward and backward, as in eager training, where they cover the block
        _bind(shell, leaves)
        grads = _scsa_fast.native_vjp(shell, x.detach(), grad, shell.op_names, leaves)
        if grads is None:
            with torch.autocast(x.device.type, enabled=False):
                _, vjp = torch.func.vjp(forward, x, *params)
                grads = vjp(grad)
    finally:
        _bind(shell, None)
    return [_like(g, ref) for g, ref in zip(grads, (x, *params))]


@_scsa_backward_op.register_fake
def _scsa_backward_fake(
    grad, x, params, group_kernel_sizes, head_num, window_size, down_sample_mode, sa_softmax, ca_softmax, eps
):
    return [torch.empty_like(x), *(torch.empty_like(p) for p in params)]


def _setup_context(ctx, inputs, output) -> None:
    x, params, *config = inputs
    ctx.save_for_backward(x, *params)
    ctx.config = config


def _backward(ctx, grad: Tensor):
    x, *params = ctx.saved_tensors
    dx, *dparams = torch.ops.scsa.scsa_backward(grad, x, params, *ctx.config)
    return (dx, dparams, *(None for _ in ctx.config))


_scsa_op.register_autograd(_backward, setup_context=_setup_context)
