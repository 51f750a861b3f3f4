"""scsa — Spatial and Channel Synergistic Attention (Si et al., arXiv 2407.05128) for PyTorch.

The block itself is :class:`scsa.SCSA`; its halves are :class:`scsa.SMSA` and :class:`scsa.PCSA`.
"""

__version__ = "0.1.0"

from scsa.attention import (  # noqa: E402
    PCSA,
    SCSA,
    SMSA,
    create_attention,
    list_attentions,
    register_attention,
)

__all__ = [
    "PCSA",
    "SCSA",
    "SMSA",
    "__version__",
    "create_attention",
    "list_attentions",
    "register_attention",
]
