"""Training recipes: the paper's released ImageNet configs and a small one for 32×32 data on a CPU.

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
Neurocomputing 2025, https://arxiv.org/abs/2407.05128 — trained ResNets and MobileNetV2 with the
MMPretrain configs that ``paper-resnet`` and ``paper-mobilenetv2`` restate here.

A recipe names its values for its reference batch size and epoch count; :func:`get_recipe` applies
overrides and :meth:`Recipe.lr_for` / :func:`lr_factor` scale the learning rate and its schedule to the
batch size and epochs actually used:

* the learning rate scales linearly with the global batch (``lr_base`` is for ``lr_base_batch``),
* step milestones are fractions of the run (30/60/90 of 100 epochs -> 3/6/9 of 10),
* the exponential decay keeps its end value (×0.98 per epoch over 400 epochs is ×0.98**(400/E) over E).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

__all__ = ["RECIPES", "Recipe", "get_recipe", "list_recipes", "lr_factor"]

_OPTIMIZERS = ("sgd", "adamw")
_SCHEDULES = ("step", "exp", "cosine", "constant")
_AUGMENTS = ("rrc-flip", "crop-flip", "none")


@dataclass(frozen=True)
class Recipe:
    """Every value of a training run that a recipe fixes; all of them can be overridden.

    ``paper-resnet`` and ``paper-mobilenetv2`` restate the configs released with SCSA (Si et al.,
    https://arxiv.org/abs/2407.05128); ``small`` is ours, for 32×32 images on a CPU.
    """

    name: str
    optimizer: str = "sgd"
    lr_base: float = 0.1
    lr_base_batch: int = 128
    lr: float | None = None  # absolute learning rate; when set, no batch scaling
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    batch_size: int = 128  # global: split evenly over all processes
    epochs: int = 100
    schedule: str = "step"
    milestones: tuple[float, ...] = (0.3, 0.6, 0.9)  # fractions of the run (step schedule)
    gamma: float = 0.1  # factor per milestone (step) or per epoch at ref_epochs (exp)
    ref_epochs: int = 100  # the epoch count the recipe's gamma is given for (exp schedule)
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    image_size: int = 224
    resize_size: int | None = None  # eval: resize the short side to this, then center-crop image_size
    augment: str = "rrc-flip"
    crop_padding: float = 0.125  # crop-flip: zero padding before the random crop, as a fraction of the size
    precision: str = "16-mixed"  # on a CPU, 32 is used instead (see scsa.tasks.classification.train)
    mean: tuple[float, ...] | None = None  # None: the dataset's own (ImageNet stats for folders)
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        _check_choice("optimizer", self.optimizer, _OPTIMIZERS)
        _check_choice("schedule", self.schedule, _SCHEDULES)
        _check_choice("augment", self.augment, _AUGMENTS)
        for name in ("lr_base_batch", "batch_size", "epochs", "ref_epochs", "image_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {name}={value!r}")
        for name in (
            "lr_base",
            "weight_decay",
            "momentum",
            "warmup_epochs",
            "label_smoothing",
            "crop_padding",
        ):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {name}={value!r}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got lr={self.lr!r}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got gamma={self.gamma!r}")
        if self.label_smoothing >= 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError(f"milestones are fractions of the run in (0, 1), got {self.milestones!r}")
        if self.resize_size is not None and self.resize_size < self.image_size:
            raise ValueError(
                f"resize_size must be >= image_size, got resize_size={self.resize_size} and "
                f"image_size={self.image_size}"
            )

    def lr_for(self, global_batch: int) -> float:
        """The learning rate for ``global_batch`` images per step: ``lr`` if set, else linear scaling."""
        if self.lr is not None:
            return float(self.lr)
        return self.lr_base * global_batch / self.lr_base_batch

    def eval_resize(self) -> int:
        """Short side before the eval center crop: ``resize_size``, or the 256/224 ratio of ImageNet."""
        return self.resize_size or round(self.image_size / 0.875)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {name}={value!r}")


RECIPES: dict[str, Recipe] = {
    # configs/scsa/resnet50_8xb32... of the release: SGD 0.05 for batch 128, wd 1e-4, ×0.1 at 30/60/90.
    "paper-resnet": Recipe(
        name="paper-resnet",
        lr_base=0.05,
        lr_base_batch=128,
        weight_decay=1e-4,
        batch_size=128,
        epochs=100,
        schedule="step",
        milestones=(0.3, 0.6, 0.9),
        gamma=0.1,
        image_size=224,  # eval: resize to 256 (the 224/256 ratio kept for other sizes), center crop
        augment="rrc-flip",
    ),
    # MobileNetV2: batch 96, SGD 0.045, wd 4e-5, ×0.98 every epoch for 400 epochs.
    "paper-mobilenetv2": Recipe(
        name="paper-mobilenetv2",
        lr_base=0.045,
        lr_base_batch=96,
        weight_decay=4e-5,
        batch_size=96,
        epochs=400,
        schedule="exp",
        gamma=0.98,
        ref_epochs=400,
        image_size=224,  # eval: resize to 256 (the 224/256 ratio kept for other sizes), center crop
        augment="rrc-flip",
    ),
    # Ours: a few epochs on 32×32 images on a CPU. Nesterov SGD with a short warm-up and a cosine decay.
    # Measured on mnist5k with resnet18 (16 steps of 64): the CIFAR-usual lr 0.1 per 128 diverges in
    # the first steps (loss 2.4 -> 6.3), 0.04 per 128 does not; and augmentation does not pay off in
    # runs this short (val top-1 82% without, 62% with 1-pixel random crops), so it is off: pass
    # augment="crop-flip" for longer runs.
    "small": Recipe(
        name="small",
        lr_base=0.04,
        lr_base_batch=128,
        nesterov=True,
        weight_decay=5e-4,
        batch_size=64,
        epochs=3,
        schedule="cosine",
        warmup_epochs=0.2,
        image_size=32,
        augment="none",
        precision="32",
    ),
}


def list_recipes() -> list[str]:
    """Names accepted by :func:`get_recipe`."""
    return sorted(RECIPES)


def get_recipe(name: str, **overrides) -> Recipe:
    """The recipe ``name`` with ``overrides`` applied; ``None`` values mean "keep the recipe's"."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(list_recipes())}")
    fields = {f.name for f in dataclasses.fields(Recipe)} - {"name"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown recipe field(s) {unknown}; known: {sorted(fields)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    for key in ("milestones", "mean", "std"):
        if key in changes:
            changes[key] = tuple(float(v) for v in changes[key])
    return dataclasses.replace(RECIPES[name], **changes)


def lr_factor(recipe: Recipe, epoch: float) -> float:
    """Multiplier of the base learning rate at (fractional) ``epoch`` of a ``recipe.epochs`` run.

    The step and exponential schedules change at epoch boundaries, as the per-epoch schedulers of the
    released configs do; the cosine schedule and the warm-up move every step.
    """
    total = recipe.epochs
    if recipe.warmup_epochs > 0 and epoch < recipe.warmup_epochs:
        warm = (epoch + 1e-8) / recipe.warmup_epochs
    else:
        warm = 1.0
    done = math.floor(epoch + 1e-9)
    if recipe.schedule == "step":
        passed = sum(1 for m in recipe.milestones if done >= max(1, round(m * total)))
        factor = recipe.gamma**passed
    elif recipe.schedule == "exp":
        factor = recipe.gamma ** (done * recipe.ref_epochs / total)
    elif recipe.schedule == "cosine":
        t = min(max(epoch - recipe.warmup_epochs, 0.0) / max(total - recipe.warmup_epochs, 1e-8), 1.0)
        factor = 0.5 * (1.0 + math.cos(math.pi * t))
    else:
        factor = 1.0
    return warm * factor
