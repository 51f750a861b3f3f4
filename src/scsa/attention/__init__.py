"""The attention zoo: SCSA and the plug-and-play blocks it is compared with.

Every block is built as ``cls(channels, **kwargs)`` and accepts ``device``/``dtype``.
SCSA's fast path is switched by :func:`set_fast_path` / :func:`fast_path` and its C module by
:func:`set_native` / :func:`native`, and its capture by ``torch.compile`` as one custom operator by
:func:`set_compile_op` / :func:`compile_op` (:mod:`scsa.attention.config`).
"""

from scsa.attention.ca import CoordAttention
from scsa.attention.cbam import CBAM
from scsa.attention.config import (
    compile_op,
    fast_path,
    native,
    native_available,
    set_compile_op,
    set_fast_path,
    set_native,
    use_compile_op,
    use_fast_path,
    use_native,
)
from scsa.attention.cpca import CPCA
from scsa.attention.eca import ECA
from scsa.attention.ela import ELA
from scsa.attention.ema import EMA
from scsa.attention.fca import FCA
from scsa.attention.identity import NoAttention
from scsa.attention.registry import (
    create_attention,
    get_attention_class,
    list_attentions,
    register_attention,
)
from scsa.attention.sa import ShuffleAttention
from scsa.attention.sc import SCConv
from scsa.attention.scsa import PCSA, SCSA, SMSA
from scsa.attention.se import SqueezeExcite
from scsa.attention.simam import SimAM
from scsa.attention.sk import SelectiveKernel

register_attention("none", NoAttention)
register_attention("scsa", SCSA)
register_attention("smsa", SMSA)
register_attention("pcsa", PCSA)
register_attention("se", SqueezeExcite)
register_attention("cbam", CBAM)
register_attention("eca", ECA)
register_attention("ca", CoordAttention)
register_attention("sa", ShuffleAttention)
register_attention("ema", EMA)
register_attention("ela", ELA)
register_attention("cpca", CPCA)
register_attention("fca", FCA)
register_attention("sk", SelectiveKernel)
register_attention("sc", SCConv)
register_attention("simam", SimAM)

__all__ = [
    "CBAM",
    "CPCA",
    "ECA",
    "ELA",
    "EMA",
    "FCA",
    "PCSA",
    "SCSA",
    "SMSA",
    "CoordAttention",
    "NoAttention",
    "SCConv",
    "SelectiveKernel",
    "ShuffleAttention",
    "SimAM",
    "SqueezeExcite",
    "compile_op",
    "create_attention",
    "fast_path",
    "get_attention_class",
    "list_attentions",
    "native",
    "native_available",
    "register_attention",
    "set_compile_op",
    "set_fast_path",
    "set_native",
    "use_compile_op",
    "use_fast_path",
    "use_native",
]
