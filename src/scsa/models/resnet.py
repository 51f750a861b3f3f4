"""ResNet and ResNeXt with an attention block in every residual block: SCSA's backbones.

SCSA: Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
https://arxiv.org/abs/2407.05128. ResNet: He et al., https://arxiv.org/abs/1512.03385.
ResNeXt: Xie et al., https://arxiv.org/abs/1611.05431.

Laid out like torchvision's ``resnet.py``: the top-level children are ``conv1, bn1, relu, maxpool,
layer1..layer4, avgpool, fc`` in forward order, so torchvision's ``IntermediateLayerGetter`` and
``BackboneWithFPN`` take the model as it is, and every parameter outside the attention blocks has
torchvision's name, so a torchvision state dict loads 1:1. Each block's attention is its child
``attn``; with ``attention="none"`` it is an identity without parameters and the network is
torchvision's, number for number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from scsa.attention._layers import check_int
from scsa.attention.identity import NoAttention
from scsa.models._common import (
    AttentionSpec,
    ResidualBlock,
    check_drop_rate,
    check_position,
    check_stem,
    init_backbone_,
    inplace_attention,
    make_attention,
)

__all__ = ["BasicBlock", "Bottleneck", "ResNet"]


class BasicBlock(ResidualBlock):
    """ResNet basic block (two 3×3 convs) with an attention block, for ResNet-18/34.

    SCSA (Si et al., https://arxiv.org/abs/2407.05128) sits after conv1 → bn1 → ReLU and before conv2
    (``attention_position="mid"``); ``"post"`` puts the block after bn2, before the residual add,
    where SENet puts it.
    """

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        attention: AttentionSpec = "none",
        attention_kwargs: Mapping[str, Any] | None = None,
        attention_position: str = "mid",
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(
                f"BasicBlock supports only groups=1 and base_width=64, got groups={groups}, base_width={base_width}"
            )
        self.attn_mid = check_position(attention_position) == "mid"
        attn = inplace_attention(make_attention(attention, planes, attention_kwargs))
        # children registered in forward order, so that printing the block reads like its forward
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        if self.attn_mid:
            self.attn = attn
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if not self.attn_mid:
            self.attn = attn
        self.downsample = downsample
        self.stride = stride

    def _has_attention(self) -> bool:
        return not isinstance(self.attn, NoAttention)

    def _forward_impl(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        if self.attn_mid:
            out = self.attn(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        if self.attn_mid:
            out += identity
        else:
            # out-of-place: the attention may have saved its output for its own backward
            out = self.attn(out) + identity
        return self.relu(out)


class Bottleneck(ResidualBlock):
    """ResNet bottleneck (1×1, 3×3, 1×1 convs) with an attention block, for ResNet-50/101/152 and ResNeXt.

    SCSA (Si et al., https://arxiv.org/abs/2407.05128) sits on the middle channels after conv2 → bn2
    → ReLU and before conv3 (``attention_position="mid"``); ``"post"`` puts the block after bn3, before
    the residual add, where SENet puts it. Stride on the 3×3 conv (torchvision's "ResNet v1.5").
    """

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        attention: AttentionSpec = "none",
        attention_kwargs: Mapping[str, Any] | None = None,
        attention_position: str = "mid",
    ) -> None:
        super().__init__()
        self.attn_mid = check_position(attention_position) == "mid"
        width = int(planes * (base_width / 64.0)) * groups
        outplanes = planes * self.expansion
        attn = inplace_attention(
            make_attention(attention, width if self.attn_mid else outplanes, attention_kwargs)
        )
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        if self.attn_mid:
            self.attn = attn
        self.conv3 = nn.Conv2d(width, outplanes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(outplanes)
        if not self.attn_mid:
            self.attn = attn
        self.downsample = downsample
        self.stride = stride

    def _has_attention(self) -> bool:
        return not isinstance(self.attn, NoAttention)

    def _forward_impl(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)
        if self.attn_mid:
            out = self.attn(out)
        out = self.conv3(out)
        out = self.bn3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        if self.attn_mid:
            out += identity
        else:
            # out-of-place: the attention may have saved its output for its own backward
            out = self.attn(out) + identity
        return self.relu(out)


def adopt_block(block: nn.Module, attn: nn.Module, attention_position: str) -> BasicBlock | Bottleneck:
    """Our block built from the modules of a torchvision ``BasicBlock``/``Bottleneck`` (shared, not copied).

    torchvision's child names are kept, so the state dict keeps its keys and gains ``attn.*``.
    """
    mid = check_position(attention_position) == "mid"
    bottleneck = hasattr(block, "conv3")
    cls = Bottleneck if bottleneck else BasicBlock
    if bottleneck:
        names = ["conv1", "bn1", "conv2", "bn2", "relu", "conv3", "bn3"]
    else:
        names = ["conv1", "bn1", "relu", "conv2", "bn2"]
    names.insert(names.index("relu") + 1 if mid else len(names), "attn")
    children = {**dict(block.named_children()), "attn": inplace_attention(attn)}
    new = cls.__new__(cls)
    nn.Module.__init__(new)
    new.attn_mid = mid
    for name in names:
        setattr(new, name, children[name])
    new.downsample = block.downsample
    new.stride = block.stride
    new.train(block.training)
    return new


class ResNet(nn.Module):
    """ResNet / ResNeXt with an attention block in every residual block (SCSA's backbones).

    Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
    https://arxiv.org/abs/2407.05128. Every block of every stage carries one attention; the stem and
    the head carry none. Top-level children ``conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc``
    in forward order; timm-style ``feature_info``, ``forward_features``, ``forward_head``,
    ``get_classifier`` and ``reset_classifier``.

    Args:
        block: :class:`BasicBlock` (ResNet-18/34) or :class:`Bottleneck`.
        layers: blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-50.
        num_classes: classifier outputs; 0 leaves the head as an identity (pooled features).
        attention: zoo name (``"scsa"``, ``"se"``, ..., ``"none"``) or ``f(channels, **kwargs)``.
        attention_kwargs: keyword arguments of every attention block.
        attention_position: ``"mid"`` (the paper's place) or ``"post"`` (before the residual add).
        in_chans: input channels.
        stem: ``"imagenet"`` (7×7 stride-2 conv and max-pool) or ``"cifar"`` (3×3 stride-1 conv, no pool).
        groups, width_per_group: ResNeXt cardinality and width (Bottleneck only).
        zero_init_residual: zero the last BN of every block, as torchvision optionally does.
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        attention: AttentionSpec = "none",
        attention_kwargs: Mapping[str, Any] | None = None,
        attention_position: str = "mid",
        in_chans: int = 3,
        stem: str = "imagenet",
        groups: int = 1,
        width_per_group: int = 64,
        zero_init_residual: bool = False,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"layers must give the blocks of 4 stages, got {layers!r}")
        for n in layers:
            check_int("every entry of layers", n, 1)
        self.num_classes = check_int("num_classes", num_classes, 0)
        check_int("in_chans", in_chans, 1)
        check_int("groups", groups, 1)
        check_int("width_per_group", width_per_group, 1)
        self.attention_position = check_position(attention_position)
        self.stem = check_stem(stem)
        self.drop_rate = check_drop_rate(drop_rate)
        block_kwargs = dict(
            groups=groups,
            base_width=width_per_group,
            attention=attention,
            attention_kwargs=attention_kwargs,
            attention_position=attention_position,
        )

        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, 64, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_chans, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        # the CIFAR stem keeps the child (as an identity) so the children stay torchvision's
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
        self._inplanes = 64
        self.layer1 = self._make_layer(block, 64, layers[0], 1, block_kwargs)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, block_kwargs)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, block_kwargs)
        self.layer4 = self._make_layer(block, 512, layers[3], 2, block_kwargs)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = 512 * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

        r = 2 if stem == "imagenet" else 1
        self.feature_info = [dict(num_chs=64, reduction=r, module="relu")]
        for i in range(4):
            reduction = 2 * r * 2**i if stem == "imagenet" else r * 2**i
            self.feature_info.append(
                dict(num_chs=64 * 2**i * block.expansion, reduction=reduction, module=f"layer{i + 1}")
            )

        init_backbone_(self, [blk.attn for blk in self.blocks()])
        if zero_init_residual:
            for blk in self.blocks():
                nn.init.zeros_((blk.bn3 if isinstance(blk, Bottleneck) else blk.bn2).weight)

    def _make_layer(
        self, block: type[BasicBlock] | type[Bottleneck], planes: int, n: int, stride: int, kwargs: dict
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self._inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        blocks = [block(self._inplanes, planes, stride, downsample, **kwargs)]
        self._inplanes = planes * block.expansion
        blocks += [block(self._inplanes, planes, **kwargs) for _ in range(1, n)]
        return nn.Sequential(*blocks)

    def blocks(self) -> list[nn.Module]:
        """All residual blocks, stage by stage."""
        return [blk for layer in (self.layer1, self.layer2, self.layer3, self.layer4) for blk in layer]

    def has_attention(self) -> bool:
        return any(not isinstance(blk.attn, NoAttention) for blk in self.blocks())

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh classifier for ``num_classes`` outputs (0: identity). Only average pooling exists."""
        if global_pool not in (None, "avg"):
            raise ValueError(f"only global_pool='avg' is supported, got {global_pool!r}")
        self.num_classes = check_int("num_classes", num_classes, 0)
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
