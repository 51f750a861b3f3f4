"""Config files (YAML, JSON, a run's config.json) and the resume rule."""

from __future__ import annotations

import json

import pytest

from scsa.engine.config import check_resume, load_config_file


def test_yaml_and_json_files_with_dashes_or_underscores(tmp_path):
    (tmp_path / "a.yaml").write_text("image-size: 16\nattention: se\nlimit_train_batches: 4\n")
    assert load_config_file(tmp_path / "a.yaml") == {
        "image_size": 16,
        "attention": "se",
        "limit_train_batches": 4,
    }
    (tmp_path / "b.json").write_text(json.dumps({"--seed": 3, "overrides": {"lr": 0.1}}))
    assert load_config_file(tmp_path / "b.json") == {"seed": 3, "lr": 0.1}
    (tmp_path / "empty.yml").write_text("")
    assert load_config_file(tmp_path / "empty.yml") == {}


def test_a_run_config_json_gives_the_run_options(tmp_path):
    run = {"task": "classification", "config": {"attention": "scsa", "overrides": {"epochs": 3}}, "seed": 1}
    (tmp_path / "config.json").write_text(json.dumps(run))
    assert load_config_file(tmp_path / "config.json") == {"attention": "scsa", "epochs": 3}


def test_bad_files_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"config file '.*nope.yaml' does not exist"):
        load_config_file(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match=r"'.*list.yaml' must hold a mapping .* got list"):
        load_config_file(tmp_path / "list.yaml")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"'.*bad.json' is not valid YAML/JSON"):
        load_config_file(tmp_path / "bad.json")


def test_resume_rule():
    stored = {"image_size": 16, "seed": 1, "epochs": 3, "devices": 1, "deterministic": True}
    merged, notes = check_resume(stored, {"epochs": 3, "devices": "1", "resume": "last"})
    assert merged == stored and notes == []  # the same values (and where a run is) are fine
    merged, notes = check_resume(stored, {"epochs": 5, "devices": 2})
    assert merged["epochs"] == 5 and merged["devices"] == 2 and len(notes) == 2
    with pytest.raises(ValueError, match=r"--image-size 32 \(the run has 16\); --seed 0 \(the run has 1\)"):
        check_resume(stored, {"image_size": 32, "seed": 0, "devices": 2})
    with pytest.raises(ValueError, match=r"--epochs 2 \(the run has 3\)"):  # fewer epochs: refused
        check_resume(stored, {"epochs": 2})
