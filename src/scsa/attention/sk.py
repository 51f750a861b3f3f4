"""Selective Kernel attention (SK).

Li et al., "Selective Kernel Networks", CVPR 2019, https://arxiv.org/abs/1903.06586

Split: M = 2 grouped convolutions with different receptive fields (3×3, and 5×5 realised as a 3×3
with dilation 2, as in the paper), each with BatchNorm and ReLU. Fuse: ``U = Σ U_i``, global average
pooling, ``z = ReLU(norm(W s))`` with ``d = max(C / r, L)`` (r = 16, L = 32). Select: a softmax across
the M paths of ``A_i z`` for every channel, ``V = Σ a_i ⊗ U_i``. Used here as a C → C attention block
(the paper uses it in place of the 3×3 conv of a ResNeXt bottleneck, G = 32 groups). ``groups=None``
(the default) takes G = 32 where it divides C and otherwise the largest divisor of C below 32, so the
block builds on every width of SCSA's backbones (MobileNetV2's 144 → 24).

Deliberate difference from the paper and timm's ``SelectiveKernel``: the norm after the squeeze
``W s`` acts on a pooled (B, d, 1, 1) map; BatchNorm there cannot train with batch 1, so it is a
one-group GroupNorm by default (a per-sample LayerNorm over d). ``attn_norm_layer="batchnorm"``
restores the paper's choice; the tests compare that configuration with timm's module. The path norms
stay BatchNorm, as in the paper: like every BatchNorm of the backbone, they cannot train on a single
1×1 map (batch 1, H = W = 1), where PyTorch raises a ValueError; pass ``norm_layer="groupnorm"`` if
that case matters.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from scsa.attention._layers import (
    LayerSpec,
    check_input,
    check_int,
    check_odd,
    create_act,
    create_norm,
    fit_groups,
)

__all__ = ["SelectiveKernel"]


class SelectiveKernel(nn.Module):
    """Selective Kernel attention (Li et al., CVPR 2019, arXiv 1903.06586).

    Args:
        channels: channels C of the input.
        kernel_sizes: receptive field of each path (odd, at least 2 paths).
        groups: groups G of the path convolutions, a divisor of C. ``None`` means the paper's G = 32
            where it divides C, else the largest divisor of C below 32; an explicit G that does not
            divide C is a ValueError.
        reduction: r of ``d = max(C // r, min_attn_channels)``.
        min_attn_channels: L, the lower bound of d.
        dilate: realise a k×k field as a 3×3 conv with dilation (k - 1) / 2 (the paper's choice).
        act_layer: activation of the paths and of the squeeze (ReLU).
        norm_layer: norm of the paths (BatchNorm).
        attn_norm_layer: norm after the squeeze (one-group GroupNorm; the paper uses BatchNorm).
    """

    def __init__(
        self,
        channels: int,
        kernel_sizes: Sequence[int] = (3, 5),
        groups: int | None = None,
        reduction: int = 16,
        min_attn_channels: int = 32,
        dilate: bool = True,
        act_layer: LayerSpec = "relu",
        norm_layer: LayerSpec = "batchnorm",
        attn_norm_layer: LayerSpec = "groupnorm",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        check_int("channels", channels)
        groups = fit_groups(
            "groups",
            groups,
            32,
            channels,
            f"channels={channels} must be a multiple of groups (grouped convs)",
        )
        check_int("reduction", reduction)
        check_int("min_attn_channels", min_attn_channels)
        kernel_sizes = tuple(kernel_sizes)
        if len(kernel_sizes) < 2:
            raise ValueError(f"kernel_sizes must name at least 2 paths, got kernel_sizes={kernel_sizes!r}")
        for k in kernel_sizes:
            # a dilated 3×3 needs k >= 3 to have a dilation >= 1
            check_odd("every kernel size in kernel_sizes", k, minimum=3 if dilate else 1)
        self.channels = channels
        self.groups = groups
        self.num_paths = len(kernel_sizes)
        self.kernel_sizes = kernel_sizes
        self.paths = nn.ModuleList()
        for k in kernel_sizes:
            kernel, dilation = (3, (k - 1) // 2) if dilate else (k, 1)
            padding = dilation * (kernel - 1) // 2
            conv = nn.Conv2d(
                channels,
                channels,
                kernel,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=False,
                **dd,
            )
            norm = create_norm(norm_layer, channels, **dd)
            self.paths.append(nn.Sequential(OrderedDict(conv=conv, norm=norm, act=create_act(act_layer))))
        attn_channels = max(channels // reduction, min_attn_channels)
        self.fc_reduce = nn.Conv2d(channels, attn_channels, 1, bias=False, **dd)
        self.attn_norm = create_norm(attn_norm_layer, attn_channels, arg_name="attn_norm_layer", **dd)
        self.attn_act = create_act(act_layer)
        self.fc_select = nn.Conv2d(attn_channels, channels * self.num_paths, 1, bias=False, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels, "SelectiveKernel")
        b, c = x.shape[0], x.shape[1]
        feats = []
        for path in self.paths:
            feats.append(path(x))
        u = torch.stack(feats, dim=1)  # split: (b, m, c, h, w)
        s = u.sum(1).mean((2, 3), keepdim=True)  # fuse: (b, c, 1, 1)
        z = self.attn_act(self.attn_norm(self.fc_reduce(s)))  # (b, d, 1, 1)
        a = self.fc_select(z).view(b, self.num_paths, c, 1, 1).softmax(dim=1)  # select: (b, m, c, 1, 1)
        return (u * a).sum(1)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, kernel_sizes={self.kernel_sizes}, groups={self.groups}, "
            f"attn_channels={self.fc_reduce.out_channels}"
        )
