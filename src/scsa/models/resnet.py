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
from timm.layers import DropPath
from torch import nn
from torch.utils.checkpoint import checkpoint

from scsa.attention._layers import check_int
from scsa.attention.identity import NoAttention
from scsa.models._common import (
    AttentionSpec,
    Freezable,
    NormLayer,
    ResidualBlock,
    check_drop_path_rate,
    check_drop_rate,
    check_global_pool,
    check_norm_layer,
    check_output_stride,
    check_position,
    check_stem,
    drop_path_rates,
    init_backbone_,
    inplace_attention,
    make_attention,
    make_pool,
    set_inplace_attention,
    take_indices,
)

__all__ = ["BasicBlock", "Bottleneck", "ResNet"]


class _ResNetBlock(ResidualBlock):
    """What both ResNet blocks share: the attention's test and the end of the block (post attention,
    stochastic depth, shortcut, add, ReLU)."""

    def _has_attention(self) -> bool:
        return not isinstance(self.attn, NoAttention)

    def _residual(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not self.attn_mid:
            out = self.attn(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        identity = x if self.downsample is None else self.downsample(x)
        if self.attn_mid:
            out += identity
        else:
            # out-of-place: the attention may have saved its output for its own backward
            out = out + identity
        return self.relu(out)


class BasicBlock(_ResNetBlock):
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
        dilation: int = 1,
        first_dilation: int | None = None,
        norm_layer: NormLayer | None = None,
        drop_path: float = 0.0,
        inplace: bool = True,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(
                f"BasicBlock supports only groups=1 and base_width=64, got groups={groups}, base_width={base_width}"
            )
        norm_layer = check_norm_layer(norm_layer)
        # timm's BasicBlock: the first conv keeps the dilation of the stage before (torchvision refuses >1)
        first_dilation = first_dilation or dilation
        self.attn_mid = check_position(attention_position) == "mid"
        attn = inplace_attention(
            make_attention(attention, planes, attention_kwargs), attention_kwargs, inplace
        )
        # children registered in forward order, so that printing the block reads like its forward
        self.conv1 = nn.Conv2d(
            inplanes, planes, 3, stride=stride, padding=first_dilation, dilation=first_dilation, bias=False
        )
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        if self.attn_mid:
            self.attn = attn
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = norm_layer(planes)
        if not self.attn_mid:
            self.attn = attn
        self.downsample = downsample
        self.stride = stride
        # a plain attribute when off, so the children (and the layout) stay torchvision's
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None

    def _forward_impl(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        if self.attn_mid:
            out = self.attn(out)
        out = self.conv2(out)
        out = self.bn2(out)
        return self._residual(out, x)


class Bottleneck(_ResNetBlock):
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
        dilation: int = 1,
        first_dilation: int | None = None,
        norm_layer: NormLayer | None = None,
        drop_path: float = 0.0,
        inplace: bool = True,
    ) -> None:
        super().__init__()
        norm_layer = check_norm_layer(norm_layer)
        # torchvision's: the first block of a dilated stage keeps the dilation of the stage before
        first_dilation = first_dilation or dilation
        self.attn_mid = check_position(attention_position) == "mid"
        width = int(planes * (base_width / 64.0)) * groups
        outplanes = planes * self.expansion
        attn = inplace_attention(
            make_attention(attention, width if self.attn_mid else outplanes, attention_kwargs),
            attention_kwargs,
            inplace,
        )
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = norm_layer(width)
        self.conv2 = nn.Conv2d(
            width,
            width,
            3,
            stride=stride,
            padding=first_dilation,
            dilation=first_dilation,
            groups=groups,
            bias=False,
        )
        self.bn2 = norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        if self.attn_mid:
            self.attn = attn
        self.conv3 = nn.Conv2d(width, outplanes, 1, bias=False)
        self.bn3 = norm_layer(outplanes)
        if not self.attn_mid:
            self.attn = attn
        self.downsample = downsample
        self.stride = stride
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None

    def _forward_impl(self, x: torch.Tensor) -> torch.Tensor:
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
        return self._residual(out, x)


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
    new.drop_path = None
    new.train(block.training)
    return new


class ResNet(Freezable):
    """ResNet / ResNeXt with an attention block in every residual block (SCSA's backbones).

    Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
    https://arxiv.org/abs/2407.05128. Every block of every stage carries one attention; the stem and
    the head carry none. Top-level children ``conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc``
    in forward order and the public ``inplanes`` (channels of layer4's output), so torchvision's
    ``IntermediateLayerGetter``, ``BackboneWithFPN`` and ``_resnet_fpn_extractor`` take the model as
    it is; timm's ``feature_info``, ``forward_features``, ``forward_head``, ``forward_intermediates``,
    ``get_classifier``, ``reset_classifier`` and ``set_grad_checkpointing``.

    Args:
        block: :class:`BasicBlock` (ResNet-18/34) or :class:`Bottleneck`.
        layers: blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-50.
        num_classes: classifier outputs; 0 leaves the head as an identity (pooled features).
        attention: zoo name (``"scsa"``, ``"se"``, ..., ``"none"``) or ``f(channels, **kwargs)``.
        attention_kwargs: keyword arguments of every attention block (an ``inplace`` there wins
            over ``inplace_attention``).
        attention_position: ``"mid"`` (the paper's place) or ``"post"`` (before the residual add).
        in_chans: input channels.
        stem: ``"imagenet"`` (7×7 stride-2 conv and max-pool) or ``"cifar"`` (3×3 stride-1 conv, no pool).
        groups, width_per_group: ResNeXt cardinality and width (Bottleneck only).
        zero_init_residual: zero the last BN of every block, as torchvision optionally does.
        drop_rate: dropout before the classifier.
        norm_layer: the backbone's norm, a class or callable ``f(num_features)`` (torchvision's):
            ``torchvision.ops.FrozenBatchNorm2d``, ``nn.SyncBatchNorm``, ``lambda c: nn.GroupNorm(32, c)``.
            The attention blocks keep their own internal norms. Default ``nn.BatchNorm2d``.
        replace_stride_with_dilation: for layer2..layer4, replace the stride by a dilation of the 3×3
            convs (torchvision's option).
        output_stride: 8, 16 or 32 (timm's and smp's option): the stages past it are dilated instead
            of strided. Give either this or ``replace_stride_with_dilation``.
        frozen_stages: MMDetection's: -1 none, 0 the stem, k the stem and layer1..layerk (eval-mode
            norms, ``requires_grad=False``, kept in eval across ``.train()``).
        drop_path_rate: stochastic depth on the residual branch, rising linearly over the blocks to
            this rate (timm's ResNet).
        global_pool: ``"avg"``, ``"max"``, ``"avgmax"``, ``"catavgmax"`` or ``""`` (none; only with
            ``num_classes=0``), timm's ``SelectAdaptivePool2d``.
        inplace_attention: let the attention blocks write their output over their input where no
            autograd graph is recorded (SCSA's ``inplace``; saves memory in inference). Switch it
            later with :meth:`set_inplace_attention`.
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
        norm_layer: NormLayer | None = None,
        replace_stride_with_dilation: Sequence[bool] | None = None,
        output_stride: int | None = None,
        frozen_stages: int = -1,
        drop_path_rate: float = 0.0,
        global_pool: str = "avg",
        inplace_attention: bool = True,
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
        self.global_pool = check_global_pool(global_pool, num_classes)
        norm_layer = check_norm_layer(norm_layer)
        dilate = self._dilated_stages(replace_stride_with_dilation, output_stride)
        dprs = drop_path_rates(check_drop_path_rate(drop_path_rate), sum(layers))
        self.grad_checkpointing = False
        block_kwargs = dict(
            groups=groups,
            base_width=width_per_group,
            attention=attention,
            attention_kwargs=attention_kwargs,
            attention_position=attention_position,
            norm_layer=norm_layer,
            inplace=bool(inplace_attention),
        )

        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, 64, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_chans, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = norm_layer(64)
        self.relu = nn.ReLU(inplace=True)
        # the CIFAR stem keeps the child (as an identity) so the children stay torchvision's
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
        # torchvision's running state while the stages are built; after it, inplanes = layer4's channels
        self.inplanes = 64
        self.dilation = 1
        r = 2 if stem == "imagenet" else 1
        self.feature_info = [dict(num_chs=64, reduction=r, module="relu")]
        r *= 2 if stem == "imagenet" else 1
        for i, planes in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            first = sum(layers[:i])
            layer = self._make_layer(
                block, planes, layers[i], stride, i > 0 and dilate[i - 1], dprs[first:], block_kwargs
            )
            setattr(self, f"layer{i + 1}", layer)
            r *= 1 if i == 0 or dilate[i - 1] else 2
            self.feature_info.append(
                dict(num_chs=planes * block.expansion, reduction=r, module=f"layer{i + 1}")
            )
        self.num_features = 512 * block.expansion
        self.avgpool = make_pool(self.global_pool)
        self.fc = self._new_fc(num_classes)

        init_backbone_(self, [blk.attn for blk in self.blocks()])
        if zero_init_residual:
            for blk in self.blocks():
                nn.init.zeros_((blk.bn3 if isinstance(blk, Bottleneck) else blk.bn2).weight)
        self.freeze_stages(frozen_stages)

    @staticmethod
    def _dilated_stages(replace: Sequence[bool] | None, output_stride: int | None) -> tuple[bool, bool, bool]:
        """Which of layer2..layer4 trade their stride for a dilation."""
        if replace is None:
            os_ = check_output_stride(output_stride)
            # the stem and layer2 give stride 8; each later stage doubles it unless it is dilated
            return (False, os_ <= 8, os_ <= 16)
        if isinstance(replace, (str, bytes)) or len(replace) != 3:
            raise ValueError(
                f"replace_stride_with_dilation must give 3 booleans (layer2, layer3, layer4), got {replace!r}"
            )
        dilate = tuple(bool(d) for d in replace)
        if output_stride is not None:
            implied = 32 // 2 ** sum(dilate)
            if check_output_stride(output_stride) != implied:
                raise ValueError(
                    f"output_stride={output_stride} disagrees with replace_stride_with_dilation={replace!r} "
                    f"(output stride {implied}); give one of them"
                )
        return dilate  # type: ignore[return-value]

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        planes: int,
        n: int,
        stride: int,
        dilate: bool,
        drop_paths: Sequence[float],
        kwargs: dict,
    ) -> nn.Sequential:
        norm_layer = kwargs["norm_layer"]
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                norm_layer(planes * block.expansion),
            )
        blocks = [
            block(
                self.inplanes,
                planes,
                stride,
                downsample,
                dilation=self.dilation,
                first_dilation=previous_dilation,
                drop_path=drop_paths[0],
                **kwargs,
            )
        ]
        self.inplanes = planes * block.expansion
        blocks += [
            block(self.inplanes, planes, dilation=self.dilation, drop_path=drop_paths[j], **kwargs)
            for j in range(1, n)
        ]
        return nn.Sequential(*blocks)

    def _new_fc(self, num_classes: int) -> nn.Module:
        if num_classes == 0:
            return nn.Identity()
        return nn.Linear(self.num_features * self.avgpool.feat_mult(), num_classes)

    def stage_modules(self) -> list[list[nn.Module]]:
        return [[self.conv1, self.bn1], [self.layer1], [self.layer2], [self.layer3], [self.layer4]]

    def blocks(self) -> list[nn.Module]:
        """All residual blocks, stage by stage."""
        return [blk for layer in (self.layer1, self.layer2, self.layer3, self.layer4) for blk in layer]

    def has_attention(self) -> bool:
        return any(not isinstance(blk.attn, NoAttention) for blk in self.blocks())

    def set_inplace_attention(self, enabled: bool = True) -> int:
        """Switch the in-place output of every attention block that has one; returns how many."""
        return set_inplace_attention(self, enabled)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each residual block in the backward (``torch.utils.checkpoint``, non-reentrant)."""
        self.grad_checkpointing = bool(enable)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh classifier for ``num_classes`` outputs (0: identity), and optionally another pooling."""
        self.num_classes = check_int("num_classes", num_classes, 0)
        if global_pool is not None:
            self.global_pool = check_global_pool(global_pool, num_classes)
            self.avgpool = make_pool(self.global_pool)
        self.fc = self._new_fc(num_classes)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        return self.relu(x)

    @torch.jit.ignore
    def _stage(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and isinstance(layer, nn.Sequential):
            for blk in layer:
                x = checkpoint(blk, x, use_reentrant=False)
            return x
        return layer(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self._stem(x))
        # two ifs, as TorchScript skips only the body of `if not is_scripting()`
        if not torch.jit.is_scripting():  # noqa: SIM102
            if self.grad_checkpointing:
                for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
                    x = self._stage(layer, x)
                return x
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        return x

    @torch.jit.ignore
    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's: the maps of ``feature_info`` (stem, layer1..layer4) picked by ``indices`` (None: all,
        an int n: the last n, a list: those), and the final map unless ``intermediates_only``.

        ``stop_early`` skips the stages after the last one asked for; ``norm`` has no effect (the
        network has no final norm), ``output_fmt`` must be ``"NCHW"``."""
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        taken, last = take_indices(len(self.feature_info), indices)
        intermediates = []
        x = self._stem(x)
        if 0 in taken:
            intermediates.append(x)
        x = self.maxpool(x)
        layers = [self.layer1, self.layer2, self.layer3, self.layer4]
        for i, layer in enumerate(layers[:last] if stop_early else layers, start=1):
            x = self._stage(layer, x)
            if i in taken:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """timm's: replace the stages after the last feature of ``indices`` by identities (and the
        head by none, with ``prune_head``); returns the absolute indices kept."""
        taken, last = take_indices(len(self.feature_info), indices)
        for i in range(last + 1, 5):
            setattr(self, f"layer{i}", nn.Sequential())  # empty: passes its input on, and has no blocks
        if prune_head:
            self.reset_classifier(0, "")
        return taken

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.avgpool(x)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
