"""End to end: a detection run's files and numbers, exact resume, eval/predict, and the CLI."""

import json

import pytest
import torch

from scsa.engine import TrainerOptions
from scsa.tasks.detection.metrics import METRIC_KEYS
from scsa.tasks.detection.train import DetectConfig, evaluate_detector, load_detector, train_detector

TINY = {"n_train": 4, "n_val": 2, "image_size": 96, "min_size": 64, "max_size": 64, "batch_size": 2}


def _options(**kw):
    return TrainerOptions(accelerator="cpu", progress=False, **kw)


@pytest.mark.slow
def test_run_files_and_output_contract(tmp_path):
    cfg = DetectConfig(detector="maskrcnn", backbone="resnet18", attention="scsa", epochs=1, **TINY)
    train_detector(cfg, _options(), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for row in (summary["best"], summary["final"]):
        for key in ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100"):
            assert -1 <= row[key] <= 1 and -1 <= row["segm_" + key] <= 1  # -1: no object of that size
    assert summary["monitor"] == "val_map" and set(METRIC_KEYS) <= set(summary["final"])
    for name in ("metrics.csv", "curves.png", "checkpoints/last.ckpt", "checkpoints/best.ckpt"):
        assert (tmp_path / name).is_file()
    preds = json.loads((tmp_path / "predictions_val.json").read_text())
    assert all(set(p) == {"image_id", "category_id", "bbox", "score"} for p in preds)
    assert all(1 <= p["category_id"] <= 10 for p in preds)
    assert (tmp_path / "predictions_val_segm.json").is_file()
    model, info = load_detector(tmp_path / "checkpoints" / "last.ckpt")
    assert info["classes"] == [str(d) for d in range(10)] and not model.training
    values = evaluate_detector(tmp_path / "checkpoints" / "last.ckpt", out_dir=tmp_path / "eval")
    assert values["map"] == pytest.approx(
        summary["final"]["map"], abs=1e-6
    )  # the same model on the same data


@pytest.mark.slow
def test_resume_is_exact(tmp_path):
    cfg = DetectConfig(detector="fcos", backbone="resnet18", attention="scsa", **TINY)
    straight = train_detector(DetectConfig(**{**cfg.__dict__, "epochs": 2}), _options(), tmp_path / "a")
    train_detector(DetectConfig(**{**cfg.__dict__, "epochs": 1}), _options(), tmp_path / "b")
    resumed = train_detector(
        DetectConfig(**{**cfg.__dict__, "epochs": 2}), _options(), tmp_path / "b", resume="last"
    )
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]
    a = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_cli_train_eval_predict_export(tmp_path):
    from typer.testing import CliRunner

    from scsa.cli.detect import app
    from scsa.tasks.detection.data import export_mnistdet

    runner = CliRunner()
    data = export_mnistdet(tmp_path / "yolo", fmt="yolo", n_train=4, n_val=2, image_size=96)
    run = tmp_path / "run"
    args = [
        "train",
        "-d",
        str(data),
        "--detector",
        "retinanet",
        "-m",
        "resnet18",
        "-a",
        "eca",
        "--epochs",
        "1",
        "--min-size",
        "64",
        "--max-size",
        "64",
        "-b",
        "2",
        "-o",
        str(run),
        "--no-progress",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "best (epoch 1): mAP" in result.output
    ckpt = run / "checkpoints" / "best.ckpt"
    result = runner.invoke(app, ["eval", "-c", str(ckpt), "-o", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output and "per-class AP" in result.output
    image = tmp_path / "yolo" / "images" / "val" / "000000.png"
    result = runner.invoke(
        app, ["predict", str(image), "-c", str(ckpt), "-o", str(tmp_path / "pred"), "--score-thresh", "0"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pred" / "000000.png").is_file()
    assert json.loads((tmp_path / "pred" / "detections.json").read_text())[0]["file"] == str(image)
    bad = runner.invoke(app, ["train", "-d", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "cannot tell the format" in bad.output


@pytest.mark.slow
def test_compare_table(tmp_path):
    from scsa.tasks.detection.compare import compare_detectors

    cfg = DetectConfig(detector="fcos", backbone="resnet18", epochs=1, **{**TINY, "n_train": 2, "n_val": 1})
    rows = compare_detectors(cfg, _options(checkpoints="none"), tmp_path, ["none", "scsa"], seeds=1)
    assert [r["attention"] for r in rows] == ["none", "scsa"] and all(r["verdict"] == "n/a" for r in rows)
    assert rows[1]["params"] > rows[0]["params"] and rows[0]["gflops"] > 0 and rows[0]["fps"] > 0
    for name in ("compare.md", "compare.csv", "compare.json", "compare.png"):
        assert (tmp_path / name).is_file()
    assert "One seed" in (tmp_path / "compare.md").read_text()
