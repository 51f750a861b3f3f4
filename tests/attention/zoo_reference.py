"""Literal reference implementations of the zoo's blocks, written from each paper (and, where the
paper leaves a detail open, its released code), for the numeric tests in ``test_zoo.py``.

Plain and obvious on purpose: layouts as in the papers' released code (``nn.Linear`` where they use
it, ``AdaptiveAvgPool2d`` for pooling, one module per path, loops where the paper writes sums), no
shared helpers with the package. ``build_reference(name, block, channels, **kwargs)`` returns the
reference of the block ``name`` configured like ``block`` with ``block``'s weights copied in.
Do not optimise this file.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from oracle import OracleSCSA

# ----------------------------------------------------------------------------------------------
# weight copying


def copy_weights(
    dst: nn.Module,
    src: nn.Module,
    mapping: dict[str, str | tuple[str, int, int]],
    computed: tuple[str, ...] = (),
) -> None:
    """``dst.<key> <- src.<value>`` for every entry, reshaped to the destination's shape.

    A value ``(name, i, n)`` takes the ``i``-th of ``n`` equal chunks of ``src.<name>`` along dim 0.
    Every parameter and buffer of both modules must be named in ``mapping`` (counters aside, and the
    destination's ``computed`` buffers, which it derives itself), so a forgotten weight fails loudly
    instead of staying random.
    """
    dst_state = dict(dst.state_dict())
    src_state = dict(src.state_dict())
    skip = ("num_batches_tracked",)
    used = {v if isinstance(v, str) else v[0] for v in mapping.values()}
    missing_dst = {k for k in dst_state if not k.endswith(skip)} - set(mapping) - set(computed)
    missing_src = {k for k in src_state if not k.endswith(skip)} - used
    assert not missing_dst and not missing_src, f"unmapped: dst {missing_dst}, src {missing_src}"
    with torch.no_grad():
        for d, s in mapping.items():
            if isinstance(s, str):
                value = src_state[s]
            else:
                name, i, n = s
                value = src_state[name].reshape(n, -1)[i]
            dst_state[d].copy_(value.reshape(dst_state[d].shape))


# ----------------------------------------------------------------------------------------------
# SE, CBAM, ECA


class RefSE(nn.Module):
    """Hu et al. 2018: z = F_sq(u) (global average); s = σ(W2 δ(W1 z)); x̃ = s · u."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x):
        b, c, h, w = x.shape
        z = x.view(b, c, h * w).mean(dim=2)
        s = self.fc(z)
        return x * s.view(b, c, 1, 1)


class RefCBAM(nn.Module):
    """Woo et al. 2018, eqs. (2) and (3): Mc = σ(W1(W0(avg)) + W1(W0(max))), Ms = σ(f7×7([avg; max]))."""

    def __init__(self, channels, reduction=16, spatial_kernel_size=7):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.w0 = nn.Linear(channels, hidden, bias=False)
        self.w1 = nn.Linear(hidden, channels, bias=False)
        k = spatial_kernel_size
        self.f = nn.Conv2d(2, 1, k, padding=(k - 1) // 2, bias=False)

    def forward(self, x):
        b, c, _h, _w = x.shape
        f_avg = x.view(b, c, -1).mean(dim=2)
        f_max = x.view(b, c, -1).max(dim=2).values
        mc = torch.sigmoid(self.w1(F.relu(self.w0(f_avg))) + self.w1(F.relu(self.w0(f_max))))
        x1 = x * mc.view(b, c, 1, 1)
        avg = x1.mean(dim=1, keepdim=True)
        mx = x1.max(dim=1, keepdim=True).values
        ms = torch.sigmoid(self.f(torch.cat([avg, mx], dim=1)))
        return x1 * ms


def eca_k(channels, gamma=2, b=1):
    """ψ(C) = |log2(C)/γ + b/γ|_odd, with the released code's rounding (floor, +1 if even)."""
    t = int(abs((math.log(channels, 2) + b) / gamma))
    if t % 2 == 0:
        t = t + 1
    return t


class RefECA(nn.Module):
    """Wang et al. 2020: GAP, 1-D conv of size k across channels, sigmoid."""

    def __init__(self, channels):
        super().__init__()
        k = eca_k(channels)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)

    def forward(self, x):
        y = self.avg_pool(x)  # (b, c, 1, 1)
        y = self.conv(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
        return x * torch.sigmoid(y).expand_as(x)


# ----------------------------------------------------------------------------------------------
# Coordinate attention, shuffle attention, EMA, ELA


class RefCoordAtt(nn.Module):
    """Hou et al. 2021, laid out as the released CoordAtt."""

    def __init__(self, channels, reduction=32):
        super().__init__()
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        mip = max(8, channels // reduction)
        self.conv1 = nn.Conv2d(channels, mip, kernel_size=1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.conv_h = nn.Conv2d(mip, channels, kernel_size=1)
        self.conv_w = nn.Conv2d(mip, channels, kernel_size=1)

    def h_swish(self, x):
        return x * F.relu6(x + 3) / 6

    def forward(self, x):
        _n, _c, h, w = x.size()
        x_h = self.pool_h(x)
        x_w = self.pool_w(x).permute(0, 1, 3, 2)
        y = torch.cat([x_h, x_w], dim=2)
        y = self.h_swish(self.bn1(self.conv1(y)))
        x_h, x_w = torch.split(y, [h, w], dim=2)
        x_w = x_w.permute(0, 1, 3, 2)
        a_h = self.conv_h(x_h).sigmoid()
        a_w = self.conv_w(x_w).sigmoid()
        return x * a_w * a_h


class RefShuffleAttention(nn.Module):
    """Zhang and Yang 2021, laid out as the released sa_layer."""

    def __init__(self, channels, groups=64):
        super().__init__()
        self.groups = groups
        half = channels // (2 * groups)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.cweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.cbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.sweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.sbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.gn = nn.GroupNorm(half, half)

    @staticmethod
    def channel_shuffle(x, groups):
        b, _c, h, w = x.shape
        x = x.reshape(b, groups, -1, h, w)
        x = x.permute(0, 2, 1, 3, 4)
        return x.reshape(b, -1, h, w)

    def forward(self, x):
        b, _c, h, w = x.shape
        x = x.reshape(b * self.groups, -1, h, w)
        x_0, x_1 = x.chunk(2, dim=1)
        xn = self.avg_pool(x_0)
        xn = self.cweight * xn + self.cbias
        xn = x_0 * torch.sigmoid(xn)
        xs = self.gn(x_1)
        xs = self.sweight * xs + self.sbias
        xs = x_1 * torch.sigmoid(xs)
        out = torch.cat([xn, xs], dim=1)
        out = out.reshape(b, -1, h, w)
        return self.channel_shuffle(out, 2)


class RefEMA(nn.Module):
    """Ouyang et al. 2023, laid out as the released EMA."""

    def __init__(self, channels, factor=32):
        super().__init__()
        self.groups = factor
        cg = channels // factor
        self.softmax = nn.Softmax(-1)
        self.agp = nn.AdaptiveAvgPool2d((1, 1))
        self.pool_h = nn.AdaptiveAvgPool2d((None, 1))
        self.pool_w = nn.AdaptiveAvgPool2d((1, None))
        self.gn = nn.GroupNorm(cg, cg)
        self.conv1x1 = nn.Conv2d(cg, cg, kernel_size=1, stride=1, padding=0)
        self.conv3x3 = nn.Conv2d(cg, cg, kernel_size=3, stride=1, padding=1)

    def forward(self, x):
        b, c, h, w = x.size()
        group_x = x.reshape(b * self.groups, -1, h, w)
        x_h = self.pool_h(group_x)
        x_w = self.pool_w(group_x).permute(0, 1, 3, 2)
        hw = self.conv1x1(torch.cat([x_h, x_w], dim=2))
        x_h, x_w = torch.split(hw, [h, w], dim=2)
        x1 = self.gn(group_x * x_h.sigmoid() * x_w.permute(0, 1, 3, 2).sigmoid())
        x2 = self.conv3x3(group_x)
        x11 = self.softmax(self.agp(x1).reshape(b * self.groups, -1, 1).permute(0, 2, 1))
        x12 = x2.reshape(b * self.groups, c // self.groups, -1)
        x21 = self.softmax(self.agp(x2).reshape(b * self.groups, -1, 1).permute(0, 2, 1))
        x22 = x1.reshape(b * self.groups, c // self.groups, -1)
        weights = (torch.matmul(x11, x12) + torch.matmul(x21, x22)).reshape(b * self.groups, 1, h, w)
        return (group_x * weights.sigmoid()).reshape(b, c, h, w)


class RefELA(nn.Module):
    """Xu and Wan 2024, the paper's pseudo-code: one Conv1d and one GroupNorm for both axes."""

    def __init__(self, channels, kernel_size=7, norm_groups=16, conv_groups=None):
        super().__init__()
        groups = channels if conv_groups is None else conv_groups
        self.conv = nn.Conv1d(
            channels, channels, kernel_size=kernel_size, padding=kernel_size // 2, groups=groups, bias=False
        )
        self.gn = nn.GroupNorm(norm_groups, channels)

    def forward(self, x):
        b, c, h, w = x.size()
        x_h = torch.mean(x, dim=3, keepdim=True).view(b, c, h)
        x_w = torch.mean(x, dim=2, keepdim=True).view(b, c, w)
        x_h = torch.sigmoid(self.gn(self.conv(x_h))).view(b, c, h, 1)
        x_w = torch.sigmoid(self.gn(self.conv(x_w))).view(b, c, 1, w)
        return x * x_h * x_w


# ----------------------------------------------------------------------------------------------
# CPCA, FcaNet


class RefCPCA(nn.Module):
    """Huang et al. 2024, laid out as the released RepBlock (one 1×1 conv used three times)."""

    def __init__(self, channels, reduction=4):
        super().__init__()
        c = channels
        hidden = max(1, c // reduction)
        self.ca_fc1 = nn.Conv2d(c, hidden, kernel_size=1, stride=1, bias=True)
        self.ca_fc2 = nn.Conv2d(hidden, c, kernel_size=1, stride=1, bias=True)
        self.dconv5_5 = nn.Conv2d(c, c, kernel_size=5, padding=2, groups=c)
        self.dconv1_7 = nn.Conv2d(c, c, kernel_size=(1, 7), padding=(0, 3), groups=c)
        self.dconv7_1 = nn.Conv2d(c, c, kernel_size=(7, 1), padding=(3, 0), groups=c)
        self.dconv1_11 = nn.Conv2d(c, c, kernel_size=(1, 11), padding=(0, 5), groups=c)
        self.dconv11_1 = nn.Conv2d(c, c, kernel_size=(11, 1), padding=(5, 0), groups=c)
        self.dconv1_21 = nn.Conv2d(c, c, kernel_size=(1, 21), padding=(0, 10), groups=c)
        self.dconv21_1 = nn.Conv2d(c, c, kernel_size=(21, 1), padding=(10, 0), groups=c)
        self.conv = nn.Conv2d(c, c, kernel_size=(1, 1), padding=0)
        self.act = nn.GELU()

    def channel_attention(self, inputs):
        x1 = F.adaptive_avg_pool2d(inputs, output_size=(1, 1))
        x1 = torch.sigmoid(self.ca_fc2(F.relu(self.ca_fc1(x1))))
        x2 = F.adaptive_max_pool2d(inputs, output_size=(1, 1))
        x2 = torch.sigmoid(self.ca_fc2(F.relu(self.ca_fc1(x2))))
        return x1 + x2

    def forward(self, inputs):
        inputs = self.act(self.conv(inputs))
        inputs = self.channel_attention(inputs) * inputs
        x_init = self.dconv5_5(inputs)
        x_1 = self.dconv7_1(self.dconv1_7(x_init))
        x_2 = self.dconv11_1(self.dconv1_11(x_init))
        x_3 = self.dconv21_1(self.dconv1_21(x_init))
        x = x_1 + x_2 + x_3 + x_init
        spatial_att = self.conv(x)
        out = spatial_att * inputs
        return self.conv(out)


FCA_TOP_X = [0, 0, 6, 0, 0, 1, 1, 4, 5, 1, 3, 0, 0, 0, 3, 2, 4, 6, 3, 5, 5, 2, 6, 5, 5, 3, 3, 4, 2, 2, 6, 1]
FCA_TOP_Y = [0, 1, 0, 5, 2, 0, 2, 0, 0, 6, 0, 4, 6, 3, 5, 2, 6, 3, 3, 3, 5, 1, 1, 2, 4, 2, 1, 1, 3, 0, 5, 3]


class RefFCA(nn.Module):
    """Qin et al. 2021, laid out as the released MultiSpectralAttentionLayer ("top" frequencies)."""

    def __init__(self, channels, reduction=16, num_freq=16, dct_h=7, dct_w=7):
        super().__init__()
        self.dct_h, self.dct_w = dct_h, dct_w
        mapper_x = [u * (dct_h // 7) for u in FCA_TOP_X[:num_freq]]
        mapper_y = [v * (dct_w // 7) for v in FCA_TOP_Y[:num_freq]]
        self.register_buffer("weight", self.get_dct_filter(dct_h, dct_w, mapper_x, mapper_y, channels))
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(),
            nn.Linear(hidden, channels, bias=False),
            nn.Sigmoid(),
        )

    @staticmethod
    def build_filter(pos, freq, size):
        result = math.cos(math.pi * freq * (pos + 0.5) / size) / math.sqrt(size)
        return result if freq == 0 else result * math.sqrt(2)

    def get_dct_filter(self, tile_x, tile_y, mapper_x, mapper_y, channel):
        dct_filter = torch.zeros(channel, tile_x, tile_y)
        c_part = channel // len(mapper_x)
        for i, (u_x, v_y) in enumerate(zip(mapper_x, mapper_y)):
            for t_x in range(tile_x):
                for t_y in range(tile_y):
                    value = self.build_filter(t_x, u_x, tile_x) * self.build_filter(t_y, v_y, tile_y)
                    dct_filter[i * c_part : (i + 1) * c_part, t_x, t_y] = value
        return dct_filter

    def forward(self, x):
        n, c, h, w = x.shape
        x_pooled = x
        if h != self.dct_h or w != self.dct_w:
            x_pooled = F.adaptive_avg_pool2d(x, (self.dct_h, self.dct_w))
        y = torch.sum(x_pooled * self.weight, dim=[2, 3])
        y = self.fc(y).view(n, c, 1, 1)
        return x * y.expand_as(x)


# ----------------------------------------------------------------------------------------------
# SK, SCConv, SimAM


class RefSK(nn.Module):
    """Li et al. 2019, eqs. (1)-(6): split into M dilated 3×3 paths, fuse, select with M fcs."""

    def __init__(
        self, channels, kernel_sizes=(3, 5), groups=32, reduction=16, min_attn_channels=32, attn_norm="gn"
    ):
        super().__init__()
        self.m = len(kernel_sizes)
        self.convs = nn.ModuleList()
        for k in kernel_sizes:
            d = (k - 1) // 2
            self.convs.append(
                nn.Sequential(
                    nn.Conv2d(channels, channels, 3, padding=d, dilation=d, groups=groups, bias=False),
                    nn.BatchNorm2d(channels),
                    nn.ReLU(),
                )
            )
        d_attn = max(channels // reduction, min_attn_channels)
        self.fc = nn.Linear(channels, d_attn, bias=False)
        self.bn = nn.GroupNorm(1, d_attn) if attn_norm == "gn" else nn.BatchNorm1d(d_attn)
        self.fcs = nn.ModuleList([nn.Linear(d_attn, channels, bias=False) for _ in range(self.m)])

    def forward(self, x):
        us = [conv(x) for conv in self.convs]
        u = us[0]
        for ui in us[1:]:
            u = u + ui
        s = u.mean(dim=(2, 3))  # (b, c)
        z = F.relu(self.bn(self.fc(s)))  # (b, d)
        logits = torch.stack([fc(z) for fc in self.fcs], dim=0)  # (m, b, c)
        a = torch.softmax(logits, dim=0)
        v = 0
        for i in range(self.m):
            v = v + a[i][:, :, None, None] * us[i]
        return v


class RefSCConv(nn.Module):
    """Li et al. 2023, eqs. (1)-(8) of SRU and CRU."""

    def __init__(
        self, channels, norm_groups=16, gate_threshold=0.5, alpha=0.5, squeeze_ratio=2, conv_groups=2, k=3
    ):
        super().__init__()
        c = channels
        self.t = gate_threshold
        self.gn = nn.GroupNorm(norm_groups, c)
        self.up = int(alpha * c)
        self.low = c - self.up
        up_sq, low_sq = self.up // squeeze_ratio, self.low // squeeze_ratio
        self.squeeze_up = nn.Conv2d(self.up, up_sq, 1, bias=False)
        self.squeeze_low = nn.Conv2d(self.low, low_sq, 1, bias=False)
        self.gwc = nn.Conv2d(up_sq, c, k, padding=k // 2, groups=conv_groups, bias=False)
        self.pwc1 = nn.Conv2d(up_sq, c, 1, bias=False)
        self.pwc2 = nn.Conv2d(low_sq, c - low_sq, 1, bias=False)

    def forward(self, x):
        c = x.shape[1]
        # SRU: W = Gate(σ(W_γ(GN(X)))), eq. (3)
        gamma = self.gn.weight
        w_gamma = gamma / torch.sum(gamma)
        w = torch.sigmoid(self.gn(x) * w_gamma[None, :, None, None])
        w1 = torch.where(w > self.t, torch.ones_like(w), w)
        w2 = torch.where(w > self.t, torch.zeros_like(w), w)
        xw1 = w1 * x
        xw2 = w2 * x
        h = c // 2
        x_sru = torch.cat([xw1[:, :h] + xw2[:, h:], xw1[:, h:] + xw2[:, :h]], dim=1)
        # CRU: split, transform, fuse
        x_up, x_low = x_sru[:, : self.up], x_sru[:, self.up :]
        x_up, x_low = self.squeeze_up(x_up), self.squeeze_low(x_low)
        y1 = self.gwc(x_up) + self.pwc1(x_up)
        y2 = torch.cat([self.pwc2(x_low), x_low], dim=1)
        s1 = y1.mean(dim=(2, 3), keepdim=True)
        s2 = y2.mean(dim=(2, 3), keepdim=True)
        beta1 = torch.exp(s1) / (torch.exp(s1) + torch.exp(s2))
        beta2 = torch.exp(s2) / (torch.exp(s1) + torch.exp(s2))
        return beta1 * y1 + beta2 * y2


class RefSimAM(nn.Module):
    """Yang et al. 2021, eq. (5) with n = H·W − 1 (maps of at least 2 pixels only)."""

    def __init__(self, e_lambda=1e-4):
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x):
        _b, _c, h, w = x.shape
        n = w * h - 1
        d = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
        y = d / (4 * (d.sum(dim=[2, 3], keepdim=True) / n + self.e_lambda)) + 0.5
        return x * torch.sigmoid(y)


# ----------------------------------------------------------------------------------------------
# name -> reference with copied weights


def _ref_se(block, channels, **kw):
    ref = RefSE(channels, **kw)
    copy_weights(
        ref,
        block,
        {
            "fc.0.weight": "fc1.weight",
            "fc.0.bias": "fc1.bias",
            "fc.2.weight": "fc2.weight",
            "fc.2.bias": "fc2.bias",
        },
    )
    return ref


def _ref_cbam(block, channels, **kw):
    ref = RefCBAM(channels, **kw)
    copy_weights(
        ref, block, {"w0.weight": "fc1.weight", "w1.weight": "fc2.weight", "f.weight": "spatial_conv.weight"}
    )
    return ref


def _ref_eca(block, channels, **kw):
    ref = RefECA(channels, **kw)
    copy_weights(ref, block, {"conv.weight": "conv.weight"})
    return ref


def _ref_ca(block, channels, **kw):
    ref = RefCoordAtt(channels, **kw)
    names = ["conv1.weight", "conv1.bias", "conv_h.weight", "conv_h.bias", "conv_w.weight", "conv_w.bias"]
    names += ["bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"]
    copy_weights(ref, block, {n: n for n in names})
    return ref


def _ref_sa(block, channels, **kw):
    ref = RefShuffleAttention(channels, **kw)
    names = ["cweight", "cbias", "sweight", "sbias", "gn.weight", "gn.bias"]
    copy_weights(ref, block, {n: n for n in names})
    return ref


def _ref_ema(block, channels, **kw):
    ref = RefEMA(channels, **kw)
    names = ["gn.weight", "gn.bias", "conv1x1.weight", "conv1x1.bias", "conv3x3.weight", "conv3x3.bias"]
    copy_weights(ref, block, {n: n for n in names})
    return ref


def _ref_ela(block, channels, **kw):
    ref = RefELA(channels, **kw)
    copy_weights(ref, block, {n: n for n in ["conv.weight", "gn.weight", "gn.bias"]})
    return ref


def _ref_cpca(block, channels, **kw):
    ref = RefCPCA(channels, **kw)
    mapping = {"ca_fc1.weight": "ca.fc1.weight", "ca_fc1.bias": "ca.fc1.bias"}
    mapping.update({"ca_fc2.weight": "ca.fc2.weight", "ca_fc2.bias": "ca.fc2.bias"})
    for n in ["dconv5_5", "dconv1_7", "dconv7_1", "dconv1_11", "dconv11_1", "dconv1_21", "dconv21_1", "conv"]:
        mapping[f"{n}.weight"] = f"{n}.weight"
        mapping[f"{n}.bias"] = f"{n}.bias"
    copy_weights(ref, block, mapping)
    return ref


def _ref_fca(block, channels, reduction=16, freq_sel_method="top16", dct_size=7):
    assert freq_sel_method.startswith("top"), "the reference implements the paper's 'top' ranking"
    ref = RefFCA(channels, reduction, int(freq_sel_method[3:]), dct_size, dct_size)
    # the DCT filters are the reference's own (its buffer "weight"), computed with its own loops
    copy_weights(ref, block, {"fc.0.weight": "fc1.weight", "fc.2.weight": "fc2.weight"}, computed=("weight",))
    return ref


def _ref_sk(block, channels, attn_norm_layer="groupnorm", **kw):
    ref = RefSK(channels, attn_norm="gn" if attn_norm_layer == "groupnorm" else "bn", **kw)
    mapping = {"fc.weight": "fc_reduce.weight", "bn.weight": "attn_norm.weight", "bn.bias": "attn_norm.bias"}
    if attn_norm_layer != "groupnorm":
        mapping.update(
            {"bn.running_mean": "attn_norm.running_mean", "bn.running_var": "attn_norm.running_var"}
        )
    for i in range(ref.m):
        mapping[f"convs.{i}.0.weight"] = f"paths.{i}.conv.weight"
        for p in ["weight", "bias", "running_mean", "running_var"]:
            mapping[f"convs.{i}.1.{p}"] = f"paths.{i}.norm.{p}"
    for i in range(ref.m):  # the select fcs are the row blocks of the block's single (M·C, d) conv
        mapping[f"fcs.{i}.weight"] = ("fc_select.weight", i, ref.m)
    copy_weights(ref, block, mapping)
    return ref


def _ref_sc(block, channels, **kw):
    ref = RefSCConv(channels, **kw)
    mapping = {"gn.weight": "gn.weight", "gn.bias": "gn.bias", "squeeze_up.weight": "squeeze1.weight"}
    mapping.update({"squeeze_low.weight": "squeeze2.weight", "gwc.weight": "gwc.weight"})
    mapping.update({"pwc1.weight": "pwc1.weight", "pwc2.weight": "pwc2.weight"})
    copy_weights(ref, block, mapping)
    return ref


def _ref_simam(block, channels, **kw):
    return RefSimAM(**kw)


def _ref_scsa(use_smsa: bool, use_pcsa: bool) -> Callable[..., nn.Module]:
    def build(block, channels, **kw):
        ref = OracleSCSA(channels, use_smsa=use_smsa, use_pcsa=use_pcsa, **kw)
        ref.load_state_dict(block.state_dict())
        return ref

    return build


def _ref_none(block, channels, **kw):
    return nn.Identity()


REFERENCES: dict[str, Callable[..., nn.Module]] = {
    "se": _ref_se,
    "cbam": _ref_cbam,
    "eca": _ref_eca,
    "ca": _ref_ca,
    "sa": _ref_sa,
    "ema": _ref_ema,
    "ela": _ref_ela,
    "cpca": _ref_cpca,
    "fca": _ref_fca,
    "sk": _ref_sk,
    "sc": _ref_sc,
    "simam": _ref_simam,
    "scsa": _ref_scsa(True, True),
    "smsa": _ref_scsa(True, False),
    "pcsa": _ref_scsa(False, True),
    "none": _ref_none,
}


def build_reference(name: str, block: nn.Module, channels: int, **kwargs) -> nn.Module:
    """The literal reference of ``block`` (built as ``create_attention(name, channels, **kwargs)``)."""
    ref = REFERENCES[name](block, channels, **kwargs)
    return ref.train(block.training)
