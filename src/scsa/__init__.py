"""scsa — Spatial and Channel Synergistic Attention (Si et al., arXiv 2407.05128) for PyTorch.

The block itself is :class:`scsa.SCSA`; its halves are :class:`scsa.SMSA` and :class:`scsa.PCSA`.
"""

__version__ = "0.1.0"

from scsa.attention import (
    PCSA,
    SCSA,
    SMSA,
    create_attention,
    list_attentions,
    register_attention,
)

# importing scsa.models also registers the backbones in timm ("scsa_resnet50", ...)
from scsa.models import create_model, insert_attention, list_models

__all__ = [
    "PCSA",
    "SCSA",
    "SMSA",
    "__version__",
    "create_attention",
    "create_model",
    "insert_attention",
    "list_attentions",
    "list_models",
    "register_attention",
]
