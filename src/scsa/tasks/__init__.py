"""The tasks built on :mod:`scsa.engine`: each is a LightningModule (a :class:`scsa.engine.TaskModule`),
a LightningDataModule, its metrics and its recipes.

* :mod:`scsa.tasks.classification`: image classification (the SCSA paper's comparison tables).

Submodules are imported on use, so ``import scsa.tasks`` costs nothing.
"""
