"""Convolutional Block Attention Module (CBAM).

Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018, https://arxiv.org/abs/1807.06521

Channel attention, then spatial attention, each a multiplicative gate:

* channel: ``M_c = σ(MLP(AvgPool(x)) + MLP(MaxPool(x)))`` with one shared bias-free MLP C → C/r → C
  (r = 16, ReLU), as in the paper's equation;
* spatial: ``M_s = σ(f7×7([mean_c(x'); max_c(x')]))`` on the channel-refined ``x' = x * M_c``.

Deliberate difference from the released code (and timm's ``CbamModule``): they follow the 7×7 conv
with a BatchNorm on the one-channel map; the paper's equation has none, and a BatchNorm there cannot
train on a 1×1 map with batch 1. ``spatial_norm_layer="batchnorm"`` restores it (the tests compare
that configuration with timm's module).
"""

from __future__ import annotations

import torch
from torch import nn

from scsa.attention._layers import LayerSpec, check_input, check_int, check_odd, create_act, create_norm

__all__ = ["CBAM"]


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al., ECCV 2018, arXiv 1807.06521).

    Args:
        channels: channels C of the input.
        reduction: ratio r of the shared channel MLP; its hidden width is ``max(1, C // r)``.
        spatial_kernel_size: odd kernel of the spatial convolution (7 in the paper).
        mlp_bias: biases in the channel MLP (the paper's equation has none).
        act_layer: activation of the channel MLP (ReLU).
        gate_layer: gate of both attention maps (sigmoid).
        spatial_norm_layer: norm after the spatial convolution; ``None`` as in the paper.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        spatial_kernel_size: int = 7,
        mlp_bias: bool = False,
        act_layer: LayerSpec = "relu",
        gate_layer: LayerSpec = "sigmoid",
        spatial_norm_layer: LayerSpec = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        check_int("channels", channels)
        check_int("reduction", reduction)
        check_odd("spatial_kernel_size", spatial_kernel_size)
        rd_channels = max(1, channels // reduction)
        self.channels = channels
        # channel attention: one MLP shared by the average- and the max-pooled descriptor
        self.fc1 = nn.Conv2d(channels, rd_channels, 1, bias=mlp_bias, **dd)
        self.act = create_act(act_layer, "act_layer")
        self.fc2 = nn.Conv2d(rd_channels, channels, 1, bias=mlp_bias, **dd)
        # spatial attention: [mean; max] over channels -> one k×k conv
        k = spatial_kernel_size
        self.spatial_conv = nn.Conv2d(2, 1, k, padding=k // 2, bias=False, **dd)
        self.spatial_norm = create_norm(spatial_norm_layer, 1, arg_name="spatial_norm_layer", **dd)
        self.gate = create_act(gate_layer, "gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels, "CBAM")
        f_avg = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))  # (b, c, 1, 1)
        f_max = self.fc2(self.act(self.fc1(x.amax((2, 3), keepdim=True))))  # (b, c, 1, 1)
        x = x * self.gate(f_avg + f_max)  # x' = M_c ⊗ x
        s = torch.cat((x.mean(1, keepdim=True), x.amax(1, keepdim=True)), dim=1)  # (b, 2, h, w)
        return x * self.gate(self.spatial_norm(self.spatial_conv(s)))  # M_s ⊗ x'

    def extra_repr(self) -> str:
        return f"channels={self.channels}, rd_channels={self.fc1.out_channels}"
