"""Coordinate Attention (CA).

Hou et al., "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021,
https://arxiv.org/abs/2103.02907

Average-pool along W and along H separately (two direction-aware strips), encode both strips with
one shared 1×1 conv (C → ``max(8, C // 32)``), BatchNorm and h-swish, split them again and turn
each into a gate with its own 1×1 conv and a sigmoid: ``out = x * a_h * a_w``. Defaults, layer names
(``conv1``, ``bn1``, ``conv_h``, ``conv_w``) and conv biases follow the released code, so timm's
``CoordAttn`` built with ``bias=True`` and the same ``rd_channels`` loads these weights as they are.

The BatchNorm normalises the (B, mip, H + W, 1) strips; with batch 1 it still sees H + W ≥ 2 values
per channel, so training works at any H, W ≥ 1.
"""

from __future__ import annotations

import torch
from torch import nn

from scsa.attention._layers import LayerSpec, check_input, check_int, create_act, create_norm

__all__ = ["CoordAttention"]


class CoordAttention(nn.Module):
    """Coordinate Attention (Hou et al., CVPR 2021, arXiv 2103.02907).

    Args:
        channels: channels C of the input.
        reduction: the hidden width is ``max(min_channels, C // reduction)`` (32 in the paper).
        min_channels: lower bound of the hidden width (8).
        act_layer: activation after the shared encoder (h-swish).
        norm_layer: norm after the shared encoder (BatchNorm).
        gate_layer: gate of both directions (sigmoid).
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 32,
        min_channels: int = 8,
        act_layer: LayerSpec = "hardswish",
        norm_layer: LayerSpec = "batchnorm",
        gate_layer: LayerSpec = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        check_int("channels", channels)
        check_int("reduction", reduction)
        check_int("min_channels", min_channels)
        mip = max(min_channels, channels // reduction)
        self.channels = channels
        self.conv1 = nn.Conv2d(channels, mip, 1, bias=True, **dd)
        self.bn1 = create_norm(norm_layer, mip, **dd)
        self.act = create_act(act_layer, "act_layer")
        self.conv_h = nn.Conv2d(mip, channels, 1, bias=True, **dd)
        self.conv_w = nn.Conv2d(mip, channels, 1, bias=True, **dd)
        self.gate = create_act(gate_layer, "gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels, "CoordAttention")
        h, w = x.shape[2], x.shape[3]
        x_h = x.mean(3, keepdim=True)  # pool along W: (b, c, h, 1)
        x_w = x.mean(2, keepdim=True).transpose(2, 3)  # pool along H: (b, c, w, 1)
        y = self.act(self.bn1(self.conv1(torch.cat((x_h, x_w), dim=2))))  # (b, mip, h + w, 1)
        y_h, y_w = torch.split(y, [h, w], dim=2)
        a_h = self.gate(self.conv_h(y_h))  # (b, c, h, 1)
        a_w = self.gate(self.conv_w(y_w.transpose(2, 3)))  # (b, c, 1, w)
        return x * a_h * a_w

    def extra_repr(self) -> str:
        return f"channels={self.channels}, mip={self.conv1.out_channels}"
