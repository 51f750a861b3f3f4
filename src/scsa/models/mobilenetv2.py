"""MobileNetV2 with an attention block in every inverted residual: SCSA's mobile backbone.

SCSA: Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
https://arxiv.org/abs/2407.05128. MobileNetV2: Sandler et al., https://arxiv.org/abs/1801.04381.

Laid out like torchvision's ``mobilenetv2.py`` (``features.N``, ``classifier.1``, each block's
``conv`` sequence with the same indices), so a torchvision state dict loads 1:1. Each block's
attention is its child ``attn`` (as in the ResNets), applied after the depth-wise stage (the paper's
place: after the 3×3 depth-wise conv → BN → ReLU6, on the hidden channels, before the 1×1
projection) or, with ``attention_position="post"``, after the projection's BN, before the residual
add. With ``attention="none"`` it is an identity without parameters and the network is torchvision's.

State dicts of the earlier layout, where the attention sat inside ``conv`` (``conv.K.3.*`` after the
depth-wise stage, ``conv.<len>.*`` at the end; also what :func:`scsa.models.insert_attention` makes of
torchvision's MobileNetV2), load unchanged: their keys are renamed to ``attn.*`` on load.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
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


def _conv_bn_act(
    inp: int,
    oup: int,
    kernel_size: int,
    stride: int = 1,
    groups: int = 1,
    dilation: int = 1,
    norm_layer: NormLayer = nn.BatchNorm2d,
) -> nn.Sequential:
    # a plain Sequential with torchvision's Conv2dNormActivation indices: 0 conv, 1 BN, 2 ReLU6
    padding = (kernel_size - 1) // 2 * dilation
    return nn.Sequential(
        nn.Conv2d(inp, oup, kernel_size, stride, padding, dilation=dilation, groups=groups, bias=False),
        norm_layer(oup),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(ResidualBlock):
    """MobileNetV2 inverted residual with an attention block (its child ``attn``) on its hidden channels.

    SCSA (Si et al., https://arxiv.org/abs/2407.05128) follows the depth-wise conv → BN → ReLU6 and
    precedes the 1×1 projection (``attention_position="mid"``); ``"post"`` applies it after the
    projection's BN, before the residual add. ``dilation`` dilates the depth-wise conv (stride 1), as
    torchvision's and timm's dilated MobileNets do.
    """

    __jit_unused_properties__ = ["attn_path"]  # noqa: RUF012 - TorchScript reads this list

    def __init__(
        self,
        inp: int,
        oup: int,
        stride: int,
        expand_ratio: int,
        attention: AttentionSpec = "none",
        attention_kwargs: Mapping[str, Any] | None = None,
        attention_position: str = "mid",
        dilation: int = 1,
        norm_layer: NormLayer | None = None,
        drop_path: float = 0.0,
        inplace: bool = True,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        norm_layer = check_norm_layer(norm_layer)
        self.attn_mid = check_position(attention_position) == "mid"
        hidden = round(inp * expand_ratio)
        self.stride = stride
        self.use_res_connect = stride == 1 and inp == oup
        self.out_channels = oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_act(inp, hidden, 1, norm_layer=norm_layer))
        # the index in `conv` of the depth-wise stage, which the "mid" attention follows
        self.dw_index = len(layers)
        layers.append(_conv_bn_act(hidden, hidden, 3, stride, hidden, dilation, norm_layer))
        layers += [nn.Conv2d(hidden, oup, 1, bias=False), norm_layer(oup)]
        self.conv = nn.Sequential(*layers)
        # built after the convs, as before it became a child: the same random numbers for both
        attn = make_attention(attention, hidden if self.attn_mid else oup, attention_kwargs)
        self.attn = inplace_attention(attn, attention_kwargs, inplace)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None

    def attention(self) -> nn.Module | None:
        """The block's attention module (``None`` without one)."""
        return None if isinstance(self.attn, NoAttention) else self.attn

    @property
    def attn_path(self) -> str | None:
        """Where the attention lives inside the block (``"attn"``), ``None`` without one."""
        return None if isinstance(self.attn, NoAttention) else "attn"

    def _has_attention(self) -> bool:
        return not isinstance(self.attn, NoAttention)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # the earlier layout kept the attention inside `conv`: after the depth-wise stage's 3 modules
        # ("mid") or after the projection's BN ("post"); both places are free in this layout
        legacy = re.compile(re.escape(prefix) + rf"conv\.(?:{self.dw_index}\.3|{len(self.conv)})\.(.*)$")
        for key in [k for k in state_dict if k.startswith(prefix + "conv.")]:
            if m := legacy.match(key):
                state_dict[f"{prefix}attn.{m[1]}"] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _forward_impl(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for i, layer in enumerate(self.conv):
            out = layer(out)
            if self.attn_mid and i == self.dw_index:
                out = self.attn(out)
        if not self.attn_mid:
            out = self.attn(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        if self.use_res_connect:
            return x + out
        return out


def upgrade_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with the earlier layout's attention keys of every :class:`InvertedResidual` of
    ``model`` renamed to ``attn.*`` (what loading does anyway; for code that compares keys first)."""
    state = dict(state)
    for path, block in model.named_modules():
        if isinstance(block, InvertedResidual):
            prefix = path + "." if path else ""
            legacy = re.compile(
                re.escape(prefix) + rf"conv\.(?:{block.dw_index}\.3|{len(block.conv)})\.(.*)$"
            )
            for key in [k for k in state if k.startswith(prefix + "conv.")]:
                if m := legacy.match(key):
                    state[f"{prefix}attn.{m[1]}"] = state.pop(key)
    return state


class MobileNetV2(Freezable):
    """MobileNetV2 with an attention block in every inverted residual (SCSA's mobile backbone).

    Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
    https://arxiv.org/abs/2407.05128. The stem (``features.0``), the last 1×1 conv (``features.18``)
    and the head carry no attention. torchvision's layout and names; timm-style ``feature_info``
    (the last block of each resolution, as timm's ``mobilenetv2_100``), ``forward_features``,
    ``forward_head``, ``forward_intermediates``, ``get_classifier``, ``reset_classifier`` and
    ``set_grad_checkpointing``.

    Args:
        num_classes: classifier outputs; 0 leaves the head as an identity (pooled features).
        width_mult: width multiplier of every layer (channels rounded to multiples of 8).
        attention: zoo name (``"scsa"``, ``"se"``, ..., ``"none"``) or ``f(channels, **kwargs)``.
        attention_kwargs: keyword arguments of every attention block (an ``inplace`` there wins
            over ``inplace_attention``).
        attention_position: ``"mid"`` (the paper's place) or ``"post"`` (before the residual add).
        in_chans: input channels.
        stem: ``"imagenet"`` (stride-2 first conv) or ``"cifar"`` (stride 1, for 32×32 inputs).
        drop_rate: dropout before the classifier (torchvision's 0.2).
        norm_layer: the backbone's norm, a class or callable ``f(num_features)`` (torchvision's).
        output_stride: 8, 16 or 32: the depth-wise convs past it are dilated instead of strided
            (timm's and torchvision's dilated MobileNets).
        frozen_stages: MMPretrain's MobileNetV2: -1 none, 0 the stem, k the stem and the first k of
            the 7 stages of the paper's table (eval-mode norms, ``requires_grad=False``).
        drop_path_rate: stochastic depth on the residual branch, rising linearly over the blocks.
        global_pool: ``"avg"``, ``"max"``, ``"avgmax"``, ``"catavgmax"`` or ``""`` (only with
            ``num_classes=0``), timm's ``SelectAdaptivePool2d``.
        inplace_attention: let the attention blocks write their output over their input where no
            autograd graph is recorded; see :meth:`set_inplace_attention`.
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
        norm_layer: NormLayer | None = None,
        output_stride: int | None = None,
        frozen_stages: int = -1,
        drop_path_rate: float = 0.0,
        global_pool: str = "avg",
        inplace_attention: bool = True,
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
        self.global_pool = check_global_pool(global_pool, num_classes)
        norm_layer = check_norm_layer(norm_layer)
        output_stride = check_output_stride(output_stride)
        dprs = drop_path_rates(check_drop_path_rate(drop_path_rate), sum(n for _, _, n, _ in _SETTINGS))
        self.grad_checkpointing = False

        inp = make_divisible(32 * width_mult)
        self.num_features = make_divisible(1280 * max(1.0, width_mult))
        reduction = 2 if stem == "imagenet" else 1
        features: list[nn.Module] = [_conv_bn_act(in_chans, inp, 3, stride=reduction, norm_layer=norm_layer)]
        self.feature_info = []
        self._stage_ends = [0]  # the index in `features` of each stage's last module (0: the stem)
        dilation = 1
        for i, (t, c, n, s) in enumerate(_SETTINGS):
            oup = make_divisible(c * width_mult)
            previous_dilation = dilation
            if reduction * s > output_stride:  # past the output stride: dilate instead of striding
                dilation *= s
                s = 1
            for j in range(n):
                stride = s if j == 0 else 1
                features.append(
                    InvertedResidual(
                        inp,
                        oup,
                        stride,
                        t,
                        attention,
                        attention_kwargs,
                        attention_position,
                        dilation=previous_dilation if j == 0 else dilation,
                        norm_layer=norm_layer,
                        drop_path=dprs[len(features) - 1],
                        inplace=bool(inplace_attention),
                    )
                )
                inp = oup
            reduction *= s
            self._stage_ends.append(len(features) - 1)
            # a stage ends a resolution when the next one downsamples (or nothing follows); the modules
            # stay those of the undilated network, only their reductions follow the output stride
            if i + 1 == len(_SETTINGS) or _SETTINGS[i + 1][3] == 2:
                self.feature_info.append(
                    dict(num_chs=oup, reduction=reduction, module=f"features.{len(features) - 1}")
                )
        features.append(_conv_bn_act(inp, self.num_features, 1, norm_layer=norm_layer))
        self.features = nn.Sequential(*features)
        self.pool = make_pool(self.global_pool)
        self.classifier = nn.Sequential(nn.Dropout(p=self.drop_rate), self._new_fc(num_classes))
        init_backbone_(
            self, [a for blk in self.blocks() if (a := blk.attention()) is not None], linear_std=0.01
        )
        self.freeze_stages(frozen_stages)

    def _new_fc(self, num_classes: int) -> nn.Module:
        if num_classes == 0:
            return nn.Identity()
        return nn.Linear(self.num_features * self.pool.feat_mult(), num_classes)

    def stage_modules(self) -> list[list[nn.Module]]:
        ends = self._stage_ends
        return [[self.features[0]]] + [
            [self.features[k] for k in range(ends[i] + 1, ends[i + 1] + 1)] for i in range(len(ends) - 1)
        ]

    def blocks(self) -> list[InvertedResidual]:
        """All inverted residual blocks, in order."""
        return [m for m in self.features if isinstance(m, InvertedResidual)]

    def has_attention(self) -> bool:
        return any(blk.attention() is not None for blk in self.blocks())

    def set_inplace_attention(self, enabled: bool = True) -> int:
        """Switch the in-place output of every attention block that has one; returns how many."""
        return set_inplace_attention(self, enabled)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward (``torch.utils.checkpoint``, non-reentrant)."""
        self.grad_checkpointing = bool(enable)

    def get_classifier(self) -> nn.Module:
        return self.classifier[1]

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh classifier for ``num_classes`` outputs (0: identity), and optionally another pooling."""
        self.num_classes = check_int("num_classes", num_classes, 0)
        if global_pool is not None:
            self.global_pool = check_global_pool(global_pool, num_classes)
            self.pool = make_pool(self.global_pool)
        self.classifier[1] = self._new_fc(num_classes)

    @torch.jit.ignore
    def _run(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing:
            return checkpoint(module, x, use_reentrant=False)
        return module(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # two ifs, as TorchScript skips only the body of `if not is_scripting()`
        if not torch.jit.is_scripting():  # noqa: SIM102
            if self.grad_checkpointing:
                for module in self.features:
                    x = self._run(module, x)
                return x
        return self.features(x)

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
        """timm's: the maps of ``feature_info`` picked by ``indices`` (None: all, an int n: the last n,
        a list: those), and the final map unless ``intermediates_only``.

        ``stop_early`` skips the modules after the last map asked for; ``norm`` has no effect (the
        network has no final norm), ``output_fmt`` must be ``"NCHW"``."""
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        taken, last = take_indices(len(self.feature_info), indices)
        at = {int(f["module"].split(".")[1]): i for i, f in enumerate(self.feature_info)}
        stop = int(self.feature_info[last]["module"].split(".")[1]) if stop_early else len(self.features) - 1
        intermediates = []
        for k, module in enumerate(self.features):
            if k > stop:
                break
            x = self._run(module, x)
            if at.get(k, -1) in taken:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """timm's: replace the modules after the last feature of ``indices`` by identities (and the
        head by none, with ``prune_head``); returns the absolute indices kept."""
        taken, last = take_indices(len(self.feature_info), indices)
        stop = int(self.feature_info[last]["module"].split(".")[1])
        for k in range(stop + 1, len(self.features)):
            self.features[k] = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return taken

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x)
        if pre_logits:
            return x
        return self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
