"""The one place where :mod:`scsa.explain` reaches the classification task's training and checkpoints.

Kept to one module so that a move of the task's code is a one-line change here.
"""

from __future__ import annotations

from scsa.tasks.classification import TrainConfig, load_checkpoint_model, train

__all__ = ["TrainConfig", "load_checkpoint_model", "train"]
