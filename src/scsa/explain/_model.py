"""What every explainer needs from a model: the module, its preprocessing, its stages, its images.

A model is given as a module or as the path of a classification checkpoint (whose stored info holds
the class names and the mean/std of its training run). Stage ``k`` is ``feature_info[k]`` in timm's
meaning: for our ResNets stage 0 is the stem and stages 1-4 are ``layer1``-``layer4``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image
from torch import nn

__all__ = ["Explainable", "ImageLike", "ModelLike", "load_image", "resolve", "stage_module", "stage_outputs"]

ModelLike = Union[nn.Module, str, Path, "Explainable"]
ImageLike = str | Path | Image.Image | torch.Tensor | np.ndarray

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Explainable:
    """A model in eval mode with what is needed to feed it images and to name its outputs."""

    model: nn.Module
    name: str
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    classes: list[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def class_name(self, index: int) -> str:
        return self.classes[index] if self.classes and 0 <= index < len(self.classes) else str(index)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8`` (B, 3, H, W) or float images in [0, 1] -> the model's normalised float input."""
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std


def resolve(model: ModelLike, name: str | None = None) -> Explainable:
    """An :class:`Explainable` from a module, a checkpoint path of ``scsa classify train``, or one already."""
    if isinstance(model, Explainable):
        return model
    if isinstance(model, nn.Module):
        return Explainable(model.eval(), name or type(model).__name__)
    if isinstance(model, (str, Path)):
        from scsa.explain._checkpoints import load_checkpoint_model

        module, info = load_checkpoint_model(model)
        t = info.get("transform", {})
        return Explainable(
            module.eval(),
            name or checkpoint_name(model, info),
            tuple(t.get("mean", IMAGENET_MEAN)),
            tuple(t.get("std", IMAGENET_STD)),
            list(info.get("classes") or []) or None,
            info,
        )
    raise TypeError(f"model must be an nn.Module or a checkpoint path, got {type(model).__name__}")


def checkpoint_name(path: str | Path, info: dict[str, Any]) -> str:
    """``resnet18+scsa`` from the stored model spec, else the file's run folder name."""
    spec = info.get("model_spec") or {}
    if spec.get("name"):
        att = spec.get("attention") or "none"
        return f"{spec['name']}+{att}" if att != "none" else f"{spec['name']} (baseline)"
    return Path(path).parent.parent.name or Path(path).stem


def load_image(image: ImageLike, size: int | None = None) -> torch.Tensor:
    """An image as ``uint8`` (3, H, W): a path, a PIL image, an (H, W[, C]) array or a (C, H, W) tensor.

    Grey images are repeated to 3 channels; float tensors are taken as [0, 1]. ``size`` resizes the
    short side (None: the image's own size)."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise ValueError(f"image {str(path)!r} does not exist")
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except OSError as err:
            raise ValueError(f"image {str(path)!r} is not a readable image: {err}") from err
    if isinstance(image, Image.Image):
        t = torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)
    elif isinstance(image, np.ndarray):
        a = image if image.ndim == 3 else image[..., None]
        t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)
    elif isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.dim() == 2:
            t = t[None]
        if t.dim() != 3:
            raise ValueError(f"an image tensor must be (C, H, W) or (H, W), got shape {tuple(image.shape)}")
    else:
        raise TypeError(
            f"image must be a path, a PIL image, an array or a tensor, got {type(image).__name__}"
        )
    if t.dtype != torch.uint8:
        t = (t.float().clamp(0, 1) * 255).round().to(torch.uint8)
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    if t.shape[0] != 3:
        raise ValueError(f"an image must have 1 or 3 channels, got {t.shape[0]}")
    if size is not None and min(t.shape[-2:]) != size:
        from torchvision.transforms.v2 import functional as TF

        t = TF.resize(t, [size], antialias=True)
    return t.contiguous()


def stage_module(model: nn.Module, stage: int | str) -> tuple[str, nn.Module]:
    """``(name, module)`` of stage ``k`` (timm's ``feature_info[k]``), or of a module given by its path."""
    modules = dict(model.named_modules())
    if isinstance(stage, str):
        if stage not in modules:
            raise ValueError(f"the model has no module {stage!r}")
        return stage, modules[stage]
    info = getattr(model, "feature_info", None)
    names = [f["module"] for f in info] if isinstance(info, list) else None
    if names is None:  # plain ResNet-like models: the stem is stage 0
        names = ["conv1"] + [f"layer{i}" for i in range(1, 5) if f"layer{i}" in modules]
    if not -len(names) <= stage < len(names):
        raise ValueError(f"stage {stage} does not exist: the model has stages 0-{len(names) - 1} ({names})")
    name = names[stage]
    return name, modules[name]


def last_stage(model: nn.Module) -> tuple[str, nn.Module]:
    return stage_module(model, -1)


@contextlib.contextmanager
def _recorded(modules: Sequence[nn.Module]) -> Iterator[list[torch.Tensor | None]]:
    out: list[torch.Tensor | None] = [None] * len(modules)

    def hook(i: int):
        def fn(_m: nn.Module, _args: Any, output: torch.Tensor) -> None:
            out[i] = output

        return fn

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(modules)]
    try:
        yield out
    finally:
        for h in handles:
            h.remove()


def stage_outputs(model: nn.Module, x: torch.Tensor, stages: Sequence[int]) -> list[torch.Tensor]:
    """The outputs of ``stages`` for input ``x`` (with their autograd graph if grad is enabled).

    Uses the model's ``forward_intermediates`` where it has one (it stops after the last stage asked
    for), else forward hooks on the stage modules during a full forward."""
    if hasattr(model, "forward_intermediates") and all(isinstance(s, int) for s in stages):
        n = len(model.feature_info) if isinstance(getattr(model, "feature_info", None), list) else None
        idx = [s % n if n else s for s in stages]
        feats = model.forward_intermediates(x, indices=idx, intermediates_only=True, stop_early=True)
        return list(feats)
    modules = [stage_module(model, s)[1] for s in stages]
    with _recorded(modules) as out:
        model(x)
    missing = [s for s, o in zip(stages, out) if o is None]
    if missing:
        raise ValueError(f"stage(s) {missing} did not run in the model's forward")
    return list(out)  # type: ignore[arg-type]
