"""A run killed with SIGKILL mid-epoch, resumed with `--resume last -o RUN` and nothing else, ends with
the weights of a run that was never stopped (deterministic CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

CLI = [sys.executable, "-c", "from scsa.cli import main; main()"]
# the command, made small: 2 epochs of 4 batches at 16x16
ARGS = ["train", "-a", "scsa", "--epochs", "2", "--image-size", "16", "--seed", "1", "--deterministic"]
ARGS += [
    "--batch-size",
    "16",
    "--limit-train-batches",
    "4",
    "--limit-val-batches",
    "2",
    "--accelerator",
    "cpu",
]
ARGS += ["--no-progress"]
# The killed run is the same command; it only reports each finished training step in a file, so that
# the test can kill it mid-epoch (a progress bar on a pipe shows no steps).
WATCHED = """
import os, sys
from pathlib import Path
from scsa.tasks.classification.module import ImageClassifier
step = ImageClassifier.training_step
def watched(self, batch, batch_idx):
    out = step(self, batch, batch_idx)
    Path(os.environ["STEP_FILE"]).write_text(f"{self.current_epoch} {batch_idx}")
    return out
ImageClassifier.training_step = watched
from scsa.cli import main
main()
"""


def _weights(run) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def _rows(run) -> list[dict]:
    rows = json.loads((run / "metrics.json").read_text())
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]


def _kill_mid_epoch(run, step_file, epoch: int = 1, batch: int = 1, timeout: float = 900.0) -> None:
    """Run the command and SIGKILL it once training step ``batch`` (0-based) of epoch ``epoch`` (0-based)
    is done: in the middle of that epoch, its checkpoint not yet written."""
    env = {**os.environ, "STEP_FILE": str(step_file)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WATCHED, *ARGS, "-o", str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            done = step_file.read_text().split() if step_file.exists() else []
            if len(done) == 2 and (int(done[0]), int(done[1])) >= (epoch, batch):
                break
            assert proc.poll() is None, (
                f"the run ended before it could be killed:\n{proc.stdout.read()[-2000:]}"
            )
            assert time.monotonic() < deadline, "the run did not reach the middle of its epoch in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_last_ends_with_the_same_weights(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    uninterrupted = subprocess.Popen(
        [*CLI, *ARGS, "--no-progress", "-o", str(full)], stdout=subprocess.PIPE, text=True
    )
    _kill_mid_epoch(part, tmp_path / "step.txt")
    assert [r["epoch"] for r in _rows(part)] == [1]  # killed inside epoch 2: last.ckpt is epoch 1's
    out, _ = uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0, out

    config_before = (part / "config.json").read_bytes()
    resumed = subprocess.run(
        [*CLI, "train", "--resume", "last", "-o", str(part)], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (part / "config.json").read_bytes() == config_before  # nothing changed, nothing rewritten

    assert _rows(part) == _rows(full)
    a, b = _weights(full), _weights(part)
    assert a.keys() == b.keys()
    differ = [name for name in a if not torch.equal(a[name], b[name])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, first: {differ[:3]}"

    def report(text: str) -> str:  # "best val top-1 ...; final top-1 ...; 12 s" without the time
        return next(line for line in text.splitlines() if line.startswith("best val")).rsplit(";", 1)[0]

    assert report(resumed.stdout) == report(out)
