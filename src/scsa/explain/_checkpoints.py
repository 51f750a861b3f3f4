"""The one place where :mod:`scsa.explain` reaches the tasks' training and checkpoint loaders.

Kept to one module so that a move of a task's code is a one-line change here.
"""

from __future__ import annotations

from scsa.tasks.classification import TrainConfig, load_checkpoint_model, train

__all__ = ["TrainConfig", "load_checkpoint_model", "load_detector", "train"]


def load_detector(checkpoint, device="cpu"):
    """``(detector, info)`` of a ``scsa detect train`` checkpoint (imported on use: torchvision detection)."""
    from scsa.tasks.detection.train import load_detector as load

    return load(checkpoint, device)
