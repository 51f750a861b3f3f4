"""Efficient Channel Attention (ECA).

Wang et al., "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks",
CVPR 2020, https://arxiv.org/abs/1910.03151

Global average pooling, then a 1-D convolution across the channel axis (no bias) and a sigmoid:
local cross-channel interaction with no dimensionality reduction. The kernel size adapts to C as in
the paper and its released code, ``t = int(|(log2(C) + b) / gamma|)``, made odd by adding 1 when
even, with ``gamma = 2, b = 1`` (C = 64 → 3, C = 256 → 5). timm's ``EcaModule`` additionally
clamps the kernel to at least 3; the two agree for C >= 8 and differ below (here k = 1 for C < 8).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from scsa.attention._layers import LayerSpec, check_input, check_int, check_odd, check_positive, create_act

__all__ = ["ECA", "eca_kernel_size"]


def eca_kernel_size(channels: int, gamma: float = 2.0, beta: float = 1.0) -> int:
    """The paper's adaptive kernel size ψ(C) = |log2(C)/γ + b/γ|, rounded to an odd integer."""
    t = int(abs((math.log2(channels) + beta) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """Efficient Channel Attention (Wang et al., CVPR 2020, arXiv 1910.03151).

    Args:
        channels: channels C of the input; sets the adaptive kernel size.
        kernel_size: an odd kernel size overriding the adaptive one.
        gamma, beta: the mapping ψ(C) of the paper (γ = 2, b = 1).
        gate_layer: gate on the channel weights (sigmoid in the paper).
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int | None = None,
        gamma: float = 2.0,
        beta: float = 1.0,
        gate_layer: LayerSpec = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_int("channels", channels)
        check_positive("gamma", gamma)
        if isinstance(beta, bool) or not isinstance(beta, int | float):
            raise ValueError(f"beta must be a number, got beta={beta!r}")
        if kernel_size is None:
            kernel_size = eca_kernel_size(channels, gamma, beta)
        check_odd("kernel_size", kernel_size)
        self.channels = channels
        self.conv = nn.Conv1d(
            1, 1, kernel_size, padding=kernel_size // 2, bias=False, device=device, dtype=dtype
        )
        self.gate = create_act(gate_layer, "gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels, "ECA")
        b, c = x.shape[0], x.shape[1]
        y = x.mean((2, 3)).view(b, 1, c)  # channels become the 1-D sequence: (b, 1, c)
        y = self.gate(self.conv(y))  # (b, 1, c)
        return x * y.view(b, c, 1, 1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.conv.kernel_size[0]}"
