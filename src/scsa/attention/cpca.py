"""Channel Prior Convolutional Attention (CPCA).

Huang et al., "Channel prior convolutional attention for medical image segmentation",
Computers in Biology and Medicine 2024, https://arxiv.org/abs/2306.05196

A 1×1 conv + GELU, then channel attention gives the "channel prior" ``F_c = CA(F) ⊗ F``; a multi-scale
depth-wise module (a 5×5 conv, then three strip-conv pairs 1×7/7×1, 1×11/11×1, 1×21/21×1, summed with
their input) and a 1×1 conv give the spatial attention map, ``out = conv1×1(SA(F_c) ⊗ F_c)``.

This follows the released code (``RepBlock`` of CPCANet), which is surprising in three places, all
kept so that released weights load and give the same numbers:

* the channel gate is ``σ(MLP(avg)) + σ(MLP(max))``, a sum of two sigmoids in (0, 2), not
  ``σ(MLP(avg) + MLP(max))`` as in CBAM; the MLP (C → C/4 → C, ReLU) has biases;
* one and the same 1×1 conv (``conv``) is applied three times: at the input, to make the spatial
  attention map, and to mix channels at the output;
* the spatial "attention" map is not gated: it is the 1×1 conv's raw output.

Depth-wise kernels up to 21 are zero-padded, so any H, W ≥ 1 works.
"""

from __future__ import annotations

import torch
from torch import nn

from scsa.attention._layers import LayerSpec, check_input, check_int, create_act

__all__ = ["CPCA"]


class _ChannelPrior(nn.Module):
    """CPCA's channel attention: the sum of the sigmoid gates of the average and the max descriptor."""

    def __init__(self, channels: int, hidden: int, dd: dict) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True, **dd)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True, **dd)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g_avg = torch.sigmoid(self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))))
        g_max = torch.sigmoid(self.fc2(self.act(self.fc1(x.amax((2, 3), keepdim=True)))))
        return g_avg + g_max  # (b, c, 1, 1), in (0, 2)


class CPCA(nn.Module):
    """Channel Prior Convolutional Attention (Huang et al., CBM 2024, arXiv 2306.05196).

    Args:
        channels: channels C of the input.
        reduction: ratio of the channel-attention MLP; hidden width ``max(1, C // reduction)`` (4).
        act_layer: activation after the input 1×1 conv (GELU).
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 4,
        act_layer: LayerSpec = "gelu",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        check_int("channels", channels)
        check_int("reduction", reduction)
        c = channels
        self.channels = channels
        self.ca = _ChannelPrior(c, max(1, c // reduction), dd)
        self.dconv5_5 = nn.Conv2d(c, c, 5, padding=2, groups=c, **dd)
        self.dconv1_7 = nn.Conv2d(c, c, (1, 7), padding=(0, 3), groups=c, **dd)
        self.dconv7_1 = nn.Conv2d(c, c, (7, 1), padding=(3, 0), groups=c, **dd)
        self.dconv1_11 = nn.Conv2d(c, c, (1, 11), padding=(0, 5), groups=c, **dd)
        self.dconv11_1 = nn.Conv2d(c, c, (11, 1), padding=(5, 0), groups=c, **dd)
        self.dconv1_21 = nn.Conv2d(c, c, (1, 21), padding=(0, 10), groups=c, **dd)
        self.dconv21_1 = nn.Conv2d(c, c, (21, 1), padding=(10, 0), groups=c, **dd)
        self.conv = nn.Conv2d(c, c, 1, **dd)
        self.act = create_act(act_layer, "act_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels, "CPCA")
        x = self.act(self.conv(x))
        f_c = self.ca(x) * x  # the channel prior
        x0 = self.dconv5_5(f_c)
        x1 = self.dconv7_1(self.dconv1_7(x0))
        x2 = self.dconv11_1(self.dconv1_11(x0))
        x3 = self.dconv21_1(self.dconv1_21(x0))
        attn = self.conv(x0 + x1 + x2 + x3)  # spatial attention map (no gate, as released)
        return self.conv(attn * f_c)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.ca.fc1.out_channels}"
