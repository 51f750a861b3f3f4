"""MobileNetV2 with an attention block in every inverted residual: SCSA's mobile backbone.

SCSA: Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
https://arxiv.org/abs/2407.05128. MobileNetV2: Sandler et al., https://arxiv.org/abs/1801.04381.

Laid out like torchvision's ``mobilenetv2.py`` (``features.N``, ``classifier.1``, each block's
``conv`` sequence with the same indices), so a torchvision state dict loads 1:1. The attention is
appended to the block's depth-wise stage (``features.N.conv.K.3``, the paper's place: after the
3×3 depth-wise conv → BN → ReLU6, on the hidden channels, before the 1×1 projection) or, with
``attention_position="post"``, to the end of ``conv`` (after the projection's BN, before the
residual add). With ``attention="none"`` nothing is added and the network is torchvision's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from scsa.attention._layers import check_int
from scsa.models._common import (
    AttentionSpec,
    ResidualBlock,
    check_drop_rate,
    check_position,
    check_stem,
    init_backbone_,
    inplace_attention,
    is_none_attention,
    make_attention,
)

__all__ = ["InvertedResidual", "MobileNetV2"]

# t (expansion), c (output channels), n (blocks), s (stride of the first block); the paper's table 2
_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round ``v`` to a multiple of ``divisor`` without going down by more than 10% (as torchvision)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _conv_bn_act(inp: int, oup: int, kernel_size: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    # a plain Sequential with torchvision's Conv2dNormActivation indices: 0 conv, 1 BN, 2 ReLU6
    return nn.Sequential(
        nn.Conv2d(inp, oup, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(ResidualBlock):
    """MobileNetV2 inverted residual with an attention block on its hidden channels.

    SCSA (Si et al., https://arxiv.org/abs/2407.05128) follows the depth-wise conv → BN → ReLU6 and
    precedes the 1×1 projection (``attention_position="mid"``, appended to the depth-wise stage);
    ``"post"`` appends it after the projection's BN, before the residual add.
    """

    def __init__(
        self,
        inp: int,
        oup: int,
        stride: int,
        expand_ratio: int,
        attention: AttentionSpec = "none",
        attention_kwargs: Mapping[str, Any] | None = None,
        attention_position: str = "mid",
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        mid = check_position(attention_position) == "mid"
        hidden = round(inp * expand_ratio)
        self.stride = stride
        self.use_res_connect = stride == 1 and inp == oup
        self.out_channels = oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_act(inp, hidden, 1))
        dw = _conv_bn_act(hidden, hidden, 3, stride, groups=hidden)
        layers += [dw, nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        # where the attention lives inside this block (torchvision's indices stay as they are)
        self.attn_path = None
        if not is_none_attention(attention):
            attn = inplace_attention(make_attention(attention, hidden if mid else oup, attention_kwargs))
            if mid:
                dw.append(attn)
                self.attn_path = f"conv.{layers.index(dw)}.{len(dw) - 1}"
            else:
                layers.append(attn)
                self.attn_path = f"conv.{len(layers) - 1}"
        self.conv = nn.Sequential(*layers)

    def attention(self) -> nn.Module | None:
        """The block's attention module (``None`` without one)."""
        return None if self.attn_path is None else self.get_submodule(self.attn_path)

    def _has_attention(self) -> bool:
        return self.attn_path is not None

    def _forward_impl(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 with an attention block in every inverted residual (SCSA's mobile backbone).

    Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
    https://arxiv.org/abs/2407.05128. The stem (``features.0``), the last 1×1 conv (``features.18``)
    and the head carry no attention. torchvision's layout and names; timm-style ``feature_info``
    (the last block of each resolution, as timm's ``mobilenetv2_100``), ``forward_features``,
    ``forward_head``, ``get_classifier`` and ``reset_classifier``.

    Args:
        num_classes: classifier outputs; 0 leaves the head as an identity (pooled features).
        width_mult: width multiplier of every layer (channels rounded to multiples of 8).
        attention: zoo name (``"scsa"``, ``"se"``, ..., ``"none"``) or ``f(channels, **kwargs)``.
        attention_kwargs: keyword arguments of every attention block.
        attention_position: ``"mid"`` (the paper's place) or ``"post"`` (before the residual add).
        in_chans: input channels.
        stem: ``"imagenet"`` (stride-2 first conv) or ``"cifar"`` (stride 1, for 32×32 inputs).
        drop_rate: dropout before the classifier (torchvision's 0.2).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        attention: AttentionSpec = "none",
        attention_kwargs: Mapping[str, Any] | None = None,
        attention_position: str = "mid",
        in_chans: int = 3,
        stem: str = "imagenet",
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__()
        if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or not width_mult > 0:
            raise ValueError(f"width_mult must be a number > 0, got {width_mult!r}")
        self.num_classes = check_int("num_classes", num_classes, 0)
        check_int("in_chans", in_chans, 1)
        self.width_mult = float(width_mult)
        self.attention_position = check_position(attention_position)
        self.stem = check_stem(stem)
        self.drop_rate = check_drop_rate(drop_rate)

        inp = make_divisible(32 * width_mult)
        self.num_features = make_divisible(1280 * max(1.0, width_mult))
        reduction = 2 if stem == "imagenet" else 1
        features: list[nn.Module] = [_conv_bn_act(in_chans, inp, 3, stride=reduction)]
        self.feature_info = []
        for i, (t, c, n, s) in enumerate(_SETTINGS):
            oup = make_divisible(c * width_mult)
            for j in range(n):
                stride = s if j == 0 else 1
                features.append(
                    InvertedResidual(inp, oup, stride, t, attention, attention_kwargs, attention_position)
                )
                inp = oup
            reduction *= s
            # a stage ends a resolution when the next one downsamples (or nothing follows)
            if i + 1 == len(_SETTINGS) or _SETTINGS[i + 1][3] == 2:
                self.feature_info.append(
                    dict(num_chs=oup, reduction=reduction, module=f"features.{len(features) - 1}")
                )
        features.append(_conv_bn_act(inp, self.num_features, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(
            nn.Dropout(p=self.drop_rate),
            nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity(),
        )
        init_backbone_(
            self, [a for blk in self.blocks() if (a := blk.attention()) is not None], linear_std=0.01
        )

    def blocks(self) -> list[InvertedResidual]:
        """All inverted residual blocks, in order."""
        return [m for m in self.features if isinstance(m, InvertedResidual)]

    def has_attention(self) -> bool:
        return any(blk.attn_path is not None for blk in self.blocks())

    def get_classifier(self) -> nn.Module:
        return self.classifier[1]

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh classifier for ``num_classes`` outputs (0: identity). Only average pooling exists."""
        if global_pool not in (None, "avg"):
            raise ValueError(f"only global_pool='avg' is supported, got {global_pool!r}")
        self.num_classes = check_int("num_classes", num_classes, 0)
        self.classifier[1] = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        if pre_logits:
            return x
        return self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
