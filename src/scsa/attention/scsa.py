"""SCSA: Spatial and Channel Synergistic Attention.

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
Neurocomputing 2025, https://arxiv.org/abs/2407.05128

Two halves run one after the other:

* SMSA (shareable multi-semantic spatial attention): per-axis means, four depth-wise Conv1d
  groups shared by both axes, GroupNorm, gate; ``x_s = x * a_h * a_w``.
* PCSA (progressive channel-wise self-attention): pool ``x_s`` to a few tokens, channels attend
  to channels (a C×C matrix), mean over tokens, gate; ``out = x_s * gate``.

Parameter names are the released ones so that the authors' checkpoints load with ``strict=True``.
Differences from the released code (all documented in the README):

* ``down_sample_mode="recombination"`` is defined (pixel-unshuffle + ``conv_d``); it crashes there.
* A map smaller than the window pools with the window shrunk to the map instead of failing.
* Bad configuration raises ``ValueError`` at construction.
* Norms and softmaxes (and the rest of the small gate path) run in float32 for float16/bfloat16
  inputs and under autocast, so large activations cannot overflow.

This file holds the readable definition. :mod:`scsa.attention._scsa_fast` holds the fast path that
:class:`SCSA` uses by default; ``tests/oracle.py`` checks both against a literal spec.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scsa.attention import _scsa_compile, _scsa_fast
from scsa.attention._layers import check_input
from scsa.attention._scsa_ops import (
    CONV_NAMES,
    compute_dtype,
    dw_conv1d,
    dw_conv1x1,
    group_norm,
    shrink_window,
)

__all__ = ["PCSA", "SCSA", "SMSA"]

_DOWN_SAMPLE_MODES = ("avg_pool", "max_pool", "recombination")
_GATES = ("sigmoid", "softmax")
# TorchScript prunes branches on constants, so the modes that change the graph are declared as such.
_SMSA_CONSTANTS = ["dim", "group_chans", "sa_softmax"]
_PCSA_CONSTANTS = ["dim", "head_num", "head_dim", "window_size", "recombine", "max_pool", "ca_softmax"]


# ----------------------------------------------------------------------------------------------
# validation


def _check_dim(dim: int, head_num: int = 1) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 4 or dim % 4 != 0:
        raise ValueError(
            f"dim must be a positive multiple of 4 (four channel groups, GroupNorm(4, dim)), got dim={dim!r}"
        )
    if isinstance(head_num, bool) or not isinstance(head_num, int) or head_num < 1:
        raise ValueError(f"head_num must be an integer >= 1, got head_num={head_num!r}")
    if dim % head_num != 0:
        raise ValueError(f"head_num must divide dim, got dim={dim} and head_num={head_num}")


def _check_gate(gate_layer: str) -> None:
    if gate_layer not in _GATES:
        raise ValueError(f"gate_layer must be one of {_GATES}, got {gate_layer!r}")


def _check_kernels(group_kernel_sizes: Sequence[int]) -> tuple[int, int, int, int]:
    ks = tuple(group_kernel_sizes)
    if len(ks) != 4:
        raise ValueError(f"group_kernel_sizes must hold exactly 4 kernel sizes, got {group_kernel_sizes!r}")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
            raise ValueError(
                f"every group kernel size must be an odd integer >= 1 (same-length padding k // 2), "
                f"got {k!r} in group_kernel_sizes={group_kernel_sizes!r}"
            )
    return ks  # type: ignore[return-value]


def _check_pcsa(window_size: int, down_sample_mode: str, attn_drop_ratio: float) -> None:
    if (
        isinstance(window_size, bool)
        or not isinstance(window_size, int)
        or (window_size != -1 and window_size < 1)
    ):
        raise ValueError(f"window_size must be -1 (global pooling) or an integer >= 1, got {window_size!r}")
    if down_sample_mode not in _DOWN_SAMPLE_MODES:
        raise ValueError(f"down_sample_mode must be one of {_DOWN_SAMPLE_MODES}, got {down_sample_mode!r}")
    if not 0.0 <= float(attn_drop_ratio) < 1.0:
        raise ValueError(f"attn_drop_ratio must be in [0, 1), got {attn_drop_ratio!r}")


# ----------------------------------------------------------------------------------------------
# the two halves, as mixins so SCSA keeps the released flat state_dict keys


class _SMSAMixin(nn.Module):
    """Parameters and gates of SMSA; shared by :class:`SMSA` and :class:`SCSA`."""

    def _init_smsa(self, dim: int, group_kernel_sizes: Sequence[int], gate_layer: str, factory) -> None:
        ks = _check_kernels(group_kernel_sizes)
        _check_gate(gate_layer)
        self.group_kernel_sizes = ks
        self.group_chans = gc = dim // 4
        self.sa_softmax = gate_layer == "softmax"
        for name, k in zip(CONV_NAMES, ks):
            setattr(self, name, nn.Conv1d(gc, gc, k, padding=k // 2, groups=gc, bias=True, **factory))
        self.norm_h = nn.GroupNorm(4, dim, **factory)
        self.norm_w = nn.GroupNorm(4, dim, **factory)

    def _multi_semantic(
        self, t: torch.Tensor, norm_weight: torch.Tensor | None, norm_bias: torch.Tensor | None
    ) -> torch.Tensor:
        """Four depth-wise Conv1d groups, GroupNorm, gate: (b, c, l) -> (b, c, l)."""
        t0, t1, t2, t3 = torch.split(t, self.group_chans, dim=1)
        a = torch.cat(
            (
                dw_conv1d(t0, self.local_dwc.weight, self.local_dwc.bias),
                dw_conv1d(t1, self.global_dwc_s.weight, self.global_dwc_s.bias),
                dw_conv1d(t2, self.global_dwc_m.weight, self.global_dwc_m.bias),
                dw_conv1d(t3, self.global_dwc_l.weight, self.global_dwc_l.bias),
            ),
            dim=1,
        )
        a = group_norm(a, 4, norm_weight, norm_bias, self.norm_h.eps, t.dtype)
        return a.softmax(dim=2) if self.sa_softmax else a.sigmoid()

    def smsa_gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The spatial gates ``a_h`` (b, c, h) and ``a_w`` (b, c, w), in the compute dtype."""
        dtype = compute_dtype(x)
        x_h = x.mean(dim=3, dtype=dtype)  # (b, c, h)
        x_w = x.mean(dim=2, dtype=dtype)  # (b, c, w)
        a_h = self._multi_semantic(x_h, self.norm_h.weight, self.norm_h.bias)
        a_w = self._multi_semantic(x_w, self.norm_w.weight, self.norm_w.bias)
        return a_h, a_w


class _PCSAMixin(nn.Module):
    """Parameters and gate of PCSA; shared by :class:`PCSA` and :class:`SCSA`."""

    def _init_pcsa(
        self,
        dim: int,
        head_num: int,
        window_size: int,
        qkv_bias: bool,
        down_sample_mode: str,
        attn_drop_ratio: float,
        gate_layer: str,
        factory,
    ) -> None:
        _check_pcsa(window_size, down_sample_mode, attn_drop_ratio)
        _check_gate(gate_layer)
        self.head_num = head_num
        self.head_dim = dim // head_num
        self.scaler = self.head_dim**-0.5  # as released: channels per head, not tokens
        self.window_size = window_size
        self.down_sample_mode = down_sample_mode
        self.ca_softmax = gate_layer == "softmax"
        self.recombine = window_size != -1 and down_sample_mode == "recombination"
        self.max_pool = window_size != -1 and down_sample_mode == "max_pool"
        if self.recombine:
            self.conv_d = nn.Conv2d(dim * window_size**2, dim, 1, bias=False, **factory)
        else:
            self.conv_d = nn.Identity()
        self.norm = nn.GroupNorm(1, dim, **factory)
        self.q = nn.Conv2d(dim, dim, 1, groups=dim, bias=qkv_bias, **factory)
        self.k = nn.Conv2d(dim, dim, 1, groups=dim, bias=qkv_bias, **factory)
        self.v = nn.Conv2d(dim, dim, 1, groups=dim, bias=qkv_bias, **factory)
        self.attn_drop = nn.Dropout(attn_drop_ratio)

    def down_sample(self, x: torch.Tensor) -> torch.Tensor:
        """Progressive compression (spec step 5): (b, c, h, w) -> (b, c, h', w').

        Written as crop + reshape + reduce rather than ``avg_pool2d`` so the window stays symbolic
        under ``torch.export``/ONNX: one exported graph then serves every spatial size, shrunk
        windows included.
        """
        if self.window_size == -1:
            return x.mean(dim=(2, 3), keepdim=True)
        b, c, h, w = x.shape
        kh = shrink_window(self.window_size, h)  # a map smaller than the window shrinks the window
        kw = shrink_window(self.window_size, w)
        hp = h // kh  # floor mode: the last rows/columns that fill no window are dropped
        wp = w // kw
        # crop by negative padding: a fresh tensor either way, so export adds no guard on whether
        # the crop was empty
        t = F.pad(x, (0, wp * kw - w, 0, hp * kh - h)).reshape(b, c, hp, kh, wp, kw)
        if self.max_pool:
            return t.amax(dim=(3, 5))
        if not self.recombine:
            return t.mean(dim=(3, 5))
        # space-to-channels in pixel-unshuffle order (channel c * kh * kw + i * kw + j); a shrunk
        # window uses the conv_d weights of the positions that exist, as if zero-padded.
        t = t.permute(0, 1, 3, 5, 2, 4).reshape(b, c * kh * kw, hp, wp)
        weight = self.conv_d.weight.reshape(c, c, self.window_size, self.window_size)
        weight = weight[:, :, :kh, :kw].reshape(c, c * kh * kw, 1, 1)
        return F.conv2d(t, weight.to(t.dtype))

    def pcsa_gate(self, x: torch.Tensor) -> torch.Tensor:
        """The channel gate (b, c, 1, 1) of ``x``, in the compute dtype."""
        dtype = compute_dtype(x)
        b, c = x.shape[0], x.shape[1]
        y = self.down_sample(x).to(dtype)  # (b, c, h', w')
        y = group_norm(y, 1, self.norm.weight, self.norm.bias, self.norm.eps, dtype)
        n = y.shape[2] * y.shape[3]
        q = dw_conv1x1(y, self.q.weight, self.q.bias).reshape(
            b, self.head_num, self.head_dim, n
        )  # (b, heads, c/heads, n)
        k = dw_conv1x1(y, self.k.weight, self.k.bias).reshape(b, self.head_num, self.head_dim, n)
        v = dw_conv1x1(y, self.v.weight, self.v.bias).reshape(b, self.head_num, self.head_dim, n)
        attn = (q @ k.transpose(-2, -1)) * self.scaler  # (b, heads, c/heads, c/heads)
        # softmax in at least float32: under autocast the product above comes out in half precision
        attn = attn.to(torch.promote_types(attn.dtype, torch.float32)).softmax(dim=-1)
        attn = self.attn_drop(attn.to(v.dtype))
        o = (attn @ v).reshape(b, c, n)  # (b, c, n)
        g = o.mean(dim=2).reshape(b, c, 1, 1).to(dtype)
        return g.softmax(dim=1) if self.ca_softmax else g.sigmoid()


# ----------------------------------------------------------------------------------------------
# public blocks


class SMSA(_SMSAMixin):
    """Shareable multi-semantic spatial attention, the first half of SCSA.

    Si et al., arXiv 2407.05128. ``out = x * a_h * a_w``. Parameter names as in SCSA.
    """

    __constants__ = _SMSA_CONSTANTS

    def __init__(
        self,
        dim: int,
        group_kernel_sizes: Sequence[int] = (3, 5, 7, 9),
        gate_layer: str = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _check_dim(dim)
        self.dim = dim
        self._init_smsa(dim, group_kernel_sizes, gate_layer, {"device": device, "dtype": dtype})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.dim, "SMSA")
        a_h, a_w = self.smsa_gates(x)
        return x * a_h.to(x.dtype).unsqueeze(-1) * a_w.to(x.dtype).unsqueeze(-2)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, group_kernel_sizes={self.group_kernel_sizes}"


class PCSA(_PCSAMixin):
    """Progressive channel-wise self-attention, the second half of SCSA.

    Si et al., arXiv 2407.05128. ``out = x * gate(x)`` with a per-channel gate from a C×C
    self-attention over pooled tokens. Parameter names as in SCSA.
    """

    __constants__ = _PCSA_CONSTANTS

    def __init__(
        self,
        dim: int,
        head_num: int = 1,
        window_size: int = 7,
        qkv_bias: bool = False,
        down_sample_mode: str = "avg_pool",
        attn_drop_ratio: float = 0.0,
        gate_layer: str = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        # GroupNorm(1, dim) alone would accept any dim; the rule is kept uniform with SCSA.
        _check_dim(dim, head_num)
        self.dim = dim
        self._init_pcsa(
            dim,
            head_num,
            window_size,
            qkv_bias,
            down_sample_mode,
            attn_drop_ratio,
            gate_layer,
            {"device": device, "dtype": dtype},
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.dim, "PCSA")
        return x * self.pcsa_gate(x).to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, head_num={self.head_num}, window_size={self.window_size}, "
            f"down_sample_mode={self.down_sample_mode!r}"
        )


class SCSA(_SMSAMixin, _PCSAMixin):
    """Spatial and Channel Synergistic Attention (Si et al., arXiv 2407.05128).

    A (B, C, H, W) -> (B, C, H, W) block: SMSA, then PCSA. Keyword-compatible with the released
    code, with the released ``state_dict`` keys. ``device``/``dtype`` make it a timm ``attn_layer``.

    Args:
        dim: channels C; a multiple of 4 and of ``head_num``.
        head_num: heads of the channel self-attention.
        window_size: PCSA pooling window; -1 pools globally to 1×1.
        group_kernel_sizes: odd 1-D kernel of each of the four channel groups.
        qkv_bias: bias of the depth-wise q, k, v projections.
        down_sample_mode: ``"avg_pool"``, ``"max_pool"`` or ``"recombination"``.
        attn_drop_ratio: dropout on the C×C attention matrix.
        gate_layer: ``"sigmoid"`` or ``"softmax"`` for both gates.
        inplace: where no autograd graph is recorded, write the output over the input's memory
            (as ``nn.ReLU(inplace=True)``; the fast path on contiguous float32/float64 maps): for a
            caller that no longer needs the input, one full-size allocation less. The backbones of
            :mod:`scsa.models` set it; training and anything that needs a gradient are unaffected.
    """

    __constants__ = _SMSA_CONSTANTS + _PCSA_CONSTANTS

    def __init__(
        self,
        dim: int,
        head_num: int = 1,
        window_size: int = 7,
        group_kernel_sizes: Sequence[int] = (3, 5, 7, 9),
        qkv_bias: bool = False,
        down_sample_mode: str = "avg_pool",
        attn_drop_ratio: float = 0.0,
        gate_layer: str = "sigmoid",
        inplace: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _check_dim(dim, head_num)
        self.dim = dim
        self.inplace = bool(inplace)
        factory = {"device": device, "dtype": dtype}
        self._init_smsa(dim, group_kernel_sizes, gate_layer, factory)
        self._init_pcsa(
            dim, head_num, window_size, qkv_bias, down_sample_mode, attn_drop_ratio, gate_layer, factory
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.dim, "SCSA")
        # the fast path (same numbers, less time and memory) wherever it applies. Two ifs: TorchScript
        # skips the body of `if not is_scripting()` but would compile both operands of an `and`.
        if not torch.jit.is_scripting():
            if _scsa_fast.applies(x):
                return _scsa_fast.scsa_forward(self, x)
            if _scsa_compile.applies(self, x):  # torch.compile: one custom operator per block
                params = _scsa_compile.block_params(self)
                if params is not None:
                    return _scsa_compile.call(self, x, params)
        return self.forward_plain(x)

    @torch.jit.unused
    def describe_path(self, x: torch.Tensor) -> str:
        """Which code computes ``self(x)`` now, in words: ``"plain definition (<why>)"`` or
        ``"fast path, C module, one call"`` / ``"..., separate passes"`` / ``"fast path, PyTorch ops,
        row matmuls"`` / ``"..., generic"``. For diagnostics and tests; the numbers are the same."""
        return _scsa_fast.path_name(self, x)

    def forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """The readable definition (spec steps 1-10) that the fast path must reproduce."""
        a_h, a_w = self.smsa_gates(x)  # (b, c, h), (b, c, w)
        x_s = x * a_h.to(x.dtype).unsqueeze(-1) * a_w.to(x.dtype).unsqueeze(-2)  # (b, c, h, w)
        gate = self.pcsa_gate(x_s)  # (b, c, 1, 1)
        return x_s * gate.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, head_num={self.head_num}, window_size={self.window_size}, "
            f"group_kernel_sizes={self.group_kernel_sizes}, down_sample_mode={self.down_sample_mode!r}"
            + (", inplace=True" if self.inplace else "")
        )


_scsa_compile.set_block_type(SCSA)
