"""Shuffle Attention (SA).

Zhang and Yang, "SA-Net: Shuffle Attention for Deep Convolutional Neural Networks", ICASSP 2021,
https://arxiv.org/abs/2102.00240

The channels are cut into G groups (G = 64 in the paper); each group is halved. One half gets a
channel gate ``σ(w_c · AvgPool(x) + b_c)``, the other a spatial gate ``σ(w_s · GN(x) + b_s)`` with a
per-channel GroupNorm; the halves are concatenated and a channel shuffle with 2 groups mixes the
information across groups. Only ``4 · C / (2G)`` affine parameters plus the GroupNorm.

Parameter names follow the released code (``cweight``, ``cbias``, ``sweight``, ``sbias``, ``gn``),
including its initialisation (weights 0, biases 1), so its checkpoints load as they are.
C must be divisible by 2G: with G = 64 that means C % 128 == 0, which holds where the paper puts
the block (after the last 1×1 conv of a bottleneck, C ≥ 256) but not on 64-channel maps; pass a
smaller ``groups`` there.
"""

from __future__ import annotations

import torch
from torch import nn

from scsa.attention._layers import check_divisible, check_input, check_int

__all__ = ["ShuffleAttention"]


class ShuffleAttention(nn.Module):
    """Shuffle Attention (Zhang and Yang, ICASSP 2021, arXiv 2102.00240).

    Args:
        channels: channels C of the input; a multiple of ``2 * groups``.
        groups: number of channel groups G.
    """

    def __init__(
        self,
        channels: int,
        groups: int = 64,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        check_int("channels", channels)
        check_int("groups", groups)
        check_divisible(channels, 2 * groups, f"2 * groups = {2 * groups} (each group is halved)")
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
