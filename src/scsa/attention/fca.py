"""FcaNet multi-spectral channel attention (FCA).

Qin et al., "FcaNet: Frequency Channel Attention Networks", ICCV 2021, https://arxiv.org/abs/2012.11879

SE with a richer squeeze: global average pooling is the lowest DCT frequency, so the channels are
split into ``n`` parts and each part is squeezed with its own 2-D DCT basis function (``n`` = 16 of
the paper's ranked 7×7 frequencies, "top16"); then the SE bottleneck (bias-free, r = 16, ReLU) and a
sigmoid. The channel parts must be equal, so C must be a multiple of ``n``; ``freq_sel_method=None``
(the default) takes the paper's "top16" where 16 divides C and otherwise "top8", "top4", … (the
largest power of two that does), so the block builds on every width of SCSA's backbones (C = 24, a
MobileNetV2 stage output, → "top8").

Shapes: the DCT filters are fixed at construction on a ``dct_size`` grid (default 7×7, the paper's
frequency space); a map of any other size is first adaptively average-pooled to that grid, exactly as
the released code does whenever the map differs from its configured size (maps smaller than 7 are
upsampled by repetition). The released ImageNet models set ``dct_size`` to each stage's map size
(56, 28, 14, 7) and scale the frequency indices by ``dct_size // 7``; pass ``dct_size=56`` etc. for
that. The filters are a non-persistent buffer (derived, not learned), so they are not in the state
dict.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from scsa.attention._layers import check_input, check_int

__all__ = ["FCA", "dct_filters"]

# The paper's ranking of the 7×7 DCT frequencies (u, v) for the three selection schemes.
_FREQ_U = {
    "top": [0, 0, 6, 0, 0, 1, 1, 4, 5, 1, 3, 0, 0, 0, 3, 2, 4, 6, 3, 5, 5, 2, 6, 5, 5, 3, 3, 4, 2, 2, 6, 1],
    "low": [0, 0, 1, 1, 0, 2, 2, 1, 2, 0, 3, 4, 0, 1, 3, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4],
    "bot": [6, 1, 3, 3, 2, 4, 1, 2, 4, 4, 5, 1, 4, 6, 2, 5, 6, 1, 6, 2, 2, 4, 3, 3, 5, 5, 6, 2, 5, 5, 3, 6],
}
_FREQ_V = {
    "top": [0, 1, 0, 5, 2, 0, 2, 0, 0, 6, 0, 4, 6, 3, 5, 2, 6, 3, 3, 3, 5, 1, 1, 2, 4, 2, 1, 1, 3, 0, 5, 3],
    "low": [0, 1, 0, 1, 2, 0, 1, 2, 2, 3, 0, 0, 4, 3, 1, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3],
    "bot": [6, 4, 4, 6, 6, 3, 1, 4, 4, 5, 6, 5, 2, 2, 5, 1, 4, 3, 5, 0, 3, 1, 1, 2, 4, 2, 1, 1, 5, 3, 3, 3],
}
_FREQ_METHODS = tuple(f"{s}{n}" for s in ("top", "low", "bot") for n in (1, 2, 4, 8, 16, 32))


def _dct_1d(n: int, freq: int) -> torch.Tensor:
    """Orthonormal DCT-II basis function ``freq`` sampled at ``n`` points, in float64."""
    pos = torch.arange(n, dtype=torch.float64)
    basis = torch.cos(math.pi * freq * (pos + 0.5) / n) / math.sqrt(n)
    return basis * math.sqrt(2.0) if freq > 0 else basis


def dct_filters(channels: int, height: int, width: int, freq_sel_method: str = "top16") -> torch.Tensor:
    """The (C, H, W) float64 DCT filters of FcaNet: channel part ``i`` gets the ``i``-th frequency."""
    scheme, num = freq_sel_method[:3], int(freq_sel_method[3:])
    # frequencies are ranked on a 7×7 grid; (2, 2) on 14×14 is (1, 1) on 7×7, hence the scaling
    us = [u * (height // 7) for u in _FREQ_U[scheme][:num]]
    vs = [v * (width // 7) for v in _FREQ_V[scheme][:num]]
    part = channels // num
    filt = torch.zeros(channels, height, width, dtype=torch.float64)
    for i, (u, v) in enumerate(zip(us, vs)):
        filt[i * part : (i + 1) * part] = torch.outer(_dct_1d(height, u), _dct_1d(width, v))
    return filt


class FCA(nn.Module):
    """Multi-spectral channel attention of FcaNet (Qin et al., ICCV 2021, arXiv 2012.11879).

    Args:
        channels: channels C of the input.
        reduction: SE bottleneck ratio; hidden width ``max(1, C // reduction)``.
        freq_sel_method: ``"top"``, ``"low"`` or ``"bot"`` followed by the number of frequencies n
            (1, 2, 4, 8, 16 or 32), a divisor of C. ``None`` means the paper's ``"top16"`` where 16
            divides C, else ``"top{n}"`` with the largest n < 16 that does; an explicit method whose
            n does not divide C is a ValueError.
        dct_size: side (or (H, W)) of the DCT grid, at least 7; inputs of another size are pooled to it.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        freq_sel_method: str | None = None,
        dct_size: int | tuple[int, int] = 7,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        check_int("channels", channels)
        check_int("reduction", reduction)
        if freq_sel_method is None:
            freq_sel_method = "top" + str(max(n for n in (1, 2, 4, 8, 16) if channels % n == 0))
        if freq_sel_method not in _FREQ_METHODS:
            raise ValueError(f"freq_sel_method must be one of {_FREQ_METHODS}, got {freq_sel_method!r}")
        num_freq = int(freq_sel_method[3:])
        if channels % num_freq:
            raise ValueError(
                f"freq_sel_method={freq_sel_method!r} does not fit: channels={channels} must be a multiple of "
                f"its number of frequencies {num_freq} (one equal channel part per frequency); pass "
                "freq_sel_method=None for the largest 'top' method that does"
            )
        dct_h, dct_w = (dct_size, dct_size) if isinstance(dct_size, int) else tuple(dct_size)
        check_int("dct_size (height)", dct_h, minimum=7)
        check_int("dct_size (width)", dct_w, minimum=7)
        self.channels = channels
        self.dct_h = dct_h
        self.dct_w = dct_w
        self.freq_sel_method = freq_sel_method
        filt = dct_filters(channels, dct_h, dct_w, freq_sel_method)
        self.register_buffer(
            "dct_filter", filt.to(device=device, dtype=dtype or torch.get_default_dtype()), persistent=False
        )
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden, bias=False, **dd)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, channels, bias=False, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.channels, "FCA")
        b, c, h, w = x.shape
        y = x
        # under capture (FX proxies, traced size tensors) always pool: at the filter's own size the
        # adaptive pooling is the identity, exactly, and a branch would freeze the example's size
        if not (isinstance(h, int) and isinstance(w, int) and h == self.dct_h and w == self.dct_w):
            y = F.adaptive_avg_pool2d(x, (self.dct_h, self.dct_w))
        y = (y * self.dct_filter).sum((2, 3))  # multi-spectral squeeze: (b, c)
        g = torch.sigmoid(self.fc2(self.act(self.fc1(y))))  # (b, c)
        return x * g.view(b, c, 1, 1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, freq_sel_method={self.freq_sel_method!r}, dct_size=({self.dct_h}, {self.dct_w})"
