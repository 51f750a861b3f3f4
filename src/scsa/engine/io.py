"""Atomic checkpoints for Lightning; the atomic CSV/JSON/text writers live in :mod:`scsa.io`.

Lightning saves checkpoints through fsspec, whose local "transaction" writes a temporary file in the
system temp folder and then *moves* it: across file systems that move is a copy, which is not atomic.
:class:`AtomicCheckpointIO` writes beside the target and renames instead (:func:`scsa.io.atomic_write`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from scsa.io import atomic_write, write_csv, write_json, write_text

__all__ = ["AtomicCheckpointIO", "atomic_write", "write_csv", "write_json", "write_text"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that writes a temporary file beside the target, then ``os.replace``-s it."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        atomic_write(path, lambda f: torch.save(checkpoint, f))
