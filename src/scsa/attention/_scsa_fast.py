"""The fast path of SCSA (Si et al., arXiv 2407.05128, https://arxiv.org/abs/2407.05128).

:class:`scsa.SCSA` runs this by default; :mod:`scsa.attention.scsa` keeps the readable definition,
and both are held to the literal oracle in ``tests/oracle.py``. This file is longer than our usual
~300 lines because the training path needs a hand-written backward (see :class:`_SCSAFunction`).

The same numbers, computed with less work and memory (every step is exact algebra):

* SMSA: the four depth-wise kernels, zero-padded to the largest, form one depth-wise Conv1d, and
  the two axes go through it in one call (H and W concatenated with a gap of zeros).
* PCSA: ``mean_n(attn @ v) == attn @ mean_n(v)``, so attention yields one value per channel; the C×C
  softmax runs through ``F.scaled_dot_product_attention`` where that wins (a single token: the
  logits are rank one and the 512×512 matrix at ResNet's last stage is never stored).
* ``x_s = x * a_h * a_w`` is never stored. Average pooling of ``x_s`` is ``A_hᵀ · X · A_w`` per
  channel, with ``A_h[h, i] = a_h[h] · [h in window i] / k`` (batched matmuls), and the output is
  ``x * (a_h · gate) ⊗ a_w``, one product over ``x``.
* Training uses one autograd Function that saves ``x`` (the previous layer keeps it anyway) and
  small tensors only, and computes the full-size gradient in a few passes:
  ``dx = G·(g a_h ⊗ a_w) + A_h · dy · A_wᵀ + dx_h/W ⊕ dx_w/H``, the last three terms as one
  batched matmul. The small gate graphs run through ordinary autograd inside it.

Max pooling, 'recombination' and channels_last inputs pool an explicit ``x_s`` (not kept for the
backward, which recomputes it); everything else is shared.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

# the plain module imports this one; its shared helpers are looked up when first called
from scsa.attention import scsa as _plain

__all__ = ["fast_path_reason", "scsa_forward", "use_fast_path"]

_FAST_DEVICES = ("cpu", "cuda")


def fast_path_reason(x: torch.Tensor) -> str | None:
    """Why :class:`scsa.SCSA` must take the plain path for ``x``, or ``None`` when the fast one applies.

    The fast path is eager-only: under TorchScript, tracing, FX, ``torch.compile``/``torch.export``
    and ``torch.func`` transforms the plain path is what gets captured (a compiler fuses it anyway).
    """
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return "TorchScript scripting or tracing"
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return "torch.compile / torch.export"
    if torch._C._are_functorch_transforms_active():
        return "a torch.func transform"
    if type(x) is not torch.Tensor:  # FX proxies, fake tensors, DTensor, ...
        return f"input of type {type(x).__name__}"
    if x.device.type not in _FAST_DEVICES:
        return f"device {x.device.type!r}"
    if not x.is_floating_point():
        return f"dtype {x.dtype}"
    return None


def use_fast_path(x: torch.Tensor) -> bool:
    """The chooser: True where :func:`scsa_forward` runs instead of the plain definition."""
    return fast_path_reason(x) is None


# ----------------------------------------------------------------------------------------------
# small pieces (tensors of size B·C·(H + W) or B·C·H'·W')


def _merged_kernel(block: nn.Module, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The four depth-wise kernels zero-padded to the largest, as one (C, 1, K) kernel."""
    ks = block.group_kernel_sizes
    big = max(ks)
    weights, biases = [], []
    for name, k in zip(_plain._CONV_NAMES, ks):
        conv = getattr(block, name)
        pad = (big - k) // 2
        weights.append(F.pad(conv.weight, (pad, pad)) if pad else conv.weight)
        biases.append(conv.bias)
    return torch.cat(weights).to(dtype), torch.cat(biases).to(dtype)


def _axis_gates(block: nn.Module, x_h: torch.Tensor, x_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SMSA steps 2-3 for both axes at once: (b, c, h), (b, c, w) -> a_h, a_w."""
    b, c, h = x_h.shape
    weight, bias = _merged_kernel(block, x_h.dtype)
    p = weight.shape[-1] // 2
    # a gap of p zeros between the axes is exactly the zero padding each axis would see alone
    t = torch.cat((x_h, x_h.new_zeros(b, c, p), x_w), dim=2)  # (b, c, h + p + w)
    a = F.conv1d(t, weight, bias, padding=p, groups=c)
    a_h = _plain.group_norm(a[:, :, :h], 4, block.norm_h.weight, block.norm_h.bias, block.norm_h.eps, a.dtype)
    a_w = _plain.group_norm(
        a[:, :, h + p :], 4, block.norm_w.weight, block.norm_w.bias, block.norm_w.eps, a.dtype
    )
    if block.sa_softmax:
        return a_h.softmax(dim=2), a_w.softmax(dim=2)
    return a_h.sigmoid(), a_w.sigmoid()


def _depthwise_affine(t: torch.Tensor, conv: nn.Conv2d, heads: int) -> torch.Tensor:
    """A depth-wise 1×1 conv on (b, heads, d, n) tokens: a per-channel scale and shift."""
    d = t.shape[2]
    out = t * conv.weight.to(t.dtype).reshape(heads, d, 1)
    if conv.bias is not None:
        out = out + conv.bias.to(t.dtype).reshape(heads, d, 1)
    return out


def _channel_gate(block: nn.Module, y: torch.Tensor, lean: bool) -> torch.Tensor:
    """PCSA steps 6-9 on pooled tokens y (b, c, h', w') -> gate (b, c).

    ``lean`` asks for the memory-lean attention (training: no C×C matrix kept for the backward).
    """
    b, c = y.shape[0], y.shape[1]
    heads, d = block.head_num, block.head_dim
    y = _plain.group_norm(y, 1, block.norm.weight, block.norm.bias, block.norm.eps, y.dtype)
    y = y.reshape(b, heads, d, -1)  # (b, heads, d, n): channels are the tokens
    q = _depthwise_affine(y, block.q, heads)
    k = _depthwise_affine(y, block.k, heads)
    v = _depthwise_affine(y.mean(dim=3, keepdim=True), block.v, heads)  # mean_n(attn @ v) = attn @ mean_n(v)
    drop = block.attn_drop.p if block.training else 0.0
    if drop > 0.0 or not (lean or y.shape[3] == 1):
        # explicit softmax: the dropout mask is drawn exactly as nn.Dropout draws it on the plain path
        attn = (q @ k.transpose(-2, -1) * block.scaler).softmax(dim=-1)
        o = F.dropout(attn, drop, training=drop > 0.0) @ v
    else:
        o = F.scaled_dot_product_attention(q, k, v, scale=block.scaler)
    g = o.reshape(b, c)
    return g.softmax(dim=1) if block.ca_softmax else g.sigmoid()


def _windows(length: int, window: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(length, length // k) averaging matrix of floor-mode windows k = min(window, length); -1: global."""
    k = length if window == -1 else min(window, length)
    cols = torch.arange(length // k, device=device)
    rows = torch.arange(length, device=device) // k
    return (rows[:, None] == cols[None, :]).to(dtype) / k


def _factored(block: nn.Module, x: torch.Tensor) -> bool:
    """Average pooling of an NCHW-contiguous map: pool x_s by matmuls without storing it."""
    return (block.window_size == -1 or not (block.max_pool or block.recombine)) and x.is_contiguous()


# ----------------------------------------------------------------------------------------------
# eval / no-grad


def _forward_no_grad(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    dtype = _plain.compute_dtype(x)
    a_h, a_w = _axis_gates(block, x.mean(dim=3, dtype=dtype), x.mean(dim=2, dtype=dtype))
    if _factored(block, x):
        e_h = _windows(h, block.window_size, x.dtype, x.device)  # (h, h')
        e_w = _windows(w, block.window_size, x.dtype, x.device)  # (w, w')
        a_w_x = a_w.to(x.dtype)
        p = torch.bmm(x.view(b * c, h, w), (a_w_x.unsqueeze(-1) * e_w).view(b * c, w, -1))  # (bc, h, w')
        y = e_h.t() @ (p * a_h.to(x.dtype).view(b * c, h, 1))  # (bc, h', w')
        gate = _channel_gate(block, y.view(b, c, y.shape[1], y.shape[2]).to(dtype), lean=False)
        out = x * (a_h * gate.unsqueeze(-1)).to(x.dtype).unsqueeze(-1)
        return out.mul_(a_w_x.unsqueeze(-2))
    x_s = x * a_h.to(x.dtype).unsqueeze(-1)
    x_s.mul_(a_w.to(x.dtype).unsqueeze(-2))
    gate = _channel_gate(block, block.down_sample(x_s).to(dtype), lean=False)
    return x_s.mul_(gate.to(x.dtype).view(b, c, 1, 1))


# ----------------------------------------------------------------------------------------------
# training


class _SCSAFunction(torch.autograd.Function):
    """SCSA forward/backward that keeps only ``x`` and small tensors for the backward.

    The small graphs (axis means -> gates, pooled tokens -> channel gate) are built with ordinary
    autograd inside ``forward`` and differentiated with :func:`torch.autograd.grad` in ``backward``;
    the full-size products are differentiated by hand. Once differentiable (no double backward).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, block: nn.Module, *params: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        dtype = _plain.compute_dtype(x)
        with torch.enable_grad():
            x_h = x.mean(dim=3, dtype=dtype).requires_grad_()  # (b, c, h)
            x_w = x.mean(dim=2, dtype=dtype).requires_grad_()  # (b, c, w)
            a_h, a_w = _axis_gates(block, x_h, x_w)
        ah, aw = a_h.detach().to(x.dtype), a_w.detach().to(x.dtype)
        factored = _factored(block, x)
        if factored:
            e_h = _windows(h, block.window_size, x.dtype, x.device)  # (h, h')
            e_w = _windows(w, block.window_size, x.dtype, x.device)  # (w, w')
            x3 = x.view(b * c, h, w)
            p = torch.bmm(x3, (aw.unsqueeze(-1) * e_w).view(b * c, w, -1))  # (bc, h, w')
            q = torch.bmm((ah.unsqueeze(-1) * e_h).view(b * c, h, -1).transpose(1, 2), x3)  # (bc, h', w)
            y = e_h.t() @ (p * ah.view(b * c, h, 1))  # (bc, h', w')
            y = y.view(b, c, y.shape[1], y.shape[2])
            saved_small = (p, q, e_h, e_w)
        else:
            x_s = x * ah.unsqueeze(-1)
            x_s.mul_(aw.unsqueeze(-2))
            y = block.down_sample(x_s)
            saved_small = ()
        with torch.enable_grad():
            y = y.to(dtype).requires_grad_()
            g = _channel_gate(block, y, lean=True)  # (b, c)
        gx = g.detach().to(x.dtype)
        if factored:
            out = x * (ah * gx.unsqueeze(-1)).unsqueeze(-1)
            out.mul_(aw.unsqueeze(-2))
        else:
            out = x_s.mul_(gx.view(b, c, 1, 1))
        ctx.block = block
        ctx.params_all = params
        ctx.factored = factored
        ctx.graph = (x_h, x_w, a_h, a_w, y, g)
        ctx.save_for_backward(x, ah, aw, gx, *saved_small)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, ah, aw, gx, *small = ctx.saved_tensors
        block = ctx.block
        x_h, x_w, a_h, a_w, y, g = ctx.graph
        b, c, h, w = x.shape
        params = [p for p in block.parameters() if p.requires_grad]
        if ctx.factored:
            grad = grad.contiguous()

        # out = x * (a_h g) ⊗ a_w: reductions of G·x against the gates
        t = grad * x
        th = (t * aw.unsqueeze(-2)).sum(dim=3).to(a_h.dtype)  # (b, c, h): sum_w G x a_w
        tw = (t * ah.unsqueeze(-1)).sum(dim=2).to(a_h.dtype)  # (b, c, w): sum_h G x a_h
        del t
        g32 = g.detach()
        dg = (a_h.detach() * th).sum(dim=2)  # (b, c)
        da_h = th * g32.unsqueeze(-1)
        da_w = tw * g32.unsqueeze(-1)

        pcsa_params = [p for p in params if _in_pcsa(block, p)]
        grads = torch.autograd.grad(g, [y, *pcsa_params], dg, retain_graph=True, allow_unused=True)
        dy, pcsa_grads = grads[0], grads[1:]
        named = dict(zip(map(id, pcsa_params), pcsa_grads))

        if ctx.factored:
            p, q, e_h, e_w = small
            dyx = dy.to(x.dtype).view(b * c, dy.shape[2], dy.shape[3])  # (bc, h', w')
            da_h = da_h + (p * (e_h @ dyx)).sum(dim=2).view(b, c, h).to(da_h.dtype)
            da_w = da_w + (q * (dyx @ e_w.t())).sum(dim=1).view(b, c, w).to(da_w.dtype)
            u = None
        else:
            with torch.enable_grad():
                x_s = (x * ah.unsqueeze(-1) * aw.unsqueeze(-2)).requires_grad_()
                y2 = block.down_sample(x_s).to(dy.dtype)
            down_params = [p for p in block.conv_d.parameters() if p.requires_grad]
            u, *down_grads = torch.autograd.grad(y2, [x_s, *down_params], dy, allow_unused=True)
            named.update(zip(map(id, down_params), down_grads))
            t = u * x
            da_h = da_h + (t * aw.unsqueeze(-2)).sum(dim=3).to(da_h.dtype)
            da_w = da_w + (t * ah.unsqueeze(-1)).sum(dim=2).to(da_w.dtype)
            del t

        smsa_params = [p for p in params if id(p) not in named and not _in_pcsa(block, p)]
        grads = torch.autograd.grad(
            (a_h, a_w), [x_h, x_w, *smsa_params], (da_h, da_w), retain_graph=True, allow_unused=True
        )
        dx_h, dx_w = grads[0], grads[1]
        named.update(zip(map(id, smsa_params), grads[2:]))

        dx = None
        if ctx.needs_input_grad[0]:
            s_h = ah * gx.unsqueeze(-1)  # (b, c, h)
            if ctx.factored:
                dx = grad * s_h.unsqueeze(-1)
                dx.mul_(aw.unsqueeze(-2))
                # pooling and both means in one batched matmul: [A_h | dx_h/W | 1] @ [dy A_wᵀ; 1; dx_w/H]
                left = torch.cat(
                    (
                        (ah.unsqueeze(-1) * e_h).view(b * c, h, -1),
                        (dx_h / w).to(x.dtype).view(b * c, h, 1),
                        x.new_ones(b * c, h, 1),
                    ),
                    dim=2,
                )
                right = torch.cat(
                    (
                        dyx @ (aw.unsqueeze(-1) * e_w).view(b * c, w, -1).transpose(1, 2),
                        x.new_ones(b * c, 1, w),
                        (dx_w / h).to(x.dtype).view(b * c, 1, w),
                    ),
                    dim=1,
                )
                dx.view(b * c, h, w).baddbmm_(left, right)
            else:
                dx = torch.addcmul(u, grad, gx.view(b, c, 1, 1))
                dx.mul_(ah.unsqueeze(-1)).mul_(aw.unsqueeze(-2))
                dx.add_((dx_h / w).to(x.dtype).unsqueeze(-1)).add_((dx_w / h).to(x.dtype).unsqueeze(-2))
        param_grads = [named.get(id(p)) if p.requires_grad else None for p in ctx.params_all]
        return (dx, None, *param_grads)


def _in_pcsa(block: nn.Module, p: torch.Tensor) -> bool:
    return any(p is q for m in (block.norm, block.q, block.k, block.v) for q in m.parameters())


# ----------------------------------------------------------------------------------------------
# entry point


def scsa_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SCSA's output for ``x`` by the fast path (the caller checked :func:`use_fast_path`)."""
    with torch.autocast(x.device.type, enabled=False):
        params = list(block.parameters())
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
            return _SCSAFunction.apply(x, block, *params)
        return _forward_no_grad(block, x)
