"""SimAM: a simple, parameter-free attention module.

Yang et al., "SimAM: A Simple, Parameter-Free Attention Module for Convolutional Neural Networks",
ICML 2021, https://proceedings.mlr.press/v139/yang21o.html (no arXiv version).

Each activation is weighted by the sigmoid of its inverse minimal energy,
``1 / e* = (x - μ)² / (4 (σ² + λ)) + 1/2``, where μ and σ² are the mean and variance of its channel
over the map (σ² with the ``n = H·W − 1`` denominator of the paper) and λ = 1e-4.

Difference from the released code: it divides by ``n = H·W − 1``, which is 0 on a 1×1 map and gives
NaN. Here ``n`` is clamped to 1, so a 1×1 map gets the weight sigmoid(1/2) everywhere (the deviation
of a lone pixel from its own mean is 0).
"""

from __future__ import annotations

import torch
from torch import nn

from scsa.attention._layers import check_input, check_int, check_positive, size_at_least

__all__ = ["SimAM"]


class SimAM(nn.Module):
    """SimAM (Yang et al., ICML 2021): parameter-free, energy-based 3-D attention weights.

    Args:
        channels: accepted for the zoo's uniform constructor and checked; SimAM has no parameters.
        e_lambda: the regulariser λ of the energy function.
    """

    def __init__(
        self,
        channels: int | None = None,
        e_lambda: float = 1e-4,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if channels is not None:
            check_int("channels", channels)
        self.channels = -1 if channels is None else channels
        self.e_lambda = check_positive("e_lambda", e_lambda)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels > 0:
            check_input(x, self.channels, "SimAM")
        h, w = x.shape[2], x.shape[3]
        n = size_at_least(
            h * w - 1, 1
        )  # the paper's n = H·W − 1, clamped so that a 1×1 map does not divide by 0
        d = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)  # (x - μ)²: (b, c, h, w)
        var = d.sum(dim=(2, 3), keepdim=True) / n  # σ²: (b, c, 1, 1)
        e_inv = d / (4 * (var + self.e_lambda)) + 0.5  # 1 / e*
        return x * torch.sigmoid(e_inv)

    def extra_repr(self) -> str:
        return f"e_lambda={self.e_lambda}"
