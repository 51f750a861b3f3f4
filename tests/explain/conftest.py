"""Fixtures of the explain tests: a baseline and an SCSA resnet18 trained briefly on mnist5k.

CIFAR stem at 16×16 (the digits resized), 80 steps of 32: small enough for a CPU, long enough for
both to learn the digits (~90 % val top-1) so that their maps mean something. The trained
checkpoints are kept in pytest's cache folder, keyed by the code they depend on, so a second run
of the tests does not train again.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import pytest
import torch

import scsa

IMAGE_SIZE = 16
STEPS = 80


def _code_key() -> str:
    root = Path(scsa.__file__).parent
    h = hashlib.sha1(torch.__version__.encode())
    for rel in ("models/resnet.py", "models/_common.py", "attention/scsa.py"):
        p = root / rel
        h.update(p.read_bytes() if p.is_file() else b"")
    return h.hexdigest()[:12]


def _train(out: Path, attention: str) -> Path:
    from scsa.explain._checkpoints import TrainConfig, train

    ckpt = out / "checkpoints" / "last.ckpt"
    if ckpt.is_file():
        return ckpt
    cfg = TrainConfig(
        data="mnist5k",
        model="resnet18",
        attention=attention,
        stem="cifar",
        overrides={"epochs": 1, "batch_size": 32, "image_size": IMAGE_SIZE},
        limit_train_batches=STEPS,
        limit_val_batches=2,
        out_dir=str(out),
        checkpoints="last",
        progress=False,
        num_workers=0,
    )
    train(cfg)
    return ckpt


@pytest.fixture(scope="session")
def checkpoints(request, tmp_path_factory) -> dict[str, Path]:
    """``{"scsa": path, "none": path}``: the two trained checkpoints."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    cache = getattr(request.config, "cache", None)
    if cache is None:  # pytest -p no:cacheprovider: train them for this session only
        root = tmp_path_factory.mktemp("scsa_explain")
        return {att: _train(root / att, att) for att in ("scsa", "none")}
    root = Path(cache.mkdir(f"scsa_explain_{_code_key()}"))
    for old in root.parent.glob("scsa_explain_*"):  # models of older code: 180 MB each pair
        if old != root:
            shutil.rmtree(old, ignore_errors=True)
    return {att: _train(root / att, att) for att in ("scsa", "none")}
