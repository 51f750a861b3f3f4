"""Helpers shared by the backbones, the surgery and the weight loaders.

An attention is given either as a zoo name (``"scsa"``, ``"se"``, ... see
:func:`scsa.attention.list_attentions`) or as a callable ``f(channels, **kwargs) -> nn.Module``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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


def inplace_attention(attn: nn.Module) -> nn.Module:
    """Let ``attn`` write its output over its input where it can (:class:`scsa.SCSA`'s ``inplace``,
    used only where no autograd graph is recorded): in our residual blocks nothing reads the
    attention's input afterwards, so inference saves one full-size allocation per block."""
    if isinstance(attn, SCSA):
        attn.inplace = True
    return attn


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
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)
