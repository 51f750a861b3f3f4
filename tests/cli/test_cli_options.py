"""The CLI layout: sub-apps, aliases, --config files, the resume rule, and --help in 80 columns.

The training functions are replaced by stand-ins that record what they were given, so these tests
check the command line alone and run in a second.
"""

from __future__ import annotations

import json
import re
import sys
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

import scsa.tasks.classification as classification
from scsa.cli import SUBAPPS, _broken, app, common

runner = CliRunner()


@pytest.fixture
def captured(monkeypatch):
    """Replace train and compare by stand-ins; returns what they received."""
    seen: dict = {}

    def fake_train(cfg):
        seen["train"] = cfg
        return SimpleNamespace(
            best_top1=50.0, best_top5=90.0, final_top1=40.0, final_top5=80.0, best_epoch=1, wall_time_s=1.0,
            skipped_images=[], skipped_nonfinite_steps=0, out_dir=cfg.out_dir,
        )  # fmt: skip

    def fake_compare(cfg, on_run=None):
        seen["compare"] = cfg
        return SimpleNamespace(markdown="table", out_dir=cfg.out_dir)

    monkeypatch.setattr(classification, "train", fake_train)
    # the package's `compare` is the function; the module of the same name is in sys.modules
    monkeypatch.setattr(sys.modules["scsa.tasks.classification.compare"], "compare", fake_compare)
    return seen


def _invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def test_sub_apps_and_aliases_are_registered():
    result = _invoke("--help")
    assert result.exit_code == 0
    for name in ("classify", "train", "eval", "compare", "profile", "demo"):
        assert name in result.output
    assert SUBAPPS == ("classify", "detect", "segment", "yolo", "explain")
    for name in ("train", "eval", "compare"):
        assert _invoke("classify", name, "--help").exit_code == 0


def test_a_broken_sub_app_says_why_instead_of_breaking_the_cli():
    stub = typer.Typer()
    stub.add_typer(_broken("detect", ImportError("no module named pycocotools")), name="detect")
    result = runner.invoke(stub, ["detect"])
    assert result.exit_code == 1 and "scsa detect is unavailable: ImportError" in result.output


def test_alias_and_classify_train_take_the_same_options(captured, tmp_path):
    args = ["-a", "se", "--image-size", "16", "--epochs", "2", "--limit-train-batches", "4", "-o", tmp_path]
    assert _invoke("train", *args).exit_code == 0
    alias = captured["train"]
    assert _invoke("classify", "train", *args).exit_code == 0
    assert captured["train"] == alias
    assert alias.attention == "se" and alias.overrides == {"image_size": 16, "epochs": 2}
    assert alias.limit_train_batches == 4 and alias.limit_val_batches == 1.0  # unset: TrainConfig's default


def test_config_file_then_command_line(captured, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("attention: eca\nimage-size: 16\nseed: 3\nattention_kwargs: {k_size: 5}\ndevices: 2\n")
    result = _invoke("classify", "train", "--config", cfg, "--seed", "7", "-o", tmp_path / "run")
    assert result.exit_code == 0, result.output
    got = captured["train"]
    assert (got.attention, got.seed, got.overrides, got.devices) == ("eca", 7, {"image_size": 16}, 2)
    assert got.attention_kwargs == {"k_size": 5} and got.out_dir == str(tmp_path / "run")


def test_bad_config_files_are_named(captured, tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"attention": "se", "imagesize": 16}))
    result = _invoke("classify", "train", "--config", cfg)
    assert result.exit_code == 2 and "unknown option(s) ['imagesize']" in result.output
    cfg.write_text(json.dumps({"seed": "three"}))
    result = _invoke("classify", "train", "--config", cfg)
    assert result.exit_code == 2 and "seed='three' is not a valid int" in result.output


def _run_folder(path, **config):
    stored = {"attention": "scsa", "seed": 1, "deterministic": True, "devices": 1, "out_dir": str(path)}
    stored["overrides"] = {"epochs": 3, "image_size": 16}
    stored.update(config)
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"task": "classification", "config": stored}))
    return path


def test_resume_takes_the_run_configuration(captured, tmp_path):
    run = _run_folder(tmp_path / "run")
    before = (run / "config.json").read_bytes()
    assert _invoke("train", "--resume", "last", "-o", run).exit_code == 0
    got = captured["train"]
    assert (got.attention, got.seed, got.deterministic, got.resume) == ("scsa", 1, True, "last")
    assert got.overrides == {"epochs": 3, "image_size": 16}
    # the same values again are fine; a larger --epochs and --devices are applied with a note
    result = _invoke("train", "--resume", "last", "-o", run, "--epochs", "5", "--devices", "2", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert captured["train"].overrides["epochs"] == 5 and captured["train"].devices == 2
    assert "note: --epochs changed from 3 to 5" in result.output
    assert (run / "config.json").read_bytes() == before  # the CLI never rewrites it


def test_resume_refuses_other_options_naming_them(captured, tmp_path):
    run = _run_folder(tmp_path / "run")
    result = _invoke(
        "train", "--resume", "last", "-o", run, "--image-size", "32", "--seed", "0", "--epochs", "2"
    )
    assert result.exit_code == 2
    # rich wraps the message in a box at the terminal's width: compare without spaces and box edges
    text = re.sub(r"[\s│]+", "", result.output)
    for part in (
        "--image-size 32 (the run has 16)",
        "--seed 0 (the run has 1)",
        "--epochs 2 (the run has 3)",
    ):
        assert part.replace(" ", "") in text, result.output
    assert "train" not in captured


def test_compare_takes_train_options_without_a_second_mapping(captured, tmp_path):
    assert _invoke("compare", "--quick", "-o", tmp_path).exit_code == 0
    cfg = captured["compare"]
    assert cfg.quick and cfg.overrides == {} and cfg.train_options["checkpoints"] == "none"
    for key in ("limit_train_batches", "limit_val_batches", "precise_bn", "seed", "attention"):
        assert key not in cfg.train_options  # compare's defaults (CPU_MNIST5K, QUICK) fill them
    args = [
        "-a",
        "none,se",
        "--image-size",
        "8",
        "--limit-val-batches",
        "2",
        "--deterministic",
        "--accumulate",
        "2",
    ]
    assert _invoke("classify", "compare", *args, "-o", tmp_path).exit_code == 0
    cfg = captured["compare"]
    assert cfg.attentions == ["none", "se"] and cfg.overrides == {"image_size": 8}
    assert cfg.train_options["limit_val_batches"] == 2 and cfg.train_options["deterministic"]
    assert cfg.train_options["accumulate_grad_batches"] == 2


@pytest.mark.parametrize(
    "command", [[], ["classify"], ["classify", "train"], ["compare"], ["classify", "eval"], ["profile"]]
)
def test_help_reads_well_in_80_columns(command):
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    # no option's help wraps over more than three lines (a row starting with -- opens an option)
    rows, current = [], 0
    for line in lines:
        body = line.strip("│ ")
        if body.startswith("-") or line.startswith(("╭", "╰")):  # an option's first row, or a panel edge
            rows.append(current)
            current = 1 if body.startswith("-") else 0
        elif current:
            current += 1
    rows.append(current)
    assert max(rows) <= 3, result.output


def test_trainer_options_are_declared_once_for_every_field():
    import dataclasses

    from scsa.engine import TrainerOptions

    fields = {f.name for f in dataclasses.fields(TrainerOptions)} - {"seed", "max_epochs"}
    assert fields <= {o.name for o in common.TRAINER}
    opts = common.options_from({"epochs": 4, "devices": "2", "limit_val_batches": "0.5", "precision": None})
    assert (opts.max_epochs, opts.devices, opts.limit_val_batches, opts.precision) == (4, 2, 0.5, None)
