"""Image classification with any backbone and attention block of scsa, on :mod:`scsa.engine`.

Si et al., "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention",
Neurocomputing 2025, https://arxiv.org/abs/2407.05128 — the comparison of their tables 2-4.

* :class:`ImageClassifier`: the LightningModule (cross-entropy, top-1/top-5, a ``TaskModule``).
* :class:`ImageDataModule`: the embedded ``mnist5k`` digits or an ImageNet-layout folder.
* :func:`train` / :class:`TrainConfig`: one run (checkpoints, metrics CSV/JSON, curves PNG).
* :func:`evaluate` / :func:`load_checkpoint_model`: top-1/top-5 and a confusion matrix of a checkpoint.
* :func:`compare` / :class:`CompareConfig`: one backbone with each attention block, one table.
* :func:`get_recipe` / :class:`Recipe`: the released configs and a small one for a CPU.

Needs the ``train`` extra (``pip install 'scsa[train]'``).
"""

from scsa.tasks.classification.compare import CompareConfig, CompareResult, compare
from scsa.tasks.classification.data import ImageDataModule
from scsa.tasks.classification.datasets import MNIST5K, BadImageError, load_mnist5k, scan_image_folder
from scsa.tasks.classification.evaluate import EvalResult, evaluate, load_checkpoint_model
from scsa.tasks.classification.module import ImageClassifier
from scsa.tasks.classification.precise_bn import PreciseBN, recompute_bn_stats
from scsa.tasks.classification.recipes import RECIPES, Recipe, get_recipe, list_recipes, lr_factor
from scsa.tasks.classification.train import TrainConfig, TrainResult, train

__all__ = [
    "MNIST5K",
    "RECIPES",
    "BadImageError",
    "CompareConfig",
    "CompareResult",
    "EvalResult",
    "ImageClassifier",
    "ImageDataModule",
    "PreciseBN",
    "Recipe",
    "TrainConfig",
    "TrainResult",
    "compare",
    "evaluate",
    "get_recipe",
    "list_recipes",
    "load_checkpoint_model",
    "load_mnist5k",
    "lr_factor",
    "recompute_bn_stats",
    "scan_image_folder",
    "train",
]
