"""Helpers shared by the backbones, the surgery and the weight loaders.

An attention is given either as a zoo name (``"scsa"``, ``"se"``, ... see
:func:`scsa.attention.list_attentions`) or as a callable ``f(channels, **kwargs) -> nn.Module``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from scsa.attention import SCSA, create_attention, get_attention_class, list_attentions
from scsa.attention.identity import NoAttention
from scsa.attention.recompute import attention_outputs_recomputed

AttentionSpec = str | Callable[..., nn.Module]

POSITIONS = ("mid", "post")
STEMS = ("imagenet", "cifar")


def check_position(position: str) -> str:
    if position not in POSITIONS:
        raise ValueError(
            f"attention_position must be one of {POSITIONS} ('mid': the paper's place inside the block; "
            f"'post': after the block's last norm, before the residual add), got {position!r}"
        )
    return position


def check_stem(stem: str) -> str:
    if stem not in STEMS:
        raise ValueError(
            f"stem must be one of {STEMS} ('cifar': 3x3 stride-1 conv and no max-pool, for 32x32 inputs), "
            f"got {stem!r}"
        )
    return stem


def check_drop_rate(drop_rate: float) -> float:
    if not 0.0 <= float(drop_rate) < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
    return float(drop_rate)


def is_none_attention(attention: AttentionSpec) -> bool:
    """True for the "no attention" choice, which the backbones build as nothing at all."""
    return isinstance(attention, str) and attention.lower() == "none"


def make_attention(
    attention: AttentionSpec,
    channels: int,
    attention_kwargs: Mapping[str, Any] | None = None,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """Build one attention block for ``channels`` channels, on ``device``/``dtype`` unless the kwargs say otherwise."""
    kwargs = dict(attention_kwargs or {})
    if device is not None:
        kwargs.setdefault("device", device)
    if dtype is not None:
        kwargs.setdefault("dtype", dtype)
    if isinstance(attention, str):
        return create_attention(attention, channels, **kwargs)
    if callable(attention):
        return attention(channels, **kwargs)
    raise ValueError(
        f"attention must be a registered name ({', '.join(list_attentions())}) or a callable "
        f"f(channels, **kwargs) -> nn.Module, got {attention!r}"
    )


class ResidualBlock(nn.Module):
    """Base of our residual blocks: while training, the layer after the attention block keeps a recipe
    for the attention's output instead of the tensor (:mod:`scsa.attention.recompute`). Subclasses
    define ``_forward_impl`` (the block itself) and ``_has_attention``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # two ifs, as TorchScript skips only the body of `if not is_scripting()`
        if not torch.jit.is_scripting():  # noqa: SIM102
            if self.training and torch.is_grad_enabled() and self._has_attention():
                with attention_outputs_recomputed():
                    return self._forward_impl(x)
        return self._forward_impl(x)


def inplace_attention(
    attn: nn.Module, attention_kwargs: Mapping[str, Any] | None = None, enabled: bool = True
) -> nn.Module:
    """Let ``attn`` write its output over its input where it can (:class:`scsa.SCSA`'s ``inplace``,
    used only where no autograd graph is recorded): in our residual blocks nothing reads the
    attention's input afterwards, so inference saves one full-size allocation per block.

    ``enabled`` is the model's switch (``inplace_attention=``); an ``inplace`` given in
    ``attention_kwargs`` is the user's own choice for the block and wins over it."""
    if isinstance(attn, SCSA) and "inplace" not in (attention_kwargs or {}):
        attn.inplace = bool(enabled)
    return attn


def set_inplace_attention(model: nn.Module, enabled: bool = True) -> int:
    """Switch ``inplace`` on every attention block of ``model`` that has one; returns how many."""
    n = 0
    for m in model.modules():
        if isinstance(m, SCSA):
            m.inplace = bool(enabled)
            n += 1
    return n


NormLayer = Callable[[int], nn.Module]


def check_norm_layer(norm_layer: NormLayer | None) -> NormLayer:
    """torchvision's ``norm_layer``: a class or callable taking ``num_features`` (None: BatchNorm2d)."""
    if norm_layer is None:
        return nn.BatchNorm2d
    if isinstance(norm_layer, nn.Module) or not callable(norm_layer):
        raise ValueError(
            f"norm_layer must be a class or callable f(num_features) -> nn.Module (e.g. "
            f"torchvision.ops.FrozenBatchNorm2d, nn.SyncBatchNorm, lambda c: nn.GroupNorm(32, c)), "
            f"got {norm_layer!r}"
        )
    return norm_layer


def check_output_stride(output_stride: int | None) -> int:
    if output_stride is None:
        return 32
    if isinstance(output_stride, bool) or output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be 8, 16 or 32, got output_stride={output_stride!r}")
    return int(output_stride)


def check_drop_path_rate(rate: float) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"drop_path_rate must be in [0, 1), got drop_path_rate={rate!r}")
    return float(rate)


def check_global_pool(global_pool: str, num_classes: int) -> str:
    if global_pool not in GLOBAL_POOLS:
        raise ValueError(f"global_pool must be one of {GLOBAL_POOLS}, got global_pool={global_pool!r}")
    if global_pool == "" and num_classes > 0:
        raise ValueError(
            f"global_pool='' (no pooling) needs num_classes=0 (no classifier), got num_classes={num_classes}"
        )
    return global_pool


GLOBAL_POOLS = ("avg", "max", "avgmax", "catavgmax", "")


def make_pool(global_pool: str) -> nn.Module:
    """timm's pooling of the head: flattened for the classifier, the map itself with ``""`` (timm's rule)."""
    from timm.layers import SelectAdaptivePool2d

    return SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))


def drop_path_rates(rate: float, n_blocks: int) -> list[float]:
    """Stochastic depth per block, rising linearly from 0 to ``rate`` (timm's ResNet rule)."""
    return [rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]


def take_indices(n_features: int, indices: int | Sequence[int] | None) -> tuple[list[int], int]:
    """timm's ``forward_intermediates`` indices: None = all, an int = the last n, a sequence = those
    (negative from the end). Returns the absolute indices and the largest."""
    if indices is None:
        indices = n_features
    if isinstance(indices, int):
        if not 0 < indices <= n_features:
            raise ValueError(f"indices={indices} (the last n features) must be in 1..{n_features}")
        taken = list(range(n_features - indices, n_features))
    else:
        taken = []
        for i in indices:
            idx = n_features + i if i < 0 else i
            if not 0 <= idx < n_features:
                raise ValueError(f"feature index {i} is out of range for {n_features} features")
            taken.append(idx)
        if not taken:
            raise ValueError("indices must name at least one feature")
    return taken, max(taken)


class Freezable(nn.Module):
    """MMDetection's ``frozen_stages``: the modules of the first stages have no gradients and stay in
    eval mode (BN statistics fixed) across ``.train()`` calls. Subclasses define ``stage_modules``."""

    frozen_stages = -1  # no annotation: TorchScript cannot read a postponed one on a class

    def stage_modules(self) -> list[list[nn.Module]]:  # stage 0 = the stem
        raise NotImplementedError

    def freeze_stages(self, frozen_stages: int) -> None:
        """Freeze the stem (0) and stages 1..k (k); -1 freezes nothing. Earlier freezes are kept."""
        n = len(self.stage_modules()) - 1
        if (
            isinstance(frozen_stages, bool)
            or not isinstance(frozen_stages, int)
            or not -1 <= frozen_stages <= n
        ):
            raise ValueError(
                f"frozen_stages must be an integer in -1..{n} (-1: none, 0: the stem, k: stem and stages "
                f"1..k), got frozen_stages={frozen_stages!r}"
            )
        self.frozen_stages = max(self.frozen_stages, frozen_stages)
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    def _frozen_modules(self) -> list[nn.Module]:
        return [m for stage in self.stage_modules()[: self.frozen_stages + 1] for m in stage]

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self._frozen_modules():
            m.eval()
        return self


def attention_classes() -> tuple[type, ...]:
    """The module classes of the zoo (everything registered, except the identity of "none")."""
    classes = (get_attention_class(name) for name in list_attentions())
    return tuple(c for c in classes if isinstance(c, type) and not issubclass(c, NoAttention))


def find_attention_modules(model: nn.Module) -> list[str]:
    """Paths of the outermost zoo attention blocks inside ``model`` (its "attention part")."""
    classes = attention_classes()
    paths: list[str] = []
    for path, module in model.named_modules():
        if isinstance(module, classes) and not any(path.startswith(p + ".") for p in paths):
            paths.append(path)
    return paths


def init_backbone_(
    model: nn.Module, attention_modules: Iterable[nn.Module], linear_std: float | None = None
) -> None:
    """torchvision's initialisation for the backbone's own layers; attention blocks keep their own init."""
    skip = {id(m) for attn in attention_modules for m in attn.modules()}
    for m in model.modules():
        if id(m) in skip:
            continue
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)
