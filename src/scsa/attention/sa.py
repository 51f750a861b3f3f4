"""Shuffle Attention (SA).

Zhang and Yang, "SA-Net: Shuffle Attention for Deep Convolutional Neural Networks", ICASSP 2021,
https://arxiv.org/abs/2102.00240

The channels are cut into G groups (G = 64 in the paper); each group is halved. One half gets a
channel gate ``σ(w_c · AvgPool(x) + b_c)``, the other a spatial gate ``σ(w_s · GN(x) + b_s)`` with a
per-channel GroupNorm; the halves are concatenated and a channel shuffle with 2 groups mixes the
information across groups. Only ``4 · C / (2G)`` affine parameters plus the GroupNorm.

Parameter names follow the released code (``cweight``, ``cbias``, ``sweight``, ``sbias``, ``gn``),
including its initialisation (weights 0, biases 1), so its checkpoints load as they are.
C must be a multiple of 2G. With the paper's G = 64 that means C % 128 == 0, which holds where SA-Net
puts the block (after the last 1×1 conv of a bottleneck, C ≥ 256) but not on most widths of SCSA's
backbones (64, 96, 144, 576, …); so ``groups=None`` (the default) takes G = 64 where it fits and
otherwise the largest G < 64 with C % 2G == 0 (C = 64 → 32, C = 96 → 48, C = 144 → 36).
"""

from __future__ import annotations

import torch
from torch import nn

from scsa.attention._layers import check_input, check_int, fit_groups

__all__ = ["ShuffleAttention"]


class ShuffleAttention(nn.Module):
    """Shuffle Attention (Zhang and Yang, ICASSP 2021, arXiv 2102.00240).

    Args:
        channels: channels C of the input; even.
        groups: number of channel groups G; C must be a multiple of 2G. ``None`` means the paper's
            G = 64 where it fits, else the largest G < 64 that fits; an explicit G that does not fit
            is a ValueError.
    """

    def __init__(
        self,
        channels: int,
        groups: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        check_int("channels", channels)
        if channels % 2:
            raise ValueError(f"channels must be even (every group is halved), got channels={channels}")
        groups = fit_groups(
            "groups", groups, 64, channels // 2, f"channels={channels} must be a multiple of 2 * groups"
        )
        self.channels = channels
        self.groups = groups
        half = channels // (2 * groups)
        self.cweight = nn.Parameter(torch.zeros(1, half, 1, 1, **dd))
        self.cbias = nn.Parameter(torch.ones(1, half, 1, 1, **dd))
        self.sweight = nn.Parameter(torch.zeros(1, half, 1, 1, **dd))
        self.sbias = nn.Parameter(torch.ones(1, half, 1, 1, **dd))
        self.gn = nn.GroupNorm(half, half, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels, "ShuffleAttention")
        b, c, h, w = x.shape
        x = x.reshape(b * self.groups, c // self.groups, h, w)  # (b·g, c/g, h, w)
        x_c, x_s = x.chunk(2, dim=1)  # (b·g, c/2g, h, w) each
        x_c = x_c * torch.sigmoid(self.cweight * x_c.mean((2, 3), keepdim=True) + self.cbias)  # channel gate
        x_s = x_s * torch.sigmoid(self.sweight * self.gn(x_s) + self.sbias)  # spatial gate
        out = torch.cat((x_c, x_s), dim=1).reshape(b, c, h, w)
        # channel shuffle with 2 groups: channel i of the second half lands next to channel i of the first
        return out.reshape(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, groups={self.groups}"
