"""The "no attention" block, so that ``attention="none"`` builds a plain backbone through the same code."""

from __future__ import annotations

import torch
from torch import nn


class NoAttention(nn.Identity):
    """Identity that accepts (and ignores) the zoo's constructor arguments."""

    def __init__(self, channels: int | None = None, *args, device=None, dtype=None, **kwargs) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
