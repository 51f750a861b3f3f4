"""The fast path of SCSA (Si et al., arXiv 2407.05128, https://arxiv.org/abs/2407.05128).

:class:`scsa.SCSA` runs this by default (see :func:`use_fast_path`); :mod:`scsa.attention.scsa`
keeps the readable definition, and both are held to the literal oracle in ``tests/oracle.py``.
This file is longer than our usual ~300 lines: training needs a hand-written backward, and each
pass exists twice, as a call into the C module and as PyTorch ops for installs without it.

Same numbers, less work, by exact algebra only:

* Three passes over the (B, C, H, W) map: the axis means; the pooled tokens of
  ``x_s = x * a_h ⊗ a_w`` without forming x_s; the output ``x * (a_h g) ⊗ a_w``. Everything else
  works on tensors of size B·C·(H + W) or smaller.
* SMSA: the four depth-wise kernels, zero-padded to the largest, are one depth-wise Conv1d shared by
  both axes.
* PCSA: ``mean_n(attn @ v) == attn @ mean_n(v)``, so the attention needs one value per channel and
  no C×C matrix is ever kept: the C module (one row of scores at a time) for up to 64 tokens, batched
  matmuls and softmax beyond (SDPA for one token where the C module is absent).
* Training runs one autograd Function that keeps ``x`` (the layer before keeps it anyway), the axis
  means, the pooled tokens and the attention's output, nothing of full size. Its backward reads
  ``x`` and the incoming gradient once for PCSA's sums, ``x`` once more for the pooling's share,
  and writes ``dx = G·(g a_h ⊗ a_w) + (a_h ⊗ a_w)·upsample(dy) + dx_h/W ⊕ dx_w/H`` in a last pass.
  :func:`output_recompute` lets the layer after SCSA keep a recipe for its output instead of it.

The C module (``_native.c``, built by setup.py, optional) does those passes for contiguous
float32/float64 maps with average pooling, and SMSA's and PCSA's small graphs forward and backward;
where it covers the whole forward and the batch has a sample per thread, the forward is one call
that works sample by sample. ``SCSA_NATIVE=0`` turns it off. Without it the same passes run as
PyTorch ops: on large NCHW maps the pooling is ``A_hᵀ · X · A_w`` per channel (batched matmuls);
elsewhere (small maps, max pooling, 'recombination', channels_last or half inputs) x_s is formed
once and reused in place, and the small graphs are differentiated by autograd.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from scsa._compat import (
    functorch_transforms_active,
    global_forward_hooks,
    global_forward_pre_hooks,
    is_exporting,
)
from scsa.attention import config as _config
from scsa.attention._scsa_ops import CONV_NAMES, compute_dtype, group_norm

__all__ = ["applies", "fast_path_reason", "native_vjp", "output_recompute", "path_name", "scsa_forward"]

# Verified on CPU only so far; CUDA keeps the plain path until the fast one is checked on a GPU.
_FAST_DEVICES = ("cpu",)
# Below this side the batched matmuls of the row route work on matrices too small to be efficient.
_ROWS_MIN_SIDE = 16
# Up to this area the two axis means are one GEMM with a constant matrix.
_GEMM_MEANS_MAX_AREA = 256
_PCSA_PREFIXES = ("norm.", "q.", "k.", "v.")
# Up to this many pooled tokens the C module computes the channel attention (see _channel_gate).
_NATIVE_MAX_TOKENS = 64
# Up to this many tokens PCSA's GroupNorm is differentiated as elementwise ops (see _layer_norm_tokens).
_ELEMENTWISE_NORM_MAX_TOKENS = 16
_NATIVE_DTYPES = (torch.float32, torch.float64)


def fast_path_reason(x: torch.Tensor) -> str | None:
    """Why :class:`scsa.SCSA` takes its plain path for ``x``, or ``None`` when the fast one applies.

    The fast path is eager-only: TorchScript, tracing, ``torch.export`` and ``torch.func``
    transforms capture the plain path; ``torch.compile`` captures one custom operator that runs the
    fast path inside the compiled graph (:mod:`scsa.attention._scsa_compile`).
    """
    if not _config.FAST_PATH:
        return "turned off by scsa.attention.set_fast_path(False) or SCSA_FAST_PATH=0"
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return "TorchScript scripting or tracing"
    if torch.compiler.is_compiling() or is_exporting():
        return "torch.compile / torch.export"
    if functorch_transforms_active():
        return "a torch.func transform"
    if type(x) is not torch.Tensor:  # FX proxies, fake tensors, DTensor, ...
        return f"input of type {type(x).__name__}"
    if x.device.type not in _FAST_DEVICES:
        return f"device {x.device.type!r}"
    if not x.is_floating_point():
        return f"dtype {x.dtype}"
    return None


def applies(x: torch.Tensor) -> bool:
    """The chooser: True where :func:`scsa_forward` runs instead of the plain definition."""
    return fast_path_reason(x) is None


def path_name(block: nn.Module, x: torch.Tensor) -> str:
    """Which code computes ``block(x)`` now, in words (see :func:`scsa.attention.describe_path`)."""
    reason = fast_path_reason(x)
    if reason is not None:
        return f"plain definition ({reason})"
    route = _route(block, x)
    if route == "native":
        one_call = (
            x.shape[0] >= torch.get_num_threads()
            and _native_smsa_params(block, x.dtype) is not None
            and _native_pcsa_params(block, x.dtype, _tokens(block, x)) is not None
        )
        return "fast path, C module, " + ("one call" if one_call else "separate passes")
    return "fast path, PyTorch ops, " + ("row matmuls" if route == "rows" else "generic")


def hooks_see(block: nn.Module) -> bool:
    """Whether a forward (pre-)hook registered on ``block`` or on every module (torch's global module
    hooks) can see the block's input, which an in-place output would then overwrite. Four dict
    truthiness tests: nothing measurable on the default path."""
    return bool(
        block._forward_pre_hooks or block._forward_hooks or global_forward_pre_hooks or global_forward_hooks
    )


def scsa_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SCSA's output for ``x`` by the fast path (the caller checked :func:`use_fast_path`)."""
    # dtypes are chosen explicitly below (gates in float32 for half inputs, as on the plain path)
    if torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):
            return _scsa_forward(block, x)
    return _scsa_forward(block, x)


def _scsa_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled():
        names, params = zip(*block.named_parameters())
        if x.requires_grad or any(p.requires_grad for p in params):
            out = _SCSAFunction.apply(x, block, names, *params)
            out.grad_fn.out_version = out._version  # see output_recompute
            return out
    return _forward_no_grad(block, x)


def output_recompute(t: torch.Tensor):
    """A zero-argument function that recomputes ``t`` bit for bit from the block's input and small
    gates, when ``t`` is an unmodified training output of the fast path; else ``None``.

    A layer that saves SCSA's output for its backward (the 1×1 conv after it) can keep this
    function instead of the full-size tensor (:func:`scsa.attention.recompute.attention_outputs_recomputed`).
    """
    fn = t.grad_fn
    if type(fn) is not _SCSAFunction._backward_cls or getattr(fn, "out_version", None) != t._version:
        return None
    return fn.recompute


# ----------------------------------------------------------------------------------------------
# the small gate graphs (tensors of size B·C·(H + W) and B·C·H'·W')


def _merged_kernel(block: nn.Module, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The four depth-wise kernels zero-padded to the largest: one (C, 1, K) kernel and its bias.

    Rebuilt on every call: a cache keyed on ``Tensor._version`` would miss writes through ``.data``."""
    convs = [getattr(block, name) for name in CONV_NAMES]
    big = max(block.group_kernel_sizes)
    weights = [F.pad(c.weight, ((big - k) // 2,) * 2) for c, k in zip(convs, block.group_kernel_sizes)]
    return torch.cat(weights).to(dtype), torch.cat([c.bias for c in convs]).to(dtype)


class _DepthwiseConv1d(torch.autograd.Function):
    """Depth-wise 'same' Conv1d whose weight gradient is K shifted dot products: on CPU cheaper
    than the generic convolution backward for these short, many-channel inputs."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(t, weight)
        return F.conv1d(t, weight, bias, padding=weight.shape[-1] // 2, groups=t.shape[1])

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        t, weight = ctx.saved_tensors
        k, n = weight.shape[-1], t.shape[-1]
        p = k // 2
        dt = (
            F.conv1d(g, weight.flip(-1), None, padding=p, groups=t.shape[1])
            if ctx.needs_input_grad[0]
            else None
        )
        tp = F.pad(t, (p, p))
        dw = torch.stack([(tp[..., j : j + n] * g).sum(dim=(0, 2)) for j in range(k)], dim=1)
        return dt, dw.unsqueeze(1), g.sum(dim=(0, 2))


@functools.lru_cache(maxsize=64)
def _means_matrix(h: int, w: int, gap: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(h·w, h + gap + w): a map's row means, ``gap`` zero columns, its column means (read-only)."""
    with torch.inference_mode(False):  # a cached constant must serve outside inference mode too
        return _fill_means_matrix(h, w, gap, dtype, device)


def _fill_means_matrix(h: int, w: int, gap: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    m = torch.zeros(h * w, h + gap + w, dtype=dtype, device=device)
    i = torch.arange(h * w, device=device)
    m[i, i // w] = 1.0 / w
    m[i, h + gap + i % w] = 1.0 / h
    return m


def _axis_means(block: nn.Module, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """SMSA step 1 in the merged Conv1d's input layout: (b, c, h + p + w), the mean over W, then
    p zeros (exactly the zero padding each axis would see on its own), then the mean over H."""
    b, c, h, w = x.shape
    p = max(block.group_kernel_sizes) // 2
    if x.dtype == dtype and x.is_contiguous() and h * w <= _GEMM_MEANS_MAX_AREA:
        # a small map: one GEMM instead of two reductions over a short axis (and a cat)
        return (x.view(b * c, h * w) @ _means_matrix(h, w, p, x.dtype, x.device)).view(b, c, h + p + w)
    x_h = x.mean(dim=3, dtype=dtype)  # (b, c, h)
    return torch.cat((x_h, x_h.new_zeros(b, c, p), x.mean(dim=2, dtype=dtype)), dim=2)


def _axis_gates(block: nn.Module, t: torch.Tensor, h: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SMSA steps 2-3 for both axes at once: the means t (b, c, h + p + w) -> a_h, a_w."""
    weight, bias = _merged_kernel(block, t.dtype)
    p = weight.shape[-1] // 2
    a = (
        _DepthwiseConv1d.apply(t, weight, bias)
        if torch.is_grad_enabled()
        else F.conv1d(t, weight, bias, padding=p, groups=t.shape[1])
    )
    norm_h, norm_w = block.norm_h, block.norm_w
    a_h = group_norm(a[:, :, :h], 4, norm_h.weight, norm_h.bias, norm_h.eps, a.dtype)
    a_w = group_norm(a[:, :, h + p :], 4, norm_w.weight, norm_w.bias, norm_w.eps, a.dtype)
    if block.sa_softmax:
        return a_h.softmax(dim=2), a_w.softmax(dim=2)
    return a_h.sigmoid(), a_w.sigmoid()


def _times_columns(m: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``m @ cols`` for (…, d, d) and a few columns (…, d, n), computed as ``(colsᵀ @ mᵀ)ᵀ``: on CPU a
    batched matrix times a thin one runs several times faster with the big operand on the right."""
    return (cols.transpose(-2, -1) @ m.transpose(-2, -1)).transpose(-2, -1)


class _SoftmaxAttention(torch.autograd.Function):
    """``softmax(q kᵀ) @ v`` for one value column (the scale is folded into q); the backward
    recomputes the C×C matrix instead of keeping it (256×256 per image at ResNet's third stage)."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        o = _times_columns((q @ k.transpose(-2, -1)).softmax(dim=-1), v)
        ctx.save_for_backward(q, k, v, o)
        return o

    @staticmethod
    def backward(ctx, do: torch.Tensor):
        q, k, v, o = ctx.saved_tensors
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)  # (b, heads, d, d)
        dv = _times_columns(attn.transpose(-2, -1), do)  # attnᵀ do
        # softmax backward of d attn = do vᵀ: attn ⊙ (do vᵀ - rowsum(attn ⊙ do vᵀ)) = attn ⊙ do ⊙ (vᵀ - o)
        dl = attn.mul_(v.transpose(-2, -1) - o).mul_(do)
        dq = (k.transpose(-2, -1) @ dl.transpose(-2, -1)).transpose(-2, -1)  # dl @ k
        dk = (q.transpose(-2, -1) @ dl).transpose(-2, -1)  # dlᵀ @ q
        return dq, dk, dv


class _NativeAttention(torch.autograd.Function):
    """``softmax(q kᵀ) @ v`` for one value column by the C module: no d×d matrix is stored, each row
    of scores lives in a buffer of d values, forward and backward."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        d, n = q.shape[-2], q.shape[-1]
        o = v.new_empty(v.shape)
        _config.NATIVE.attend(
            q.dtype == torch.float64,
            q.data_ptr(),
            k.data_ptr(),
            v.data_ptr(),
            q[..., 0, 0].numel(),
            d,
            n,
            o.data_ptr(),
        )
        ctx.save_for_backward(q, k, v, o)
        return o

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, do: torch.Tensor):
        q, k, v, o = ctx.saved_tensors
        do = do.contiguous()
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        _config.NATIVE.attend_backward(
            q.dtype == torch.float64, q.data_ptr(), k.data_ptr(), v.data_ptr(), o.data_ptr(), do.data_ptr(),
            q[..., 0, 0].numel(), q.shape[-2], q.shape[-1], dq.data_ptr(), dk.data_ptr(), dv.data_ptr(),
        )  # fmt: skip
        return dq, dk, dv


def _depthwise_affine(t: torch.Tensor, conv: nn.Conv2d, heads: int, scale: float = 1.0) -> torch.Tensor:
    """A depth-wise 1×1 conv of (b, heads, d, n) tokens (a per-channel scale and shift), times ``scale``."""
    weight = conv.weight.reshape(heads, -1, 1)
    out = t * (weight * scale if scale != 1.0 else weight).to(t.dtype)
    if conv.bias is not None:
        out = out + (conv.bias.reshape(heads, -1, 1) * scale).to(t.dtype)
    return out


def _layer_norm_tokens(y: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """GroupNorm with one group of (b, c, n) tokens as elementwise ops, for a few tokens per channel:
    there the fused CPU kernel's backward is slow (~0.5 ms at (8, 128, 16)); with many tokens its
    float32 reductions are the more accurate."""
    var, mean = torch.var_mean(y, dim=(1, 2), correction=0, keepdim=True)
    scale = (var + norm.eps).rsqrt()
    return (y - mean) * scale * norm.weight.to(y.dtype).unsqueeze(-1) + norm.bias.to(y.dtype).unsqueeze(-1)


def _pcsa_params(block: nn.Module) -> list[torch.Tensor | None]:
    """norm.weight, norm.bias, then q, k and v's weights and biases (None for absent biases)."""
    modules = block._modules
    return [t for name in _PCSA_MODULES for t in _weight_bias(modules[name])]


def _native_pcsa_params(block: nn.Module, dtype: torch.dtype, n: int) -> tuple[tuple, list] | None:
    """PCSA's parameters as the C module takes them, for n tokens of ``dtype``, and the tensors
    behind them (:func:`_pcsa_params`, whose gradients the C backward returns in that order); None
    where it does not apply: more than _NATIVE_MAX_TOKENS tokens, dropout, parameters not in that dtype."""
    if _config.NATIVE is None or dtype not in _NATIVE_DTYPES or not 1 <= n <= _NATIVE_MAX_TOKENS:
        return None
    if (block.training and block.attn_drop.p > 0.0) or not _plain_params(block, _PCSA_MODULES):
        return None
    nw, nb, qw, qb, kw, kb, vw, vb = params = _pcsa_params(block)
    if any(t is not None and (t.dtype != dtype or not t.is_contiguous()) for t in params):
        return None
    if nw is None or nb is None:  # GroupNorm without affine
        return None
    args = (
        block.head_num, nw.data_ptr(), nb.data_ptr(), block.norm.eps,
        *(0 if t is None else t.data_ptr() for t in (qw, qb, kw, kb, vw, vb)),
        block.scaler, block.ca_softmax,
    )  # fmt: skip
    return args, params


def _native_pcsa_args(block: nn.Module, y: torch.Tensor) -> tuple[tuple, list] | None:
    """The C module's arguments for PCSA's small graph on the contiguous y (b, c, h', w') and the
    parameter tensors, or None where it does not apply (:func:`_native_pcsa_params`)."""
    n = y.shape[2] * y.shape[3]
    native = _native_pcsa_params(block, y.dtype, n)
    if native is None:
        return None
    args, params = native
    return (y.dtype == torch.float64, y.data_ptr(), y.shape[0], y.shape[1], n, args), params


def _native_channel_gate(block: nn.Module, y: torch.Tensor, attn_out: list | None) -> torch.Tensor | None:
    """:func:`_channel_gate` in one C call, without autograd, where the C module applies; else None."""
    if torch.is_grad_enabled():
        return None
    y = y.contiguous()
    native = _native_pcsa_args(block, y)
    if native is None:
        return None
    args, _ = native
    g = y.new_empty(y.shape[0], y.shape[1])
    o = g.new_empty(g.shape) if attn_out is not None else None
    _config.NATIVE.channel_gate(*args, g.data_ptr(), 0 if o is None else o.data_ptr())
    if o is not None:
        attn_out.append(o)
    return g


def _native_channel_gate_backward(
    native: tuple[tuple, list], y: torch.Tensor, o: torch.Tensor, dg: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """The backward of PCSA's small graph from the attention's output o, with the C module's
    arguments and the parameters for the contiguous y (:func:`_native_pcsa_args`): dL/dy and the
    parameters' gradients (None for absent biases)."""
    args, params = native
    o, dg = o.to(y.dtype).contiguous(), dg.to(y.dtype).contiguous()
    dy = torch.empty_like(y)
    per_sample = [y.new_empty(y.shape[0], y.shape[1]) for _ in range(8)]
    _config.NATIVE.channel_gate_backward(
        *args, o.data_ptr(), dg.data_ptr(), dy.data_ptr(), *(t.data_ptr() for t in per_sample)
    )
    # the C module summed the samples into the first row
    return dy, [None if p is None else _first_row(t).view(p.shape) for t, p in zip(per_sample, params)]


def _channel_gate(block: nn.Module, y: torch.Tensor, attn_out: list | None = None) -> torch.Tensor:
    """PCSA steps 6-9 on the pooled tokens y (b, c, h', w') -> the gate (b, c).

    ``attn_out``: a list that receives the attention's output before the gate (b, c) when there is
    no dropout and at most _NATIVE_MAX_TOKENS tokens, for the C module's backward."""
    g = _native_channel_gate(block, y, attn_out)
    if g is not None:
        return g
    b, c = y.shape[0], y.shape[1]
    heads, scale = block.head_num, block.scaler
    n = y.shape[2] * y.shape[3]
    if n <= _ELEMENTWISE_NORM_MAX_TOKENS and b > 0 and torch.is_grad_enabled():
        y = _layer_norm_tokens(y.reshape(b, c, n), block.norm)  # GroupNorm(1, c)
    else:
        y = group_norm(y, 1, block.norm.weight, block.norm.bias, block.norm.eps, y.dtype)
    y = y.reshape(b, heads, c // heads, n)  # (b, heads, d, n): channels are tokens
    v = _depthwise_affine(y.mean(dim=3, keepdim=True), block.v, heads)  # mean_n(attn @ v) = attn @ mean_n(v)
    k = _depthwise_affine(y, block.k, heads)
    drop = block.attn_drop.p if block.training else 0.0
    # measured on 2 CPU cores at ResNet-50's stages: the C module up to 64 tokens (its score rows
    # never leave the cache), batched matmuls and softmax for more; without it SDPA for one token
    if drop > 0.0:
        # the mask is drawn on the (b, heads, d, d) matrix exactly as nn.Dropout draws it on the plain path
        attn = (_depthwise_affine(y, block.q, heads, scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        o = _times_columns(F.dropout(attn, drop), v)
    elif n <= _NATIVE_MAX_TOKENS and _config.NATIVE is not None and y.dtype in _NATIVE_DTYPES:
        o = _NativeAttention.apply(_depthwise_affine(y, block.q, heads, scale), k, v)
    elif n == 1:
        # SDPA's fused CPU kernel takes unit-stride rows only, and a length-1 row keeps whatever
        # stride the elementwise ops gave it, hence flatten + unsqueeze
        q = _depthwise_affine(y, block.q, heads)
        q, k, v = (t.flatten(2).unsqueeze(-1) for t in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v, scale=scale)
    elif torch.is_grad_enabled():
        o = _SoftmaxAttention.apply(_depthwise_affine(y, block.q, heads, scale), k, v)
    else:
        attn = (_depthwise_affine(y, block.q, heads, scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        o = _times_columns(attn, v)
    g = o.reshape(b, c)
    if attn_out is not None and drop == 0.0 and n <= _NATIVE_MAX_TOKENS:
        attn_out.append(g.detach())
    return g.softmax(dim=1) if block.ca_softmax else g.sigmoid()


# ----------------------------------------------------------------------------------------------
# the full-size map


def _native_route(block: nn.Module, x: torch.Tensor) -> bool:
    """Average (or global) pooling of a contiguous float32/float64 map: the C passes of ``_native.c``."""
    return (
        _config.NATIVE is not None
        and (block.window_size == -1 or not (block.max_pool or block.recombine))
        and x.dtype in (torch.float32, torch.float64)
        and x.is_contiguous()
    )


def _route(block: nn.Module, x: torch.Tensor) -> str:
    if _native_route(block, x):
        return "native"
    return "rows" if _rows_route(block, x) else "generic"


def _rows_route(block: nn.Module, x: torch.Tensor) -> bool:
    """Average pooling of a large NCHW float map: pool with matmuls over the rows of each channel."""
    return (
        (block.window_size == -1 or not (block.max_pool or block.recombine))
        and x.dtype in (torch.float32, torch.float64)
        and x.is_contiguous()
        and min(x.shape[2], x.shape[3]) >= _ROWS_MIN_SIDE
    )


def _window(window: int, length: int) -> int:
    return length if window == -1 else min(window, length)


@functools.lru_cache(maxsize=64)
def _windows(length: int, window: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(length, length // k) averaging matrix of the floor-mode windows k (read-only, cached)."""
    k = _window(window, length)
    with torch.inference_mode(False):  # a cached constant must serve outside inference mode too
        rows = torch.arange(length, device=device) // k
        cols = torch.arange(length // k, device=device)
        return (rows[:, None] == cols[None, :]).to(dtype) / k


def _gate_windows(a: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """A gate (b, c, l) times the windows' transpose (l', l): (bc, l', l), row-major (``out=``),
    since bmm is several times slower on a transposed left operand."""
    length, n = e.shape
    bc = a.shape[0] * a.shape[1]
    return torch.mul(a.reshape(bc, 1, length), e.t(), out=a.new_empty(bc, n, length))


def _rows_pool(x: torch.Tensor, a_h: torch.Tensor, a_w: torch.Tensor, window: int) -> torch.Tensor:
    """Average pooling of x * a_h ⊗ a_w without forming it: y = A_hᵀ X A_w per (b, c) -> (b, c, h', w')."""
    b, c, h, w = x.shape
    e_h = _windows(h, window, x.dtype, x.device)  # (h, h')
    e_w = _windows(w, window, x.dtype, x.device)  # (w, w')
    q = torch.bmm(_gate_windows(a_h, e_h), x.view(b * c, h, w))  # (bc, h', w): the map on the right
    y = (q * a_w.reshape(b * c, 1, w)).view(q.shape[0] * q.shape[1], w) @ e_w  # one GEMM, not bc tiny ones
    return y.view(b, c, e_h.shape[1], e_w.shape[1])


def _pool(block: nn.Module, x_s: torch.Tensor) -> torch.Tensor:
    """PCSA step 5 on x_s (b, c, h, w) of either memory format -> y (b, c, h', w')."""
    if block.window_size == -1:
        return x_s.mean(dim=(2, 3), keepdim=True)
    if block.recombine:
        return block.down_sample(x_s)
    kh, kw = _window(block.window_size, x_s.shape[2]), _window(block.window_size, x_s.shape[3])
    if (kh, kw) == x_s.shape[2:] and not block.max_pool:  # one window: a plain mean is faster
        return x_s.mean(dim=(2, 3), keepdim=True)
    if block.max_pool:
        return F.max_pool2d(x_s, (kh, kw), (kh, kw))
    return F.avg_pool2d(x_s, (kh, kw), (kh, kw))


# ----------------------------------------------------------------------------------------------
# the C passes (``_native.c``): contiguous (b·c, h, w) planes, gates as (b·c, l) rows


def _rows_of(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """A gate (b, c, l) with unit stride along l and one stride between planes, and that stride."""
    if t.stride(2) != 1 or t.stride(0) != t.shape[1] * t.stride(1):
        t = t.contiguous()
    return t, t.stride(1)


def _kernel_windows(block: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    return _window(block.window_size, x.shape[2]), _window(block.window_size, x.shape[3])


def _tokens(block: nn.Module, x: torch.Tensor) -> int:
    """PCSA's number of pooled tokens h' w' for the map x."""
    kh, kw = _kernel_windows(block, x)
    return (x.shape[2] // kh) * (x.shape[3] // kw)


def _native_means(x: torch.Tensor, gap: int) -> torch.Tensor:
    """:func:`_axis_means` in one pass over x: (b, c, h + gap + w)."""
    b, c, h, w = x.shape
    means = x.new_empty(b, c, h + gap + w)
    means[:, :, h : h + gap].zero_()
    row = means.shape[2]
    _config.NATIVE.means(
        x.dtype == torch.float64, x.data_ptr(), b * c, h, w,
        means.data_ptr(), row, means[:, :, h + gap :].data_ptr(), row,
    )  # fmt: skip
    return means


def _weight_bias(module: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``module.weight, module.bias``, read from its parameter dict where they are plain parameters
    (nn.Module's attribute lookup costs more, per forward, than the C module's work on ResNet's
    last stage); otherwise by getattr (the C routes take plain parameters only: _plain_params)."""
    params = module._parameters
    if "weight" in params and "bias" in params:
        return params["weight"], params["bias"]
    return module.weight, module.bias


def _plain_params(block: nn.Module, names: tuple[str, ...]) -> bool:
    """Whether the named submodules hold their weight and bias as parameters of their own. The C
    module is handed raw pointers and its backward returns gradients for these tensors, so a
    computed weight (e.g. torch.nn.utils.parametrize) takes the autograd route instead."""
    return all({"weight", "bias"} <= block._modules[name]._parameters.keys() for name in names)


_NORM_MODULES = ("norm_h", "norm_w")  # SMSA's, after its four convolutions (CONV_NAMES)
_PCSA_MODULES = ("norm", "q", "k", "v")


def _smsa_params(block: nn.Module) -> list[torch.Tensor | None]:
    """The four convolutions' weights and biases, then norm_h's and norm_w's weight and bias."""
    modules = block._modules
    return [t for name in (*CONV_NAMES, *_NORM_MODULES) for t in _weight_bias(modules[name])]


def _native_smsa_params(block: nn.Module, dtype: torch.dtype) -> tuple[tuple, list] | None:
    """SMSA's parameters as the C module takes them: (weight, kernel size, bias) per group, both
    norms' affines, their eps and the softmax flag; and the tensors behind them (:func:`_smsa_params`,
    whose gradients the C backward returns in that order). None unless all are contiguous tensors
    of ``dtype`` (biases and affine norms included). Called on every forward, hence one pass."""
    if not _plain_params(block, (*CONV_NAMES, *_NORM_MODULES)):
        return None
    tensors = _smsa_params(block)
    if not all(t is not None and t.dtype == dtype and t.is_contiguous() for t in tensors):
        return None
    ptrs = [t.data_ptr() for t in tensors]
    per_group = [v for i, k in enumerate(block.group_kernel_sizes) for v in (ptrs[2 * i], k, ptrs[2 * i + 1])]
    return (*per_group, *ptrs[8:], block.norm_h.eps, block.norm_w.eps, block.sa_softmax), tensors


def _native_gates(args: tuple, means: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_axis_gates` in one call, with SMSA's arguments ``args`` (:func:`_native_smsa_params`):
    the merged Conv1d, both GroupNorms and the gate, (b, c, h), (b, c, w)."""
    b, c, row = means.shape
    out = means.new_empty(b, c, h + w)
    _config.NATIVE.gates(
        means.dtype == torch.float64, means.data_ptr(), b, c, h, w, row, row - w, args, out.data_ptr()
    )
    return out[:, :, :h], out[:, :, h:]


def _first_row(t: torch.Tensor) -> torch.Tensor:
    """Row 0 of per-sample gradient shares that the C module summed there (zeros for an empty batch)."""
    return t[0] if t.shape[0] else t.sum(0)


def _native_gates_backward(
    block: nn.Module,
    native: tuple[tuple, list],
    means: torch.Tensor,
    h: int,
    w: int,
    da_h: torch.Tensor,
    da_w: torch.Tensor,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The backward of :func:`_native_gates`, with ``native`` from :func:`_native_smsa_params`:
    dL/dmeans (its gap left unset) and the parameters' gradients, in their order."""
    args, params = native
    b, c, row = means.shape
    gc, ks = c // 4, block.group_kernel_sizes
    da = torch.cat((da_h, da_w), dim=2).to(means.dtype).contiguous()  # (b, c, h + w)
    dmeans = torch.empty_like(means)
    d_conv = [t for k in ks for t in (means.new_empty(b, gc, k), means.new_empty(b, gc))]  # per sample
    d_norm = [means.new_empty(b, c) for _ in range(4)]
    _config.NATIVE.gates_backward(
        means.dtype == torch.float64, means.data_ptr(), b, c, h, w, row, row - w,
        args, da.data_ptr(), dmeans.data_ptr(),
        *(t.data_ptr() for t in d_conv), *(t.data_ptr() for t in d_norm),
    )  # fmt: skip
    # the C module summed the samples into the first row
    return dmeans, [_first_row(t).view(p.shape) for t, p in zip(d_conv + d_norm, params)]


def _native_pool(x: torch.Tensor, a_h: torch.Tensor, a_w: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Average pooling (kh × kw windows, floor mode) of x * a_h ⊗ a_w without forming it."""
    b, c, h, w = x.shape
    (a_h, sh), (a_w, sw) = _rows_of(a_h), _rows_of(a_w)
    y = x.new_empty(b, c, h // kh, w // kw)
    _config.NATIVE.pool(
        x.dtype == torch.float64, x.data_ptr(), b * c, h, w,
        a_h.data_ptr(), sh, a_w.data_ptr(), sw, kh, kw, y.data_ptr(),
    )  # fmt: skip
    return y


def _native_gate(
    x: torch.Tensor, u: torch.Tensor, a_w: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``x * u ⊗ a_w`` in one pass, into ``out`` (a new tensor if None; it may be x: the pass goes
    element by element)."""
    b, c, h, w = x.shape
    (u, su), (a_w, sw) = _rows_of(u), _rows_of(a_w)
    out = torch.empty_like(x) if out is None else out
    _config.NATIVE.gate(
        x.dtype == torch.float64, x.data_ptr(), b * c, h, w,
        u.data_ptr(), su, a_w.data_ptr(), sw, out.data_ptr(),
    )  # fmt: skip
    return out


def _native_backward(ctx, x, ah, aw, gx, grad, pcsa_backward, smsa_backward):
    """The gradient of x in three passes: one reads G and x for the sums PCSA's backward needs, one
    reads x again for the pooling's share once PCSA gave dy (cheaper than keeping per-window sums
    from the first), and one writes dx = G (a_h g) ⊗ a_w + (a_h ⊗ a_w) · upsample(dy) + dx_h/W ⊕ dx_w/H."""
    b, c, h, w = x.shape
    kh, kw = ctx.windows
    f64 = x.dtype == torch.float64
    grad = grad.contiguous()
    (ah, sh), (aw, sw) = _rows_of(ah), _rows_of(aw)
    th, tw = x.new_empty(b, c, h), x.new_empty(b, c, w)
    _config.NATIVE.reduce(
        f64, grad.data_ptr(), x.data_ptr(), b * c, h, w, ah.data_ptr(), sh, aw.data_ptr(), sw,
        th.data_ptr(), tw.data_ptr(),
    )  # fmt: skip
    dy, da_h, da_w = pcsa_backward(th, tw)
    dy = dy.to(x.dtype).contiguous()
    share_h, share_w = x.new_empty(b, c, h), x.new_empty(b, c, w)  # the pooling's share
    _config.NATIVE.share(
        f64, x.data_ptr(), b * c, h, w, ah.data_ptr(), sh, aw.data_ptr(), sw, dy.data_ptr(), kh, kw,
        share_h.data_ptr(), share_w.data_ptr(),
    )  # fmt: skip
    dx_h, dx_w = smsa_backward(da_h + share_h, da_w + share_w)
    if not ctx.needs_input_grad[0]:
        return None
    u = ah * gx.unsqueeze(-1)
    ch, cw = (dx_h / w).contiguous(), (dx_w / h).contiguous()
    dx = torch.empty_like(grad)
    _config.NATIVE.dx(
        f64, grad.data_ptr(), b * c, h, w, u.data_ptr(), h, ah.data_ptr(), sh, aw.data_ptr(), sw,
        dy.data_ptr(), kh, kw, ch.data_ptr(), cw.data_ptr(), dx.data_ptr(),
    )  # fmt: skip
    return dx


# ----------------------------------------------------------------------------------------------
# forward


def _gated(x: torch.Tensor, a_h: torch.Tensor, a_w: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
    """``x * (a_h g) ⊗ a_w``; with ``g=None`` the SMSA output ``x * a_h ⊗ a_w`` (x_s) in x's memory format."""
    if g is None:
        out = x * a_h.to(x.dtype).unsqueeze(-1)
    else:
        out = x * (a_h * g.unsqueeze(-1)).to(x.dtype).unsqueeze(-1)
    return out.mul_(a_w.to(x.dtype).unsqueeze(-2))


def _recompute_output(x: torch.Tensor, version: int, a_h, a_w, g, route: str) -> torch.Tensor:
    """The output of :func:`_forward_no_grad` again, bit for bit, from x and the three small gates."""
    if x._version != version:  # what autograd says of a saved tensor that was overwritten
        raise RuntimeError(
            "SCSA's input was modified by an inplace operation after the forward, so its output "
            f"cannot be recomputed for the backward (version {x._version}, expected {version})"
        )
    with torch.no_grad():
        if route == "native":
            return _native_gate(x, a_h * g.unsqueeze(-1), a_w)
        if route == "rows":
            return _gated(x, a_h, a_w, g)
        return _gated(x, a_h, a_w, None).mul_(g.to(x.dtype)[:, :, None, None])


def _native_forward(
    block: nn.Module, x: torch.Tensor, out: torch.Tensor, keep: bool, smsa: tuple | None
) -> tuple | None:
    """The whole forward in one C call, one sample after another (each sample's planes stay in the
    cache from pass to pass), writing ``out``, with SMSA's arguments ``smsa`` (None: outside the C
    module); or None where it does not apply: SMSA or PCSA outside the C module, or fewer samples
    than threads (the separate passes parallelise over planes). Returns the means, the gates
    (b, c, h + w), y, g and, with ``keep``, the attention's output."""
    b, c, h, w = x.shape
    if b < torch.get_num_threads() or smsa is None:
        return None
    kh, kw = _kernel_windows(block, x)
    pcsa = _native_pcsa_params(block, x.dtype, _tokens(block, x))
    if pcsa is None:
        return None
    gap = max(block.group_kernel_sizes) // 2
    means, gates = x.new_empty(b, c, h + gap + w), x.new_empty(b, c, h + w)
    y, g = x.new_empty(b, c, h // kh, w // kw), x.new_empty(b, c)
    o = x.new_empty(b, c) if keep else None
    _config.NATIVE.forward(
        x.dtype == torch.float64, x.data_ptr(), b, c, h, w, gap, kh, kw, smsa, pcsa[0],
        means.data_ptr(), gates.data_ptr(), y.data_ptr(), g.data_ptr(), 0 if o is None else o.data_ptr(),
        out.data_ptr(),
    )  # fmt: skip
    return means, gates, y, g, o


def _forward_no_grad(block: nn.Module, x: torch.Tensor, keep: bool = False):
    """The output; with ``keep`` also what the training backward recomputes from (means, y), a
    zero-argument function that recomputes the output from x and small tensors, and a list holding
    the channel attention's output where the backward may reuse it."""
    dtype = compute_dtype(x)
    attn_out = [] if keep else None
    route = _route(block, x)
    native_smsa = _native_smsa_params(block, x.dtype) if route == "native" else None
    smsa = None if native_smsa is None else native_smsa[0]
    if route == "native":
        # in place where the caller allows it, no autograd graph can need x and no hook can see it
        inplace = (
            block.inplace
            and not keep
            and not (torch.is_grad_enabled() and x.requires_grad)
            and not hooks_see(block)
        )
        out = x if inplace else torch.empty_like(x)
        fused = _native_forward(block, x, out, keep, smsa)
        if fused is not None:
            means, gates, y, g, o = fused
            if not keep:
                return out
            a_h, a_w = gates[:, :, : x.shape[2]], gates[:, :, x.shape[2] :]
            recompute = functools.partial(_recompute_output, x, x._version, a_h, a_w, g, route)
            return out, means, y, recompute, [o]
        means = _native_means(x, max(block.group_kernel_sizes) // 2)
    else:
        means = _axis_means(block, x, dtype)  # (b, c, h + p + w)
    if smsa is not None:
        a_h, a_w = _native_gates(smsa, means, x.shape[2], x.shape[3])
    else:
        a_h, a_w = _axis_gates(block, means, x.shape[2])
    if route == "native":
        y = _native_pool(x, a_h, a_w, *_kernel_windows(block, x))
        g = _channel_gate(block, y, attn_out)
        out = _native_gate(x, a_h * g.unsqueeze(-1), a_w, out=out)
    elif route == "rows":
        y = _rows_pool(x, a_h, a_w, block.window_size)
        g = _channel_gate(block, y, attn_out)
        out = _gated(x, a_h, a_w, g)
    else:
        out = _gated(x, a_h, a_w, None)  # x_s
        y = _pool(block, out).to(dtype)
        g = _channel_gate(block, y, attn_out)
        out.mul_(g.to(x.dtype)[:, :, None, None])
    if not keep:
        return out
    return out, means, y, functools.partial(_recompute_output, x, x._version, a_h, a_w, g, route), attn_out


# ----------------------------------------------------------------------------------------------
# training


class _SCSAFunction(torch.autograd.Function):
    """SCSA forward and backward that keep only ``x`` and small tensors for the backward: the axis
    means (b, c, h + p + w) and the pooled tokens (b, c, h', w').

    The backward recomputes the two small graphs (means -> gates, tokens -> channel gate) with
    autograd and differentiates them with :func:`torch.autograd.grad`; the full-size products are
    differentiated by hand. A double backward (``create_graph=True``) differentiates a
    recomputation of the plain path instead.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, block: nn.Module, names: tuple[str, ...], *params: torch.Tensor):
        # the dropout mask is a draw of the RNG: keep its state to redraw the same one in backward
        ctx.rng = _rng_state(x.device) if block.training and block.attn_drop.p > 0.0 else None
        ctx.block, ctx.route, ctx.names, ctx.params = block, _route(block, x), names, params
        ctx.windows = _kernel_windows(block, x)
        out, means, y, recompute, ctx.attn_out = _forward_no_grad(block, x, keep=True)
        ctx.save_for_backward(x, means, y)
        ctx.recompute = recompute
        ctx.gates = recompute.args[2:4]  # a_h, a_w (the recompute holds them anyway)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if torch.is_grad_enabled():  # create_graph=True: differentiate the plain definition instead
            return _recompute_vjp(ctx, grad)
        x, means, y = ctx.saved_tensors
        block = ctx.block
        devices = [x.device] if x.device.type == "cuda" else []
        # SMSA's small graph: by the C module forward and backward where it applies, else autograd
        smsa_c = _native_smsa_params(block, x.dtype) if ctx.route == "native" else None
        with torch.enable_grad(), torch.random.fork_rng(devices, enabled=ctx.rng is not None):
            _set_rng_state(ctx.rng, x.device)
            if smsa_c is not None:  # the forward's gates: the C module computed them, as it would again
                a_h, a_w = ctx.gates
            else:
                means = means.detach().requires_grad_()
                a_h, a_w = _axis_gates(block, means, x.shape[2])  # (b, c, h), (b, c, w)
            # PCSA's small graph likewise, from the attention's output kept by the forward
            y = y.contiguous()  # the C module reads y as (b, c, n) rows
            pcsa_c = _native_pcsa_args(block, y) if ctx.attn_out else None
            if pcsa_c is not None:
                o = ctx.attn_out[0]
                g = o.softmax(dim=1) if block.ca_softmax else o.sigmoid()  # (b, c)
            else:
                y = y.detach().requires_grad_()
                g = _channel_gate(block, y)  # (b, c)
        ah, aw, gx = a_h.detach().to(x.dtype), a_w.detach().to(x.dtype), g.detach().to(x.dtype)
        smsa, pcsa, down = [], [], []
        for name, p in zip(ctx.names, ctx.params):
            if p.requires_grad:
                (
                    pcsa if name.startswith(_PCSA_PREFIXES) else down if name.startswith("conv_d.") else smsa
                ).append(p)
        grads: dict[int, torch.Tensor] = {}

        def pcsa_backward(th: torch.Tensor, tw: torch.Tensor) -> tuple[torch.Tensor, ...]:
            """From th = Σ_w G x a_w (b, c, h) and tw = Σ_h G x a_h (b, c, w): the gate's gradient
            (out = x · (a_h g) ⊗ a_w), then dy through the PCSA graph, and the gates' shares."""
            th, tw = th.to(a_h.dtype), tw.to(a_h.dtype)
            gd = g.detach().unsqueeze(-1)
            dg = (a_h.detach() * th).sum(dim=2)
            if pcsa_c is not None:
                dy, res = _native_channel_gate_backward(pcsa_c, y, o, dg)
                grads.update((id(p), r) for p, r in zip(pcsa_c[1], res) if p is not None and p.requires_grad)
                return dy, th * gd, tw * gd
            dy, *res = torch.autograd.grad(g, [y, *pcsa], dg)
            grads.update(zip(map(id, pcsa), res))
            return dy, th * gd, tw * gd

        def smsa_backward(da_h: torch.Tensor, da_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if smsa_c is not None:
                d_means, res = _native_gates_backward(
                    block, smsa_c, means, x.shape[2], x.shape[3], da_h, da_w
                )
                grads.update((id(p), r) for p, r in zip(smsa_c[1], res) if p.requires_grad)
            else:
                d_means, *res = torch.autograd.grad((a_h, a_w), [means, *smsa], (da_h, da_w))
                grads.update(zip(map(id, smsa), res))
            d_means = d_means.to(x.dtype)
            return d_means[:, :, : x.shape[2]], d_means[:, :, d_means.shape[2] - x.shape[3] :]

        if ctx.route == "native":
            dx = _native_backward(ctx, x, ah, aw, gx, grad, pcsa_backward, smsa_backward)
        elif ctx.route == "rows":
            dx = _rows_backward(ctx, x, ah, aw, gx, grad, pcsa_backward, smsa_backward)
        else:
            dx = _generic_backward(ctx, x, ah, aw, gx, grad, pcsa_backward, smsa_backward, down, grads)
        return (dx, None, None, *(grads.get(id(p)) for p in ctx.params))


class _Context:
    """What :class:`_SCSAFunction` reads and writes on autograd's ctx, for :func:`native_vjp`."""

    def __init__(self, n_params: int) -> None:
        self.needs_input_grad = (True, False, False, *([True] * n_params))
        self.saved_tensors: tuple[torch.Tensor, ...] = ()

    def save_for_backward(self, *tensors: torch.Tensor) -> None:
        self.saved_tensors = tensors


def native_vjp(
    block: nn.Module,
    x: torch.Tensor,
    grad: torch.Tensor,
    names: tuple[str, ...],
    params: tuple[torch.Tensor, ...],
) -> tuple[torch.Tensor, ...] | None:
    """``(dx, *dparams)`` of ``block(x)`` against ``grad`` by the training Function's forward and
    backward where the C module computes both small graphs, so that no autograd graph is recorded
    (inside a custom operator none can be); None elsewhere. ``params`` are the tensors the block
    holds, ``names`` their ``named_parameters`` names; each needs ``requires_grad``."""
    if fast_path_reason(x) is not None or _route(block, x) != "native":
        return None
    if _native_smsa_params(block, x.dtype) is None:
        return None
    if _native_pcsa_params(block, x.dtype, _tokens(block, x)) is None:
        return None
    ctx = _Context(len(params))
    with torch.no_grad():
        _SCSAFunction.forward(ctx, x, block, names, *params)
        if not ctx.attn_out:  # the fused forward kept no attention output: PCSA would need autograd
            return None
        dx, _, _, *dparams = _SCSAFunction.backward(ctx, grad)
    if any(g is None for g in dparams):
        return None
    return (dx, *dparams)


def _rows_backward(ctx, x, ah, aw, gx, grad, pcsa_backward, smsa_backward):
    b, c, h, w = x.shape
    bc = b * c
    grad = grad.contiguous()
    t = grad * x
    dy, da_h, da_w = pcsa_backward(*_against_gates(t, ah, aw, x.dtype))
    # the pooling y = A_hᵀ X A_w: towards a_h through (X A_w)ᵀ, towards a_w through A_hᵀ X, both
    # recomputed rather than kept (each is 1/k of x: memory the model would otherwise hold)
    dy = dy.to(x.dtype).reshape(bc, dy.shape[2], dy.shape[3])  # (bc, h', w')
    e_h = _windows(h, ctx.block.window_size, x.dtype, x.device)  # (h, h')
    e_w = _windows(w, ctx.block.window_size, x.dtype, x.device)  # (w, w')
    q = torch.bmm(_gate_windows(ah, e_h), x.view(bc, h, w))  # (bc, h', w) = A_hᵀ X
    p_t = torch.bmm(_gate_windows(aw, e_w), x.view(bc, h, w).transpose(1, 2))  # (bc, w', h) = (X A_w)ᵀ
    da_h = da_h + (p_t * (dy.transpose(1, 2) @ e_h.t())).sum(dim=1).view(b, c, h)
    dy_e = dy @ e_w.t()  # (bc, h', w): one GEMM with the shared window matrix
    da_w = da_w + (q * dy_e).sum(dim=1).view(b, c, w)
    dx_h, dx_w = smsa_backward(da_h, da_w)
    if not ctx.needs_input_grad[0]:
        return None
    hp = e_h.shape[1]
    # three passes: dx = G (a_h g) a_w + dx_w/H, then += [A_h | dx_h/W] @ [dy A_wᵀ; 1] (the pooling
    # and the mean over W in one batched matmul; its factors written in place, not concatenated)
    dx = torch.mul(grad, (ah * gx.unsqueeze(-1)).unsqueeze(-1), out=t.view(b, c, h, w))  # t is spent
    torch.addcmul((dx_w / h).unsqueeze(-2), dx, aw.unsqueeze(-2), out=dx)
    left = x.new_empty(bc, h, hp + 1)
    torch.mul(ah.view(bc, h, 1), e_h, out=left[:, :, :hp])  # A_h
    left[:, :, hp] = dx_h.view(bc, h) / w
    right = x.new_empty(bc, hp + 1, w)
    torch.mul(dy_e, aw.view(bc, 1, w), out=right[:, :hp])  # dy A_wᵀ
    right[:, hp] = 1.0
    dx.view(bc, h, w).baddbmm_(left, right)
    return dx


def _against_gates(t: torch.Tensor, a_h: torch.Tensor, a_w: torch.Tensor, dtype: torch.dtype):
    """Σ_w t a_w (b, c, h) and Σ_h t a_h (b, c, w) of a full-size t (overwritten).

    NCHW: batched vector-matrix products (a reduction over a short row is slow); channels_last:
    products and reductions that run along the channels."""
    b, c, h, w = t.shape
    if t.is_contiguous() and t.dtype == dtype:
        t3 = t.view(b * c, h, w)
        th = torch.bmm(a_w.reshape(b * c, 1, w), t3.transpose(1, 2)).view(b, c, h)
        return th, torch.bmm(a_h.reshape(b * c, 1, h), t3).view(b, c, w)
    th = (t * a_w.unsqueeze(-2)).sum(dim=3, dtype=dtype)
    return th, t.mul_(a_h.unsqueeze(-1)).sum(dim=2, dtype=dtype)


def _generic_backward(ctx, x, ah, aw, gx, grad, pcsa_backward, smsa_backward, down, grads):
    block = ctx.block
    h, w = x.shape[2], x.shape[3]
    cd = compute_dtype(x)
    ah4, aw4, g4 = ah.unsqueeze(-1), aw.unsqueeze(-2), gx[:, :, None, None]
    t = grad * x
    dy, _, _ = pcsa_backward(*_against_gates(t, ah, aw, cd))
    # G_s = dL/dx_s = G g + (pooling)ᵀ dy; the gates' gradients are its reductions against x
    if block.window_size == -1:
        g_s = torch.addcmul((dy / (h * w)).to(x.dtype), grad, g4)  # the pooling's share is constant
    elif not (block.max_pool or block.recombine):
        k = (_window(block.window_size, h), _window(block.window_size, w))
        g_s = torch.ops.aten.avg_pool2d_backward(dy.to(x.dtype), x, k, k, (0, 0), False, True, None)
        g_s.addcmul_(grad, g4)
    else:  # recompute x_s and differentiate the pooling (its argmax, or conv_d's weight)
        with torch.enable_grad():
            x_s = (x * ah4).mul_(aw4).requires_grad_()
            y2 = _pool(block, x_s).to(dy.dtype)
        g_s, *down_grads = torch.autograd.grad(y2, [x_s, *down], dy)
        grads.update(zip(map(id, down), down_grads))
        del x_s, y2
        g_s = torch.addcmul(g_s, grad, g4)
    dx_h, dx_w = smsa_backward(*_against_gates(torch.mul(g_s, x, out=t), ah, aw, cd))
    if not ctx.needs_input_grad[0]:
        return None
    dx = g_s.mul_(ah4).mul_(aw4)
    return dx.add_((dx_h / w).unsqueeze(-1)).add_((dx_w / h).unsqueeze(-2))


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple[torch.Tensor, torch.Tensor | None] | None, device: torch.device) -> None:
    if state is not None:
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], device)


def _recompute_vjp(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """The backward as a differentiable graph of the plain path (for ``create_graph=True``)."""
    x, *_ = ctx.saved_tensors
    block, params = ctx.block, ctx.params
    needs = (ctx.needs_input_grad[0], *ctx.needs_input_grad[3:])
    inputs = [t for t, need in zip((x, *params), needs) if need]
    devices = [x.device] if x.device.type == "cuda" else []
    with (
        torch.random.fork_rng(devices, enabled=ctx.rng is not None),
        torch.autocast(x.device.type, enabled=False),
    ):
        _set_rng_state(ctx.rng, x.device)
        out = block.forward_plain(x)
    grads = iter(torch.autograd.grad(out, inputs, grad, create_graph=True, allow_unused=True))
    dx, *param_grads = (next(grads) if need else None for need in needs)
    return (dx, None, None, *param_grads)
