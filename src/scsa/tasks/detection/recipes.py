"""Training recipes of the detection task: MMDetection's COCO schedules and a small CPU one for ``mnistdet``.

``coco-1x``: SGD momentum 0.9, weight decay 1e-4, lr 0.02 per 16 images (0.01 for RetinaNet and FCOS),
12 epochs, ×0.1 after epochs 8 and 11, linear warm-up over 500 iterations from 0.001×, images resized to
fit 1333×800, horizontal flip 0.5, frozen BatchNorm, stem and stage 1 frozen. ``coco-2x``: 24 epochs,
steps at 16 and 22. The learning rate scales linearly with the global batch (batch per device × devices
× nodes × gradient accumulation).

``small``: what trains in minutes on two CPU cores from random weights on ``mnistdet`` (128 px scenes):
ResNet-18, trainable BatchNorm in every stage (frozen BatchNorm would keep the random initial statistics
and affine: it needs pre-trained ones), anchors from 16 px, fewer proposals (64 sampled per image,
RoIAlign with one sample per bin) and a 256-wide box head, batch 8, lr 0.04 per 16 images (twice the
COCO rate, 0.02 at batch 8; not swept), warm-up over 50 steps but never over more than a tenth of the run
(a 100-step run warms up over 10), ×0.1 after 0.8 of the epochs, rounded (for the last of the default 3),
3 epochs of 800 train scenes (300 steps), 150 val scenes. No flip: a mirrored digit is no digit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["DetectionRecipe", "get_recipe", "list_recipes", "scaled_lr"]


@dataclass(frozen=True)
class DetectionRecipe:
    """Every default of a detection run; the command line and the Python API override single fields."""

    name: str
    epochs: int
    batch_size: int  # per device
    lr: float  # for ``base_batch`` images
    base_batch: int = 16
    lr_one_stage: float | None = None  # RetinaNet / FCOS, where the recipe differs
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = ()  # epochs after which lr ×0.1
    warmup_iters: int = 500
    warmup_factor: float = 0.001
    # a cap on the warm-up as a fraction of the run's optimizer steps: a short run must not end inside it
    warmup_fraction: float | None = None
    min_size: int = 800
    max_size: int = 1333
    hflip: bool = True
    backbone: str = "resnet50"
    norm_layer: str = "frozen_bn"
    trainable_layers: int = 3
    anchor_base: int | None = None
    box_head_dim: int | None = None
    detector_kwargs: dict[str, Any] = field(default_factory=dict)
    image_size: int = 128  # mnistdet scenes
    n_train: int = 2000
    n_val: int = 200
    gradient_clip_val: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SMALL_DETECTOR = {
    "rpn_pre_nms_top_n_train": 600,
    "rpn_post_nms_top_n_train": 300,
    "rpn_pre_nms_top_n_test": 300,
    "rpn_post_nms_top_n_test": 150,
    "box_batch_size_per_image": 64,
    "roi_sampling_ratio": 1,
}

_RECIPES = {
    "coco-1x": DetectionRecipe(
        "coco-1x", epochs=12, batch_size=2, lr=0.02, lr_one_stage=0.01, milestones=(8, 11)
    ),
    "coco-2x": DetectionRecipe(
        "coco-2x", epochs=24, batch_size=2, lr=0.02, lr_one_stage=0.01, milestones=(16, 22)
    ),
    "small": DetectionRecipe(
        "small",
        epochs=3,
        batch_size=8,
        lr=0.04,
        milestones=(2,),
        warmup_iters=50,
        warmup_fraction=0.1,
        min_size=128,
        max_size=128,
        hflip=False,
        backbone="resnet18",
        norm_layer="bn",
        trainable_layers=5,
        anchor_base=16,
        box_head_dim=256,
        detector_kwargs=_SMALL_DETECTOR,
        n_train=800,
        n_val=150,
        gradient_clip_val=10.0,
    ),
}


def list_recipes() -> list[str]:
    return sorted(_RECIPES)


def get_recipe(name: str, **overrides: Any) -> DetectionRecipe:
    """The recipe ``name`` with ``overrides`` (``None`` values ignored); unknown names are a ``ValueError``."""
    if name not in _RECIPES:
        raise ValueError(f"unknown detection recipe {name!r}; known: {', '.join(list_recipes())}")
    return replace(_RECIPES[name], **{k: v for k, v in overrides.items() if v is not None})


def scaled_lr(recipe: DetectionRecipe, detector: str, global_batch: int) -> float:
    """The recipe's learning rate for ``detector`` at ``global_batch`` images (linear scaling rule)."""
    base = recipe.lr_one_stage if detector in ("retinanet", "fcos") and recipe.lr_one_stage else recipe.lr
    return base * global_batch / recipe.base_batch
