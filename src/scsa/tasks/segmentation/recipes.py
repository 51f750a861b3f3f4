"""Training recipes of the segmentation task, in iterations as MMSegmentation counts them.

* ``ade20k-160k``: MMSegmentation's UPerNet-R50 ADE20K schedule (the setting of SCSA's
  segmentation table, arXiv 2407.05128): SGD lr 0.01 for a global batch of 16, momentum 0.9,
  weight decay 5e-4, poly decay (power 0.9, min lr 1e-4) over 160,000 iterations, crop 512×512 after
  a random rescale of 0.5-2.0 × (2048, 512), flip, photometric distortion; validation every 16,000
  iterations, test at (2048, 512) keeping the ratio, whole image; auxiliary FCN head weight 0.4.
* ``small``: the same pipeline scaled to ``mnistseg`` on a CPU: 64 px canvases, rescale 0.75-1.5
  (MMSegmentation's 0.5 would shrink a stroke to 2 px), crop 64, AdamW lr 0.004, weight decay 0.01,
  a 30-iteration warm-up and poly decay to 1e-5, loss CE + 1.0 × Dice (smp's ``DiceLoss``: the
  strokes are ~10 % of the pixels), UPerNet width 64, 1,000 iterations of batch 16 validated every
  250; encoder and decoder start from scratch.

The learning rate scales linearly with the global batch (``batch_size`` × accumulation) against the
recipe's ``base_batch``. An "epoch" of the run is ``val_interval`` iterations, so the engine's
per-epoch validation, checkpoints and exact resume work unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

__all__ = ["SegRecipe", "get_recipe", "list_recipes", "poly_factor"]


@dataclass(frozen=True)
class SegRecipe:
    """One schedule and pipeline; every field can be overridden (``dataclasses.replace``)."""

    name: str
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    min_lr: float = 1e-4
    warmup_iters: int = 0
    iterations: int = 160_000
    val_interval: int = 16_000
    batch_size: int = 16  # global
    base_batch: int = 16  # the batch ``lr`` is given for
    crop_size: tuple[int, int] = (512, 512)
    scale: tuple[int, int] = (2048, 512)
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    test_scale: tuple[int, int] | None = (2048, 512)
    inference: str = "whole"
    aux_weight: float = 0.4
    decoder_channels: int | None = None  # None: smp's default (UPerNet 256; MMSegmentation's is 512)
    optimizer: str = "sgd"  # "sgd" (MMSegmentation's) or "adamw" (momentum unused)
    dice_weight: float = 0.0  # > 0: + dice_weight x smp's multiclass DiceLoss on the main head

    @property
    def epochs(self) -> int:
        """Validation rounds: ``ceil(iterations / val_interval)``."""
        return math.ceil(self.iterations / self.val_interval)

    def scaled_lr(self, global_batch: int) -> float:
        return self.lr * global_batch / self.base_batch

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_RECIPES = {
    "ade20k-160k": SegRecipe("ade20k-160k"),
    "ade20k-80k": SegRecipe("ade20k-80k", iterations=80_000, val_interval=8_000),
    "small": SegRecipe(
        "small",
        # from scratch on a few hundred canvases, SGD at 0.05 with CE alone predicted background
        # everywhere after 150 iterations; AdamW with CE + Dice finds the strokes in ~100
        optimizer="adamw",
        lr=0.004,
        weight_decay=0.01,
        min_lr=1e-5,
        warmup_iters=30,
        dice_weight=1.0,
        iterations=1000,
        val_interval=250,
        batch_size=16,
        crop_size=(64, 64),
        scale=(64, 64),
        ratio_range=(0.75, 1.5),
        test_scale=None,
        decoder_channels=64,
    ),
}


def list_recipes() -> list[str]:
    return sorted(_RECIPES)


def get_recipe(name: str, **overrides) -> SegRecipe:
    """The named recipe with ``overrides`` (unknown fields are an error naming them)."""
    if name not in _RECIPES:
        raise ValueError(f"unknown segmentation recipe {name!r}; known: {', '.join(list_recipes())}")
    fields = {f.name for f in dataclasses.fields(SegRecipe)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown recipe field(s) {unknown}; known: {sorted(fields)}")
    return dataclasses.replace(_RECIPES[name], **{k: v for k, v in overrides.items() if v is not None})


def poly_factor(step: int, recipe: SegRecipe, base_lr: float) -> float:
    """The multiplier of ``base_lr`` at ``step``: linear warm-up, then MMSegmentation's ``PolyLR``
    ``(base - min) * (1 - step / total) ** power + min``."""
    total = max(recipe.iterations, 1)
    progress = min(step, total) / total
    lr = (base_lr - recipe.min_lr) * (1 - progress) ** recipe.poly_power + recipe.min_lr
    if recipe.warmup_iters and step < recipe.warmup_iters:
        lr *= 0.1 + 0.9 * step / recipe.warmup_iters
    return lr / base_lr
