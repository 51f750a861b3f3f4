"""Checkpoints: atomic writes, and a stopped-then-resumed run ending exactly where an uninterrupted one does."""

from __future__ import annotations

import os

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from scsa.engine.io import AtomicCheckpointIO
from scsa.io import write_json
from scsa.tasks.classification import TrainConfig, train


class StopAfterEpoch(Callback):
    """Simulates an interruption: the run stops after ``epoch`` epochs, as if killed between epochs."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


def _cfg(data, out, **kw) -> TrainConfig:
    # crop-flip augmentation and shuffling are on, so the test covers the data order and seeds too
    overrides = {"epochs": 3, "batch_size": 16, "image_size": 12}
    return TrainConfig(
        data=str(data), out_dir=str(out), overrides=overrides, deterministic=True, progress=False, **kw
    )


def _weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _rows(history):
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in history]


def test_resume_matches_uninterrupted_run(image_folder, tmp_path, make_net):
    def net():
        torch.manual_seed(0)  # the same initial weights for every run
        return make_net()

    full = train(_cfg(image_folder, tmp_path / "full"), model=net())
    stopped = train(_cfg(image_folder, tmp_path / "part"), model=net(), callbacks=[StopAfterEpoch(1)])
    assert [r["epoch"] for r in stopped.history] == [1]
    resumed = train(_cfg(image_folder, tmp_path / "part", resume="last"), model=net())

    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]  # the rows of the first part are kept
    assert _rows(resumed.history) == _rows(full.history)
    a = _weights(tmp_path / "full" / "checkpoints" / "last.ckpt")
    b = _weights(tmp_path / "part" / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # and the run really moved: the weights differ from those after one epoch
    first = stopped.model.state_dict()
    assert not torch.equal(first["0.weight"], a["model.0.weight"])


def test_resume_needs_an_existing_checkpoint(image_folder, tmp_path):
    with pytest.raises(ValueError, match=r"resume checkpoint .*last\.ckpt' does not exist"):
        train(_cfg(image_folder, tmp_path / "new", resume="last"))


def test_checkpoint_write_is_atomic(tmp_path):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"w": torch.ones(3)}, path)
    before = path.read_bytes()
    with pytest.raises(Exception, match=r"pickle|lambda"):  # torch.save fails half-way through
        io.save_checkpoint({"w": torch.zeros(3), "bad": lambda: None}, path)
    assert path.read_bytes() == before  # the previous checkpoint is intact
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt"]  # and no temporary file is left behind
    assert torch.equal(io.load_checkpoint(path)["w"], torch.ones(3))
    write_json(tmp_path / "m.json", {"a": 1})
    assert oct(os.stat(tmp_path / "m.json").st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
