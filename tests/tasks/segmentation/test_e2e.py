"""Train, resume, evaluate, predict and the CLI on tiny mnistseg runs (end to end: slow)."""

import json

import numpy as np
import pytest
from lightning.pytorch.callbacks import Callback
from PIL import Image
from typer.testing import CliRunner

from scsa.engine import TrainerOptions
from scsa.tasks.segmentation.run import evaluate, predict, train

TINY = dict(
    data="mnistseg",
    decoder="fpn",
    backbone="resnet18",
    n_train=8,
    n_val=4,
    image_size=32,
    recipe_overrides=dict(
        iterations=4, val_interval=2, batch_size=4, crop_size=(32, 32), scale=(32, 32), decoder_channels=32
    ),
)


class _Crash(Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:  # after the first epoch's checkpoints
            raise RuntimeError("simulated crash")


def _options():
    return TrainerOptions(progress=False, num_workers=0, accelerator="cpu")


@pytest.mark.slow
def test_train_resume_eval_predict(tmp_path):
    full = train(tmp_path / "full", attention="scsa", options=_options(), **TINY)
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    for which in ("best", "final"):
        row = summary[which]
        assert all(0.0 <= row[k] <= 1.0 for k in ("miou", "macc", "aacc"))
        assert set(row["per_class_iou"]) >= {"background", "digit_0"}
    assert summary["epochs"] == 2 and summary["final"]["step"] == 4
    # a run stopped after its first validation resumes to the same result
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tmp_path / "cut", attention="scsa", options=_options(), callbacks=(_Crash(),), **TINY)
    resumed = train(tmp_path / "cut", attention="scsa", options=_options(), resume="last", **TINY)
    assert [r["step"] for r in resumed.history] == [2, 4]
    for key in ("train_loss", "val_loss", "miou", "aacc"):
        assert resumed.final[key] == pytest.approx(full.final[key], rel=1e-5, abs=1e-7), key
    # evaluation of the last checkpoint gives the final row's numbers
    scores = evaluate(tmp_path / "full" / "checkpoints" / "last.ckpt", n_val=4, image_size=32)
    assert scores["miou"] == pytest.approx(full.final["miou"], abs=1e-6)
    assert scores["images"] == 4
    # predict writes raw labels (palette PNG of class indices) and an overlay
    img = tmp_path / "in.png"
    Image.fromarray(np.zeros((40, 36, 3), np.uint8)).save(img)
    out = predict(tmp_path / "full", [img], tmp_path / "pred")
    labels = Image.open(out[0]["labels"])
    assert labels.mode == "P" and labels.size == (36, 40)
    assert np.asarray(labels).max() <= 10
    assert Image.open(out[0]["overlay"]).size == (36, 40)


@pytest.mark.slow
def test_cli_export_train_ade20k_and_errors(tmp_path):
    from scsa.cli.segment import app

    runner = CliRunner()
    res = runner.invoke(
        app,
        ["export-data", "-o", str(tmp_path / "m"), "--n-train", "6", "--n-val", "3", "--image-size", "32"],
    )
    assert res.exit_code == 0, res.output
    args = ["train", "-d", str(tmp_path / "m"), "--format", "ade20k", "--decoder", "unet", "-a", "none",
            "--iterations", "2", "--val-interval", "1", "-b", "2", "--crop-size", "32", "--no-progress",
            "--num-workers", "0", "--accelerator", "cpu", "-o", str(tmp_path / "run")]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "best mIoU" in res.output and (tmp_path / "run" / "checkpoints" / "best.ckpt").exists()
    res = runner.invoke(
        app, ["eval", "-c", str(tmp_path / "run"), "-d", str(tmp_path / "m"), "--format", "ade20k"]
    )
    assert res.exit_code == 0, res.output
    assert "digit_7" in res.output and "mIoU" in res.output
    # a bad mask: an error naming the file and the value, exit status 2
    Image.fromarray(np.full((32, 32), 40, np.uint8)).save(
        tmp_path / "m/annotations/validation/mnistseg_00000.png"
    )
    res = runner.invoke(
        app, ["eval", "-c", str(tmp_path / "run"), "-d", str(tmp_path / "m"), "--format", "ade20k"]
    )
    assert res.exit_code == 2 and "mnistseg_00000.png" in res.output and "[40]" in res.output
    res = runner.invoke(
        app, ["eval", "-c", str(tmp_path / "run"), "-d", str(tmp_path / "m"), "--skip-bad-images"]
    )
    assert res.exit_code == 0 and "skipped 1 bad" in res.output
