"""The one place where scsa touches private PyTorch and timm APIs.

Each name below says what it is for and what happens when the private API it wraps disappears in a
later release: the package keeps importing, and the feature that needs it degrades as stated. Nothing
else in ``scsa`` may import a private (underscore) module or attribute of torch or timm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "compile_counters",
    "fake_tensor_mode",
    "functorch_transforms_active",
    "global_forward_hooks",
    "global_forward_pre_hooks",
    "is_exporting",
    "saved_tensors_hooks_enabled",
    "timm_efficientnet_blocks",
    "top_saved_tensors_hooks",
    "torchvision_fpn_extractors",
]

# torch.compiler.is_exporting is public from torch 2.5; older versions never export through it.
is_exporting: Callable[[], bool] = getattr(torch.compiler, "is_exporting", lambda: False)

# The dicts of hooks that torch.nn.modules.module.register_module_forward_(pre_)hook fill (every module
# sees them), read by truthiness so that SCSA writes its output in place only where no hook can see its
# input. torch mutates these dicts and never rebinds them. Gone: a non-empty stand-in, so in-place
# writes stop (one full-size allocation more per block in inference, numbers unchanged).
_GONE = {0: None}
global_forward_hooks: dict = getattr(torch.nn.modules.module, "_global_forward_hooks", _GONE)
global_forward_pre_hooks: dict = getattr(torch.nn.modules.module, "_global_forward_pre_hooks", _GONE)

# The saved-tensor hooks already in effect, so that the recompute hooks hand what they do not replace
# on to them (checkpointing, offloading). Gone: the recompute mechanism turns itself off (training
# memory of the backbones goes up by a few percent, numbers stay the same).
top_saved_tensors_hooks: Callable[[], Any] | None = getattr(
    torch._C._autograd, "_top_saved_tensors_default_hooks", None
)


def saved_tensors_hooks_enabled() -> bool:
    """Whether saved-tensor hooks may be pushed here (torch.func transforms disable them).

    Gone: assumed enabled, as it is outside torch.func transforms."""
    fn = getattr(torch._C._autograd, "_saved_tensors_hooks_is_enabled", None)
    return True if fn is None else bool(fn())


def functorch_transforms_active() -> bool:
    """Whether a torch.func transform (vmap, grad, jacrev, ...) is running, so the fast path of SCSA
    steps aside for the plain definition. Gone: assumed inactive, and under a transform the fast path's
    custom autograd function raises torch's own error instead."""
    fn = getattr(torch._C, "_are_functorch_transforms_active", None)
    return False if fn is None else bool(fn())


def compile_counters() -> dict[str, int] | None:
    """torch.compile's running totals of captured frames and graphs (``torch._dynamo.utils.counters``),
    for the compile-time benchmark's recompilation count. Gone: None, and the benchmark prints its
    times without the counts."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:  # pragma: no cover - depends on the installed torch
        return None
    return {f"{group}.{key}": int(n) for group in ("frames", "stats") for key, n in counters[group].items()}


def fake_tensor_mode(**kwargs: Any):
    """torch's FakeTensorMode (shapes without arithmetic), for counting FLOPs without memory.

    Gone: ImportError at the call; the FLOP count then runs on real tensors (slower, same count)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    return FakeTensorMode(**kwargs)


def timm_efficientnet_blocks() -> tuple[type, type]:
    """timm's ``DepthwiseSeparableConv`` and ``InvertedResidual`` classes, for the surgery on timm's
    MobileNetV2/EfficientNet models. Gone: ImportError naming timm's version, and that surgery alone stops."""
    try:
        from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual
    except ImportError as e:  # pragma: no cover - depends on the installed timm
        import timm

        raise ImportError(
            f"timm {timm.__version__} has no timm.models._efficientnet_blocks; the surgery on timm's "
            "MobileNetV2/EfficientNet needs timm 1.0.9 or a later release that keeps it"
        ) from e
    return DepthwiseSeparableConv, InvertedResidual


def torchvision_fpn_extractors() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """torchvision's ``_mobilenet_extractor`` and ``_resnet_fpn_extractor``: what its own ``*_fpn``
    detector constructors call, so our backbones get exactly torchvision's FPN, frozen layers and extra
    levels. Gone: ImportError naming torchvision's version, and only the detectors stop building."""
    try:
        from torchvision.models.detection.backbone_utils import _mobilenet_extractor, _resnet_fpn_extractor
    except ImportError as e:  # pragma: no cover - depends on the installed torchvision
        import torchvision

        raise ImportError(
            f"torchvision {torchvision.__version__} has no backbone_utils._resnet_fpn_extractor / "
            "_mobilenet_extractor; scsa's detectors need torchvision 0.19 or a later release that keeps them"
        ) from e
    return _mobilenet_extractor, _resnet_fpn_extractor
