"""Efficient Local Attention (ELA).

Xu and Wan, "ELA: Efficient Local Attention for Deep Convolutional Neural Networks",
arXiv 2024, https://arxiv.org/abs/2403.01123

Strip pooling along W and along H (as in Coordinate Attention), then one 1-D convolution over each
strip, GroupNorm and a sigmoid: ``out = x * a_h * a_w``, with no channel reduction. As in the paper's
pseudo-code, the same convolution and the same GroupNorm serve both axes. Defaults are the paper's
ELA-B (kernel 7, depth-wise, GroupNorm with 16 groups); the other variants are
ELA-T (``kernel_size=5, norm_groups=32``), ELA-S (``kernel_size=5, conv_groups=C // 8``) and
ELA-L (``kernel_size=7, conv_groups=C // 8``). ``norm_groups=None`` (the default) takes the paper's 16
where it divides C and otherwise the largest divisor of C below 16 (C = 24 → 12, C = 8 → 8), so the
block builds on every width of SCSA's backbones.

timm's ``EfficientLocalAttn`` differs on purpose from the paper: separate convolutions and norms per
axis, GroupNorm with one group, and a SiLU before the sigmoid. The tests check that it matches this
block once configured like the paper (shared weights copied to both axes, 16 groups, no SiLU).
"""

from __future__ import annotations

import torch
from torch import nn

from scsa.attention._layers import (
    LayerSpec,
    check_divisible,
    check_input,
    check_int,
    check_odd,
    create_act,
    fit_groups,
)

__all__ = ["ELA"]


class ELA(nn.Module):
    """Efficient Local Attention (Xu and Wan, arXiv 2403.01123).

    Args:
        channels: channels C of the input; a multiple of ``norm_groups`` and ``conv_groups``.
        kernel_size: odd kernel of the 1-D convolution.
        norm_groups: groups of the GroupNorm, a divisor of C. ``None`` means the paper's 16 where it
            divides C, else the largest divisor of C below 16; an explicit value that does not divide
            C is a ValueError.
        conv_groups: groups of the 1-D convolution; ``None`` means depth-wise (C groups).
        gate_layer: gate of both directions (sigmoid).
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 7,
        norm_groups: int | None = None,
        conv_groups: int | None = None,
        gate_layer: LayerSpec = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        check_int("channels", channels)
        check_odd("kernel_size", kernel_size)
        norm_groups = fit_groups(
            "norm_groups", norm_groups, 16, channels, f"channels={channels} must be a multiple of norm_groups"
        )
        if conv_groups is None:
            conv_groups = channels
        check_int("conv_groups", conv_groups)
        check_divisible(channels, conv_groups, f"conv_groups = {conv_groups}")
        self.channels = channels
        self.conv = nn.Conv1d(
            channels, channels, kernel_size, padding=kernel_size // 2, groups=conv_groups, bias=False, **dd
        )
        self.gn = nn.GroupNorm(norm_groups, channels, **dd)
        self.gate = create_act(gate_layer, "gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels, "ELA")
        x_h = x.mean(3)  # pool along W: (b, c, h)
        x_w = x.mean(2)  # pool along H: (b, c, w)
        a_h = self.gate(self.gn(self.conv(x_h))).unsqueeze(3)  # (b, c, h, 1)
        a_w = self.gate(self.gn(self.conv(x_w))).unsqueeze(2)  # (b, c, 1, w)
        return x * a_h * a_w

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.conv.kernel_size[0]}, groups={self.conv.groups}"
