"""The test oracle: a literal, step-by-step implementation of shared/spec/scsa.md.

One line per spec step, no cleverness, modules laid out as in the released code so that
``oracle.load_state_dict(block.state_dict())`` works. Every numeric test of the package compares
against this module. It is deliberately slow and plain; do not optimise it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OracleSCSA(nn.Module):
    def __init__(
        self,
        dim,
        head_num=1,
        window_size=7,
        group_kernel_sizes=(3, 5, 7, 9),
        qkv_bias=False,
        down_sample_mode="avg_pool",
        attn_drop_ratio=0.0,
        gate_layer="sigmoid",
        use_smsa=True,
        use_pcsa=True,
    ):
        super().__init__()
        self.dim = dim
        self.head_num = head_num
        self.head_dim = dim // head_num
        self.scaler = self.head_dim**-0.5
        self.window_size = window_size
        self.down_sample_mode = down_sample_mode
        self.gate_layer = gate_layer
        self.use_smsa = use_smsa
        self.use_pcsa = use_pcsa
        gc = dim // 4
        self.group_chans = gc
        ks = group_kernel_sizes
        if use_smsa:
            self.local_dwc = nn.Conv1d(gc, gc, ks[0], padding=ks[0] // 2, groups=gc)
            self.global_dwc_s = nn.Conv1d(gc, gc, ks[1], padding=ks[1] // 2, groups=gc)
            self.global_dwc_m = nn.Conv1d(gc, gc, ks[2], padding=ks[2] // 2, groups=gc)
            self.global_dwc_l = nn.Conv1d(gc, gc, ks[3], padding=ks[3] // 2, groups=gc)
            self.norm_h = nn.GroupNorm(4, dim)
            self.norm_w = nn.GroupNorm(4, dim)
        if use_pcsa:
            if window_size != -1 and down_sample_mode == "recombination":
                self.conv_d = nn.Conv2d(dim * window_size**2, dim, 1, bias=False)
            else:
                self.conv_d = nn.Identity()
            self.norm = nn.GroupNorm(1, dim)
            self.q = nn.Conv2d(dim, dim, 1, groups=dim, bias=qkv_bias)
            self.k = nn.Conv2d(dim, dim, 1, groups=dim, bias=qkv_bias)
            self.v = nn.Conv2d(dim, dim, 1, groups=dim, bias=qkv_bias)
            self.attn_drop = nn.Dropout(attn_drop_ratio)

    def smsa(self, x):
        b, c, h, w = x.shape
        # 1. pool each axis away
        x_h = x.mean(dim=3)  # (b, c, h)
        x_w = x.mean(dim=2)  # (b, c, w)
        # 2. four groups, each its own depth-wise Conv1d, shared by both axes
        h0, h1, h2, h3 = torch.split(x_h, self.group_chans, dim=1)
        w0, w1, w2, w3 = torch.split(x_w, self.group_chans, dim=1)
        h_cat = torch.cat(
            (self.local_dwc(h0), self.global_dwc_s(h1), self.global_dwc_m(h2), self.global_dwc_l(h3)), dim=1
        )
        w_cat = torch.cat(
            (self.local_dwc(w0), self.global_dwc_s(w1), self.global_dwc_m(w2), self.global_dwc_l(w3)), dim=1
        )
        # 3. GroupNorm and gate
        if self.gate_layer == "softmax":
            a_h = torch.softmax(self.norm_h(h_cat), dim=2)
            a_w = torch.softmax(self.norm_w(w_cat), dim=2)
        else:
            a_h = torch.sigmoid(self.norm_h(h_cat))
            a_w = torch.sigmoid(self.norm_w(w_cat))
        # 4. x_s = x * a_h * a_w
        return x * a_h.view(b, c, h, 1) * a_w.view(b, c, 1, w)

    def down(self, x):
        h, w = x.shape[-2:]
        if self.window_size == -1:
            return F.adaptive_avg_pool2d(x, (1, 1))
        kh = min(self.window_size, h)
        kw = min(self.window_size, w)
        if self.down_sample_mode == "avg_pool":
            return F.avg_pool2d(x, (kh, kw), stride=(kh, kw))
        if self.down_sample_mode == "max_pool":
            return F.max_pool2d(x, (kh, kw), stride=(kh, kw))
        # recombination: zero-pad a map smaller than the window up to one window, crop the rest
        ws = self.window_size
        hp, wp = max(h // ws, 1), max(w // ws, 1)
        x = x[:, :, : hp * ws, : wp * ws]
        x = F.pad(x, (0, wp * ws - x.shape[3], 0, hp * ws - x.shape[2]))
        x = F.pixel_unshuffle(x, ws)  # (b, c * ws * ws, hp, wp)
        return self.conv_d(x)

    def pcsa(self, x_s):
        # 5. progressive compression
        y = self.down(x_s)
        b, c, hp, wp = y.shape
        # 6. GroupNorm(1, C)
        y = self.norm(y)
        # 7. depth-wise 1x1 q, k, v
        q = self.q(y)
        k = self.k(y)
        v = self.v(y)
        # 8. channels are the tokens
        q = q.reshape(b, self.head_num, self.head_dim, hp * wp)
        k = k.reshape(b, self.head_num, self.head_dim, hp * wp)
        v = v.reshape(b, self.head_num, self.head_dim, hp * wp)
        attn = q @ k.transpose(-2, -1) * self.scaler
        attn = attn.softmax(dim=-1)
        attn = self.attn_drop(attn)
        o = attn @ v
        # 9. back to (b, c, h', w'), mean over space, gate
        o = o.reshape(b, c, hp, wp)
        o = o.mean(dim=(2, 3), keepdim=True)
        gate = torch.softmax(o, dim=1) if self.gate_layer == "softmax" else torch.sigmoid(o)
        # 10. output
        return x_s * gate

    def forward(self, x):
        if self.use_smsa:
            x = self.smsa(x)
        if self.use_pcsa:
            x = self.pcsa(x)
        return x
