"""`scsa yolo compare` and `predict` end to end, tiny and offline."""

from __future__ import annotations

import importlib.util
import json
import socket

import pytest

if importlib.util.find_spec("ultralytics") is None:
    pytest.skip("needs the yolo extra (ultralytics)", allow_module_level=True)
pytestmark = pytest.mark.yolo

from typer.testing import CliRunner  # noqa: E402

import scsa.integrations.ultralytics  # noqa: E402, F401  (configures ultralytics before it is imported)
from scsa.cli.yolo import app, summarize  # noqa: E402


@pytest.mark.slow
def test_compare_writes_its_table_offline(tmp_path, monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    out = tmp_path / "cmp"
    args = ["compare", "-a", "eca", "--epochs", "1", "--imgsz", "64", "--n-train", "8", "--n-val", "4"]
    result = CliRunner().invoke(app, [*args, "--batch", "4", "--quick", "-o", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    table = (out / "compare.md").read_text()
    assert table.count("\n| ") == 2 and "| none | - |" in table and "| eca | backbone |" in table
    assert "one seed: no ranking" in table
    saved = json.loads((out / "compare.json").read_text())
    settings = saved["settings"]  # --quick fills in what was not given, and only that
    assert (settings["epochs"], settings["n_train"], settings["batch"], settings["workers"]) == (1, 8, 4, 0)
    assert settings["extra"] == {"mosaic": 0.0, "warmup_epochs": 1.0}
    eca = saved["table"][1]
    assert eca["params"] > saved["table"][0]["params"] and eca["GFLOPs"] > 0 and eca["FPS"] > 0
    assert (out / "compare.png").stat().st_size > 1000 and (out / "compare.csv").is_file()
    assert attempts == []

    best = saved["runs"][1]["best"]
    image = next((out / "data").glob("*/images/val/*.png"))
    result = CliRunner().invoke(
        app, ["predict", best, "-s", str(image), "--imgsz", "64", "-o", str(tmp_path / "p")]
    )
    assert result.exit_code == 0 and f"{image.name}:" in result.output, result.output


def test_summary_judges_differences_against_the_seed_spread():
    rows = [
        {
            "attention": a,
            "where": "-",
            "seed": s,
            "params": 1,
            "GFLOPs": 1.0,
            "FPS": 1.0,
            "mAP50": 0.0,
            "precision": 0.0,
            "recall": 0.0,
            "mAP50-95": v,
        }
        for a, vals in (
            ("none", (0.30, 0.32, 0.31)),
            ("scsa", (0.31, 0.33, 0.30)),
            ("eca", (0.40, 0.41, 0.42)),
        )
        for s, v in enumerate(vals)
    ]
    verdicts = {e["attention"]: e["verdict"] for e in summarize(rows, ["none", "scsa", "eca"])}
    assert verdicts == {"none": "baseline", "scsa": "within spread (tie)", "eca": "better"}
    one = summarize([r for r in rows if r["seed"] == 0], ["none", "eca"])
    assert one[1]["verdict"] == "one seed: no ranking" and one[1]["mAP50-95_std"] is None
