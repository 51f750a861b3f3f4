"""Train and eval end to end on a tiny folder: outputs, checkpoints, eval of a checkpoint, the CLI."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from typer.testing import CliRunner

from scsa.cli import app
from scsa.tasks.classification import TrainConfig, evaluate, load_checkpoint_model, train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, make_folder):
    """resnet18 (CIFAR stem) with SCSA, 2 epochs on 48 images at 8x8: the model path of the CLI."""
    root = tmp_path_factory.mktemp("train")
    data = make_folder(root / "data")
    cfg = TrainConfig(
        data=str(data),
        model="resnet18",
        attention="scsa",
        overrides={"epochs": 2, "batch_size": 16, "image_size": 8},
        out_dir=str(root / "run"),
        precise_bn=2,  # BatchNorm statistics of the final weights: eval of the checkpoint must match
        progress=False,
    )
    return cfg, train(cfg)


def test_run_writes_metrics_curves_and_checkpoints(trained):
    _, result = trained
    out = result.out_dir
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert result.best_top1 == max(r["val_top1"] for r in result.history)
    assert result.final_top1 == result.history[-1]["val_top1"]
    assert result.history[-1]["val_images"] == 24
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5"} <= set(rows[0])
    assert json.loads((out / "metrics.json").read_text()) == result.history
    assert float(rows[1]["val_top1"]) == pytest.approx(result.history[1]["val_top1"])
    assert (out / "curves.png").read_bytes()[:8] == PNG_MAGIC
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_top1"] == result.best_top1 and summary["skipped_images"] == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model_spec"]["stem"] == "cifar"  # chosen for small images
    assert config["recipe"]["epochs"] == 2 and config["precision"] == "32"
    assert {p.name for p in (out / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}


def test_eval_of_a_checkpoint_reproduces_the_val_metrics(trained):
    cfg, result = trained
    ckpt = result.out_dir / "checkpoints" / "last.ckpt"
    ev = evaluate(ckpt, cfg.data, out_dir=result.out_dir / "eval", progress=False)
    assert ev.images == 24
    assert ev.top1 == pytest.approx(result.final_top1, abs=1e-4)
    assert ev.top5 == pytest.approx(result.final_top5, abs=1e-4)
    confusion = torch.tensor(ev.confusion)
    assert confusion.shape == (3, 3) and int(confusion.sum()) == 24
    assert 100.0 * confusion.diag().sum().item() / 24 == pytest.approx(ev.top1, abs=1e-4)
    saved = json.loads((result.out_dir / "eval" / "eval.json").read_text())
    assert saved["top1"] == pytest.approx(ev.top1) and saved["classes"] == ["class0", "class1", "class2"]
    assert (result.out_dir / "eval" / "confusion.png").read_bytes()[:8] == PNG_MAGIC
    best = evaluate(result.out_dir / "checkpoints" / "best.ckpt", cfg.data, progress=False)
    assert best.top1 == pytest.approx(result.best_top1, abs=1e-4)


def test_checkpoint_loads_weights_only_and_rebuilds_the_model(trained):
    _, result = trained
    model, info = load_checkpoint_model(result.out_dir / "checkpoints" / "last.ckpt")
    assert info["model_spec"]["attention"] == "scsa" and info["classes"] == ["class0", "class1", "class2"]
    for name, p in model.state_dict().items():
        assert torch.equal(p, result.model.state_dict()[name]), name


def test_eval_rejects_other_classes_and_foreign_files(trained, tmp_path, make_folder):
    cfg, result = trained
    other = make_folder(tmp_path / "other", classes=4, train_per_class=1, val_per_class=1)
    with pytest.raises(
        ValueError, match=r"differ from the checkpoint's classes: only in the data: \['class3'\]"
    ):
        evaluate(result.out_dir / "checkpoints" / "last.ckpt", str(other), progress=False)
    foreign = tmp_path / "plain.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="not a checkpoint of `scsa train`"):
        evaluate(foreign, cfg.data, progress=False)


def test_cli_eval(trained):
    cfg, result = trained
    ckpt = result.out_dir / "checkpoints" / "best.ckpt"
    res = CliRunner().invoke(app, ["eval", "-c", str(ckpt), "-d", cfg.data, "--no-progress"])
    assert res.exit_code == 0, res.output
    assert f"val top-1 {result.best_top1:.2f}%" in res.output
    assert (result.out_dir / "eval" / "confusion.png").exists()  # default: the run folder's eval/


def test_cli_train_errors_are_clear(image_folder, tmp_path):
    out = ["-o", str(tmp_path / "run")]
    (image_folder / "val" / "class2").rename(image_folder / "val" / "zebra")
    res = CliRunner().invoke(app, ["train", "-d", str(image_folder), *out])
    assert res.exit_code == 2
    assert "class folders differ" in res.output and "zebra" in res.output
    res = CliRunner().invoke(app, ["train", "-d", str(image_folder), "--lr", "0", "--epochs", "1", *out])
    assert res.exit_code == 2 and "lr must be a finite number > 0" in res.output
    if not torch.cuda.is_available():
        res = CliRunner().invoke(app, ["train", "--precision", "16-mixed", *out])
        assert res.exit_code == 2 and "'16-mixed' needs a CUDA GPU" in res.output
    assert not (tmp_path / "run").exists()  # nothing is written before the configuration is checked
