"""The shared engine on a toy task: run files, the monitored metric, non-finite losses, resume checks."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from scsa.engine import NonFiniteLossError, TaskModule, TrainerOptions, fit

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ToyData(L.LightningDataModule):
    """32 points of a 2-class problem in 4 dimensions, in fixed order (batches of 8)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(32, 4, generator=g)
        self.y = (self.x[:, 0] > 0).long()

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=8)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=16)


class ToyTask(TaskModule):
    """A linear classifier; ``nan_at``: global steps whose loss is made NaN."""

    def __init__(self, nan_at: tuple[int, ...] = ()) -> None:
        super().__init__(info={"task": "toy", "width": 4}, seed=0)
        self.net = nn.Linear(4, 2)
        self.nan_at = set(nan_at)
        self.losses: list[torch.Tensor] = []
        self.correct = self.count = 0

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        if self.global_step in self.nan_at:
            loss = loss * float("nan")
        loss = self.check_loss(loss, batch_idx)
        if loss is None:
            return None
        self.losses.append(loss.detach())
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.correct += int((self.net(x).argmax(1) == y).sum())
        self.count += len(y)

    def on_validation_epoch_end(self):
        row = {"train_loss": torch.stack(self.losses).mean().item() if self.losses else float("nan")}
        row["val_acc"] = 100.0 * self.correct / self.count
        row["val_items"] = self.count
        self.losses, self.correct, self.count = [], 0, 0
        self.record(row)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def _options(**kw) -> TrainerOptions:
    return TrainerOptions(accelerator="cpu", max_epochs=kw.pop("max_epochs", 2), progress=False, **kw)


def _fit(out, module=None, **kw):
    kw.setdefault("options", _options())
    kw.setdefault("config", {"lr": 0.5, "epochs": 2})
    return fit(module or ToyTask(), ToyData(), out_dir=out, monitor=kw.pop("monitor", "train_loss"), **kw)


@pytest.fixture(autouse=True)
def _quiet():
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def test_fit_writes_the_run_folder(tmp_path):
    result = _fit(tmp_path / "run", mode="min", summary_extra=lambda h: {"rows": len(h)})
    out = tmp_path / "run"
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert [r["step"] for r in result.history] == [4, 8]
    assert (
        result.best == min(result.history, key=lambda r: r["train_loss"])
        and result.final == result.history[-1]
    )
    with open(out / "metrics.csv") as f:
        header = next(csv.reader(f))
    assert header == ["epoch", "step", "lr", "train_loss", "val_acc", "val_items", "epoch_time_s"]
    assert json.loads((out / "metrics.json").read_text()) == result.history
    summary = json.loads((out / "summary.json").read_text())
    assert summary["monitor"] == "train_loss" and summary["mode"] == "min" and summary["rows"] == 2
    assert summary["best_epoch"] == result.best_epoch and summary["skipped_nonfinite_steps"] == 0
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "toy" and config["config"] == {"lr": 0.5, "epochs": 2} and config["width"] == 4
    assert config["trainer"]["max_epochs"] == 2 and config["precision"] == "32"
    assert (out / "curves.png").read_bytes()[:8] == PNG_MAGIC
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["scsa"]["width"] == 4 and ckpt["scsa"]["history"] == result.history
    assert (out / "checkpoints" / "best.ckpt").is_file()


def test_curves_plot_every_float_key(tmp_path):
    from scsa.engine.plots import curve_keys

    rows = [{"epoch": 1, "step": 3, "lr": 0.1, "train_loss": 1.0, "val_map": 0.2, "val_images": 10}]
    rows.append({**rows[0], "epoch": 2, "val_loss_box": 0.5})
    assert curve_keys(rows) == (["train_loss", "val_loss_box"], ["val_map"])


def test_a_missing_monitored_key_is_named(tmp_path):
    with pytest.raises(KeyError, match="'val_map' is not in the recorded row"):
        _fit(tmp_path / "run", monitor="val_map")


class _CkptAtEpochStart(Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        path = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        self.seen = path.read_bytes() if trainer.current_epoch else None


def test_nonfinite_loss_stops_naming_epoch_and_step(tmp_path):
    seen = _CkptAtEpochStart()
    with pytest.raises(NonFiniteLossError, match=r"at epoch 2, step 5 \(batch 1 of the epoch\)") as err:
        _fit(tmp_path / "run", ToyTask(nan_at=(5,)), callbacks=[seen])
    assert (err.value.epoch, err.value.step) == (2, 5)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert last.read_bytes() == seen.seen  # last.ckpt is that of epoch 1, as it was
    assert len(json.loads((tmp_path / "run" / "metrics.json").read_text())) == 1


def test_skip_nonfinite_loss_counts_the_skipped_steps(tmp_path):
    module = ToyTask(nan_at=(1, 6))
    result = _fit(tmp_path / "run", module, options=_options(skip_nonfinite_loss=True))
    assert result.skipped_nonfinite_steps == 2
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["skipped_nonfinite_steps"] == 2
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert all(r["train_loss"] == r["train_loss"] for r in result.history)  # finite means: no NaN


def test_resume_refuses_a_changed_configuration(tmp_path):
    out = tmp_path / "run"
    _fit(out, options=_options(max_epochs=1), config={"lr": 0.5, "epochs": 1})
    before = (out / "config.json").read_bytes()
    with pytest.raises(ValueError, match=r"--lr 0.1 \(the run has 0.5\)"):
        _fit(out, resume="last", config={"lr": 0.1, "epochs": 1})
    assert (out / "config.json").read_bytes() == before  # never silently overwritten
    result = _fit(out, resume="last", config={"lr": 0.5, "epochs": 2})  # more epochs: safe
    assert [r["epoch"] for r in result.history] == [1, 2]
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["epochs"] == 1 and config["resumes"] == [
        {"changes": ["--epochs changed from 1 to 2"]}
    ]


def test_options_are_checked():
    with pytest.raises(ValueError, match="checkpoints must be one of"):
        TrainerOptions(checkpoints="all")
    with pytest.raises(ValueError, match="accumulate_grad_batches must be an integer >= 1"):
        TrainerOptions(accumulate_grad_batches=0)
