"""`scsa compare`: runs, table, CSV/JSON/PNG outputs, and the noise-aware verdicts."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from scsa.attention import list_attentions
from scsa.cli import app
from scsa.tasks.classification.compare import DEFAULT_ATTENTIONS, CompareConfig, compare
from scsa.tasks.classification.report import format_report, format_table, verdicts

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row(name, mean, std=None, n=1000, params=1_000_000, seeds=3):
    row = {"attention": name, "params": params, "macs": 5e6, "throughput": 100.0, "seeds": seeds}
    row.update(val_images=n, wall_time_s=1.0)
    for key in ("best_top1", "final_top1", "best_top5", "final_top5"):
        row[f"{key}_mean"], row[f"{key}_std"] = mean, std
    return row


def test_verdicts_do_not_rank_noise():
    # 1,000 val images at ~97%: the sampling error alone is ~0.5 points, so 0.4 apart is a tie
    rows = [_row("none", 97.0), _row("se", 97.4), _row("scsa", 93.0)]
    assert verdicts(rows) == ["tie", "best", "-4.40"]
    # one seed: the spread between seeds is unknown, nothing is judged
    assert verdicts([_row("none", 97.0, seeds=1), _row("scsa", 50.0, seeds=1)]) == ["n/a", "n/a"]
    # with seeds, the spread over seeds widens the margin
    rows = [_row("none", 95.0, std=2.0), _row("scsa", 98.0, std=0.5)]
    assert verdicts(rows) == ["tie", "best"]
    rows = [_row("none", 95.0, std=0.2, n=100_000), _row("scsa", 98.0, std=0.2, n=100_000)]
    assert verdicts(rows) == ["-3.00", "best"]


def test_table_shows_mean_std_and_deltas():
    table = format_table([_row("none", 97.0, 0.1), _row("scsa", 97.2, 0.3, params=1_016_384)])
    assert "| scsa | 1.016 | +16.4 | 5.0 | 100 | 97.20 ± 0.30 |" in table
    assert table.splitlines()[0].startswith("| attention | params (M) |")


def test_one_seed_report_ranks_nothing_and_says_why():
    rows = [_row("none", 97.0, seeds=1), _row("scsa", 90.0, seeds=1)]
    md = format_report(
        rows, {"model": "resnet18", "data": "mnist5k", "device": "cpu", "throughput_batch": 32}, 1, True
    )
    assert "| scsa | 1.000 | +0.0 | 5.0 | 100 | 90.00 | 90.00 | 90.00 | 90.00 | 1 | n/a |" in md
    assert "Do not rank blocks" in md and "`--quick` trains a few steps" in md
    assert "sampling error alone is ±0.8 points (1 s.e. at 94% accuracy)" in md


def test_default_list_is_the_issue_list():
    assert DEFAULT_ATTENTIONS == ("none", "se", "cbam", "eca", "ca", "ema", "scsa")


def test_compare_two_blocks_writes_the_report(image_folder, tmp_path):
    attentions = [a for a in ("none", "se") if a in list_attentions()]
    cfg = CompareConfig(
        data=str(image_folder),
        attentions=attentions,
        overrides={"epochs": 1, "batch_size": 16, "image_size": 8},
        seeds=2,
        train_options={"limit_train_batches": 1, "precise_bn": 1, "progress": False},
        out_dir=str(tmp_path / "cmp"),
        throughput_batch=2,
    )
    seen = []
    result = compare(cfg, on_run=lambda a, s, r: seen.append((a, s)))
    assert seen == [(a, s) for a in attentions for s in (0, 1)]
    out = tmp_path / "cmp"
    with open(out / "compare.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["attention"] for r in rows] == attentions
    assert all(r["seeds"] == "2" and r["vs_best_top1"] != "n/a" for r in rows)  # two seeds: verdicts
    for key in (
        "params",
        "macs",
        "throughput",
        "best_top1_mean",
        "final_top5_mean",
        "wall_time_s",
        "vs_best_top1",
    ):
        assert key in rows[0], key
    assert int(rows[0]["params"]) > 11_000_000 and float(rows[0]["throughput"]) > 0  # resnet18
    md = (out / "compare.md").read_text()
    assert md == result.markdown
    assert "Single runs on small data are noise" in md and "2 seeds per block" in md
    assert "validation images the sampling error alone is ±" in md
    assert all(f"| {a} |" in md for a in attentions) and " ± " in md  # mean ± std over the seeds
    saved = json.loads((out / "compare.json").read_text())
    assert [(r["attention"], r["seed"]) for r in saved["runs"]] == seen
    assert (out / "compare.png").read_bytes()[:8] == PNG_MAGIC
    assert (out / attentions[-1] / "seed1" / "metrics.csv").exists()
    assert not (out / attentions[0] / "seed0" / "checkpoints").exists()  # compare keeps no checkpoints


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"attentions": ["none", "nope"]}, r"unknown attention\(s\) \['nope'\]"),
        ({"attentions": ["se", "se"]}, "must not repeat"),
        ({"seeds": 0}, "seeds must be an integer >= 1"),
        ({"train_options": {"seed": 3}}, r"train_options cannot set \['seed'\]"),
    ],
)
def test_bad_compare_config_fails_before_training(kw, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        compare(CompareConfig(out_dir=str(tmp_path), **kw))


def test_cli_compare_rejects_unknown_attention(tmp_path):
    res = CliRunner().invoke(app, ["compare", "-a", "none,bogus", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "unknown attention(s) ['bogus']" in res.output
