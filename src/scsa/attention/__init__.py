"""The attention zoo: SCSA and the plug-and-play blocks it is compared with.

Every block is built as ``cls(channels, **kwargs)`` and accepts ``device``/``dtype``.
"""

from scsa.attention.identity import NoAttention
from scsa.attention.registry import (
    create_attention,
    get_attention_class,
    list_attentions,
    register_attention,
)
from scsa.attention.scsa import PCSA, SCSA, SMSA

register_attention("none", NoAttention)
register_attention("scsa", SCSA)
register_attention("smsa", SMSA)
register_attention("pcsa", PCSA)

__all__ = [
    "PCSA",
    "SCSA",
    "SMSA",
    "NoAttention",
    "create_attention",
    "get_attention_class",
    "list_attentions",
    "register_attention",
]
