"""Efficient Multi-scale Attention (EMA).

Ouyang et al., "Efficient Multi-Scale Attention Module with Cross-Spatial Learning", ICASSP 2023,
https://arxiv.org/abs/2305.13563

The channels are folded into G groups (``factor`` = 32 in the paper), each handled as its own
sample. Per group, two parallel branches: a 1×1 branch (coordinate-attention-like strips along H and
W through one shared 1×1 conv, sigmoid gates, GroupNorm) and a 3×3 branch. Cross-spatial learning:
each branch's globally pooled, soft-maxed channel descriptor is matrix-multiplied with the other
branch's map, the two spatial maps are summed and a sigmoid gives the weight of every pixel.

Parameter names (``gn``, ``conv1x1``, ``conv3x3``) follow the released code. C must be a multiple of
G; the released code only checks C // G > 0 and fails later in a reshape. SCSA's backbones have
widths that the paper's G = 32 does not divide (MobileNetV2's 144, 48, 80, …), so ``factor=None``
(the default) takes G = 32 where it fits and otherwise the largest G < 32 dividing C (144 → 24).
"""

from __future__ import annotations

import torch
from torch import nn

from scsa.attention._layers import check_input, check_int, fit_groups

__all__ = ["EMA"]


class EMA(nn.Module):
    """Efficient Multi-scale Attention (Ouyang et al., ICASSP 2023, arXiv 2305.13563).

    Args:
        channels: channels C of the input.
        factor: number of channel groups G, a divisor of C. ``None`` means the paper's G = 32 where it
            divides C, else the largest divisor of C below 32; an explicit G that does not divide C is
            a ValueError.
    """

    def __init__(
        self,
        channels: int,
        factor: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        check_int("channels", channels)
        factor = fit_groups(
            "factor", factor, 32, channels, f"channels={channels} must be a multiple of factor"
        )
        self.channels = channels
        self.groups = factor
        cg = channels // factor
        self.gn = nn.GroupNorm(cg, cg, **dd)
        self.conv1x1 = nn.Conv2d(cg, cg, 1, **dd)
        self.conv3x3 = nn.Conv2d(cg, cg, 3, padding=1, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels, "EMA")
        b, c, h, w = x.shape
        bg, cg = b * self.groups, c // self.groups
        g = x.reshape(bg, cg, h, w)  # every group is its own sample: (b·g, c/g, h, w)
        # 1×1 branch: strips along both axes through one shared 1×1 conv, then sigmoid gates
        x_h = g.mean(3, keepdim=True)  # (b·g, c/g, h, 1)
        x_w = g.mean(2, keepdim=True).transpose(2, 3)  # (b·g, c/g, w, 1)
        hw = self.conv1x1(torch.cat((x_h, x_w), dim=2))
        a_h, a_w = torch.split(hw, [h, w], dim=2)
        x1 = self.gn(g * a_h.sigmoid() * a_w.transpose(2, 3).sigmoid())  # (b·g, c/g, h, w)
        # 3×3 branch
        x2 = self.conv3x3(g)  # (b·g, c/g, h, w)
        # cross-spatial learning: each branch's pooled channel descriptor weights the other's map
        d1 = x1.mean((2, 3)).softmax(dim=-1).unsqueeze(1)  # (b·g, 1, c/g)
        d2 = x2.mean((2, 3)).softmax(dim=-1).unsqueeze(1)  # (b·g, 1, c/g)
        weights = d1 @ x2.reshape(bg, cg, h * w) + d2 @ x1.reshape(bg, cg, h * w)  # (b·g, 1, h·w)
        return (g * weights.reshape(bg, 1, h, w).sigmoid()).reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, factor={self.groups}"
