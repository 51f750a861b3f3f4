"""SCConv: spatial and channel reconstruction.

Li et al., "SCConv: Spatial and Channel Reconstruction Convolution for Feature Redundancy",
CVPR 2023, https://openaccess.thecvf.com/content/CVPR2023/html/Li_SCConv_Spatial_and_Channel_Reconstruction_Convolution_for_Feature_Redundancy_CVPR_2023_paper.html
(no arXiv version, no released code).

SRU (spatial reconstruction unit): ``W = σ(GN(X) · γ / Σγ)``; weights above the threshold (0.5)
become 1 in ``W1`` and 0 in ``W2``, the others are kept; ``X1 = W1 ⊗ X``, ``X2 = W2 ⊗ X``, and the
halves are cross-added, ``[X11 + X22, X12 + X21]``.
CRU (channel reconstruction unit): split the channels α : 1 − α (α = 1/2), squeeze each part with a
1×1 conv (ratio r = 2); the upper part goes through a group-wise k×k conv (2 groups, k = 3) plus a
point-wise conv, the lower part through a point-wise conv concatenated with its own input; the two
C-channel results are fused with the paper's "simplified SK": for every channel a softmax over the
two pooled descriptors, ``Y = β1 Y1 + β2 Y2``.

Written from the paper's equations. Differences from the widely copied unofficial code: there the
fuse softmax runs over all 2C pooled values at once (weights summing to 1 over 2C channels, not per
channel as the paper's ``β1 + β2 = 1``), and some versions gate with hard 0/1 masks, which leaves the
GroupNorm's parameters without gradient. The GroupNorm's group count is not given in the paper; 16
is the unofficial code's SRU default. ``norm_groups=None`` (the default) takes 16 where it divides C
and otherwise the largest divisor of C below 16 (C = 24 → 12); ``conv_groups=None`` takes the paper's
2 where it divides both C and the squeezed upper part, else 1; so the block builds on every width of
SCSA's backbones. The γ / Σγ normalisation is the paper's; it is ill-conditioned
if the GroupNorm weights sum to about 0. Convolutions have no biases (none in the paper's parameter
count).

Numerics: since γ / Σγ is about 1 / C, the SRU's weights all lie within a few 1e-3 of the threshold, so
for float16 / bfloat16 inputs the gate (GroupNorm, reweighting, sigmoid, threshold) is computed in
float32; in half precision the split into informative and redundant parts would be rounding noise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from scsa.attention._layers import (
    check_divisible,
    check_input,
    check_int,
    check_odd,
    check_open_unit,
    compute_dtype,
    fit_groups,
)

__all__ = ["SCConv"]


class SCConv(nn.Module):
    """SCConv, spatial + channel reconstruction units (Li et al., CVPR 2023).

    Args:
        channels: channels C of the input (even, a multiple of ``norm_groups`` and ``conv_groups``).
        norm_groups: groups of the SRU's GroupNorm, a divisor of C. ``None`` means 16 where it divides C,
            else the largest divisor of C below 16; an explicit value that does not divide C is a
            ValueError.
        gate_threshold: SRU threshold separating informative from redundant weights.
        alpha: CRU split ratio of the upper part.
        squeeze_ratio: CRU squeeze ratio r.
        conv_groups: groups of the CRU's group-wise convolution, a divisor of C and of the squeezed
            upper part ``int(alpha * C) // squeeze_ratio``. ``None`` means the paper's 2 where it fits,
            else 1; an explicit value that does not fit is a ValueError.
        conv_kernel_size: kernel of the CRU's group-wise convolution.
    """

    def __init__(
        self,
        channels: int,
        norm_groups: int | None = None,
        gate_threshold: float = 0.5,
        alpha: float = 0.5,
        squeeze_ratio: int = 2,
        conv_groups: int | None = None,
        conv_kernel_size: int = 3,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        c = check_int("channels", channels)
        check_divisible(c, 2, "2 (the SRU cross-adds the two halves)")
        norm_groups = fit_groups(
            "norm_groups", norm_groups, 16, c, f"channels={c} must be a multiple of norm_groups"
        )
        check_open_unit("gate_threshold", gate_threshold)  # a sigmoid weight
        check_open_unit("alpha", alpha)
        check_int("squeeze_ratio", squeeze_ratio)
        check_odd("conv_kernel_size", conv_kernel_size)
        up = int(alpha * c)
        low = c - up
        up_sq, low_sq = up // squeeze_ratio, low // squeeze_ratio
        if up_sq < 1 or low_sq < 1:
            raise ValueError(
                f"both CRU parts must keep a channel after the squeeze: channels={c}, alpha={alpha} and "
                f"squeeze_ratio={squeeze_ratio} give {up_sq} and {low_sq}"
            )
        conv_groups = fit_groups(
            "conv_groups",
            conv_groups,
            2,
            math.gcd(up_sq, c),
            f"conv_groups must divide the squeezed upper part ({up_sq} channels) and channels={c}",
        )
        self.channels = c
        self.gate_threshold = float(gate_threshold)
        self.up_channels = up
        self.low_channels = low
        # SRU
        self.gn = nn.GroupNorm(norm_groups, c, **dd)
        # CRU
        k = conv_kernel_size
        self.squeeze1 = nn.Conv2d(up, up_sq, 1, bias=False, **dd)
        self.squeeze2 = nn.Conv2d(low, low_sq, 1, bias=False, **dd)
        self.gwc = nn.Conv2d(up_sq, c, k, padding=k // 2, groups=conv_groups, bias=False, **dd)
        self.pwc1 = nn.Conv2d(up_sq, c, 1, bias=False, **dd)
        self.pwc2 = nn.Conv2d(low_sq, c - low_sq, 1, bias=False, **dd)

    def sru(self, x: torch.Tensor) -> torch.Tensor:
        """Spatial reconstruction unit: separate by the GroupNorm's γ, then cross-reconstruct."""
        # γ / Σγ is about 1 / C, so every weight sits within a few 1e-3 of the 0.5 threshold; in half
        # precision the gate decisions would be mostly rounding noise, hence float32 for them.
        dtype = compute_dtype(x)
        gamma = self.gn.weight.to(dtype)
        beta = self.gn.bias.to(dtype)
        w_gamma = (gamma / gamma.sum()).view(1, -1, 1, 1)  # W_γ = γ_i / Σ_j γ_j
        gn_x = F.group_norm(x.to(dtype), self.gn.num_groups, gamma, beta, self.gn.eps)
        w = torch.sigmoid(gn_x * w_gamma)  # (b, c, h, w)
        informative = w > self.gate_threshold
        w1 = w.masked_fill(informative, 1.0).to(x.dtype)  # informative weights
        w2 = w.masked_fill(informative, 0.0).to(x.dtype)  # non-informative weights
        x1, x2 = w1 * x, w2 * x
        half = self.channels // 2
        x11, x12 = x1[:, :half], x1[:, half:]
        x21, x22 = x2[:, :half], x2[:, half:]
        return torch.cat((x11 + x22, x12 + x21), dim=1)

    def cru(self, x: torch.Tensor) -> torch.Tensor:
        """Channel reconstruction unit: split, transform, fuse."""
        up, low = torch.split(x, [self.up_channels, self.low_channels], dim=1)
        up, low = self.squeeze1(up), self.squeeze2(low)
        y1 = self.gwc(up) + self.pwc1(up)  # rich features: (b, c, h, w)
        y2 = torch.cat((self.pwc2(low), low), dim=1)  # reused features: (b, c, h, w)
        s = torch.stack((y1.mean((2, 3), keepdim=True), y2.mean((2, 3), keepdim=True)))  # (2, b, c, 1, 1)
        beta = s.softmax(dim=0)  # per channel, β1 + β2 = 1
        return beta[0] * y1 + beta[1] * y2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels, "SCConv")
        return self.cru(self.sru(x))

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, up_channels={self.up_channels}, gate_threshold={self.gate_threshold}"
        )
