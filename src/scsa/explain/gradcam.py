"""Class activation maps of any model here through pytorch-grad-cam: Grad-CAM, Grad-CAM++, Eigen-CAM, ...

Si et al. (https://arxiv.org/abs/2407.05128) compare where ResNet-50 looks with and without SCSA by
Grad-CAM; :func:`gradcam` gives that map for one image and :func:`cam_grid` the side-by-side figure
(rows = images, columns = models). The image is fed at its own size (the networks are fully
convolutional up to the pooled head), so a digit on a large canvas stays a digit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from scsa.explain._model import Explainable, ImageLike, ModelLike, load_image, resolve, stage_module

__all__ = ["CAM_METHODS", "CamResult", "cam_method", "explain_image", "gradcam"]

# name -> pytorch_grad_cam class name; the library's methods that take (model, target_layers)
CAM_METHODS = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "hirescam": "HiResCAM",
    "gradcamelementwise": "GradCAMElementWise",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGradCAM",
    "kpcacam": "KPCA_CAM",
    "scorecam": "ScoreCAM",
    "ablationcam": "AblationCAM",
    "shapleycam": "ShapleyCAM",
    "fem": "FEM",
    "fullgrad": "FullGrad",
    "randomcam": "RandomCAM",
}


@dataclass
class CamResult:
    """One map: ``cam`` (H, W) float32 in [0, 1] at the image's size, for class ``target``."""

    cam: np.ndarray
    image: np.ndarray  # uint8 (H, W, 3), what the model was shown
    target: int
    class_name: str
    score: float  # softmax probability of ``target``
    model_name: str
    method: str
    layer: str


def cam_method(method: str) -> type:
    """The pytorch-grad-cam class of ``method`` (a key of :data:`CAM_METHODS`, any case)."""
    key = method.lower().replace("_", "").replace("-", "")
    key = {"gradcamplusplus": "gradcam++", "gradcampp": "gradcam++"}.get(key, key)
    if key not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; known: {', '.join(CAM_METHODS)}")
    import pytorch_grad_cam

    return getattr(pytorch_grad_cam, CAM_METHODS[key])


def _canonical(method: str) -> str:
    cls = cam_method(method)
    return next(k for k, v in CAM_METHODS.items() if v == cls.__name__)


def explain_image(
    model: ModelLike,
    image: ImageLike,
    target: int | None = None,
    layer: str | int | None = None,
    method: str = "gradcam",
    size: int | None = None,
) -> CamResult:
    """The CAM of ``model`` on ``image`` with its class, score and names; see :func:`gradcam`."""
    ex = resolve(model)
    cls = cam_method(method)
    img = load_image(image, size)  # (3, H, W) uint8
    layer_name, layer_module = stage_module(ex.model, -1 if layer is None else layer)
    x = ex.normalize(img[None]).to(_device(ex.model))
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if target is not None and not 0 <= target < _num_classes(ex.model):
        raise ValueError(
            f"target class {target} does not exist: the model has {_num_classes(ex.model)} classes"
        )
    with cls(model=ex.model, target_layers=[layer_module]) as cam:
        # targets=None: the library explains the predicted class; its forward's logits give the score
        grayscale = cam(input_tensor=x, targets=None if target is None else [ClassifierOutputTarget(target)])
        logits = cam.outputs.detach() if isinstance(getattr(cam, "outputs", None), torch.Tensor) else None
    if logits is None:
        with torch.no_grad():
            logits = ex.model(x)
    probs = logits.float().softmax(dim=1)[0]
    if target is None:
        target = int(probs.argmax())
    heat = np.nan_to_num(np.asarray(grayscale[0], dtype=np.float32), nan=0.0)
    return CamResult(
        cam=heat,
        image=img.permute(1, 2, 0).numpy(),
        target=target,
        class_name=ex.class_name(target),
        score=float(probs[target]),
        model_name=ex.name,
        method=_canonical(method),
        layer=layer_name,
    )


def gradcam(
    model_or_checkpoint: ModelLike,
    image: ImageLike,
    target: int | None = None,
    layer: str | int | None = None,
    method: str = "gradcam",
) -> np.ndarray:
    """A class activation map (H, W) in [0, 1] at the size of ``image``.

    Args:
        model_or_checkpoint: a classifier module, or the path of a ``scsa classify train`` checkpoint
            (its class names and mean/std are used).
        image: a path, a PIL image, an (H, W[, 3]) uint8 array or a (C, H, W) tensor (uint8, or float
            in [0, 1]); fed at its own size.
        target: class index; None: the predicted class.
        layer: the layer the map is taken at: a stage index (timm's ``feature_info``; -1, the default,
            is the last stage) or a module path such as ``"layer3"``.
        method: ``"gradcam"``, ``"gradcam++"``, ``"eigencam"`` or any other key of :data:`CAM_METHODS`.
    """
    return explain_image(model_or_checkpoint, image, target, layer, method).cam


def _num_classes(model: nn.Module) -> int:
    head = model.get_classifier() if hasattr(model, "get_classifier") else getattr(model, "fc", None)
    if isinstance(head, nn.Linear):
        return head.out_features
    return int(getattr(model, "num_classes", 0)) or 10**9  # unknown: let the library's indexing decide


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def cam_grid_results(
    models: Sequence[ModelLike],
    images: Sequence[ImageLike],
    target: int | None = None,
    layer: str | int | None = None,
    method: str = "gradcam",
    size: int | None = None,
) -> list[list[CamResult]]:
    """``results[i][j]``: image ``i`` explained by model ``j``."""
    exs: list[Explainable] = [resolve(m) for m in models]
    return [[explain_image(ex, im, target, layer, method, size) for ex in exs] for im in images]
