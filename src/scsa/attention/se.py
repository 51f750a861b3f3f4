"""Squeeze-and-Excitation (SE).

Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018, https://arxiv.org/abs/1709.01507

Global average pooling ("squeeze"), a two-layer bottleneck with reduction ``r = 16`` and a sigmoid
("excitation"), then a per-channel rescale of the input. The two fully connected layers are 1×1
convolutions with biases, laid out as timm's ``SEModule`` (``fc1``, ``fc2``), so timm SE weights load.
The bottleneck is ``max(1, C // r)`` wide; timm's default rounds it to a multiple of 8 instead.
"""

from __future__ import annotations

import torch
from torch import nn

from scsa.attention._layers import LayerSpec, check_input, check_int, create_act

__all__ = ["SqueezeExcite"]


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation block (Hu et al., CVPR 2018, arXiv 1709.01507).

    Args:
        channels: channels C of the input.
        reduction: bottleneck ratio r; the hidden width is ``max(1, C // r)``.
        rd_channels: the hidden width, overriding ``reduction``.
        act_layer: activation of the bottleneck (ReLU in the paper).
        gate_layer: gate on the excitation (sigmoid in the paper).
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        rd_channels: int | None = None,
        act_layer: LayerSpec = "relu",
        gate_layer: LayerSpec = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        check_int("channels", channels)
        check_int("reduction", reduction)
        if rd_channels is None:
            rd_channels = max(1, channels // reduction)
        check_int("rd_channels", rd_channels)
        self.channels = channels
        self.fc1 = nn.Conv2d(channels, rd_channels, 1, bias=True, **dd)
        self.act = create_act(act_layer, "act_layer")
        self.fc2 = nn.Conv2d(rd_channels, channels, 1, bias=True, **dd)
        self.gate = create_act(gate_layer, "gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels, "SqueezeExcite")
        s = x.mean((2, 3), keepdim=True)  # squeeze: (b, c, 1, 1)
        e = self.gate(self.fc2(self.act(self.fc1(s))))  # excitation: (b, c, 1, 1)
        return x * e

    def extra_repr(self) -> str:
        return f"channels={self.channels}, rd_channels={self.fc1.out_channels}"
