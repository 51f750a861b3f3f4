"""Create any attention block of the zoo by name.

Every registered class is built as ``cls(channels, **kwargs)`` and accepts ``device`` and ``dtype``
keywords, so the same names work as timm's ``attn_layer``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_attention(name: str, cls: Callable[..., nn.Module], *, overwrite: bool = False) -> None:
    """Register ``cls`` under ``name`` (lower case). ``cls(channels, **kwargs)`` must build the block."""
    key = name.lower()
    if not key.isidentifier():
        raise ValueError(f"attention name must be a Python identifier, got {name!r}")
    if key in _REGISTRY and not overwrite and _REGISTRY[key] is not cls:
        raise ValueError(
            f"attention {key!r} is already registered to {_REGISTRY[key]!r}; pass overwrite=True"
        )
    _REGISTRY[key] = cls


def list_attentions() -> list[str]:
    """Names accepted by :func:`create_attention`, sorted."""
    return sorted(_REGISTRY)


def get_attention_class(name: str) -> Callable[..., nn.Module]:
    key = name.lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown attention {name!r}; known: {', '.join(list_attentions())}")
    return _REGISTRY[key]


def create_attention(name: str, channels: int, **kwargs) -> nn.Module:
    """Build the attention block ``name`` for ``channels`` channels, e.g. ``create_attention("se", 256)``."""
    return get_attention_class(name)(channels, **kwargs)
