"""The CLI entry point: --version, --help and the demo."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

import scsa
from scsa.cli import app

runner = CliRunner()


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"scsa {scsa.__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "profile", "train", "eval", "compare", "classify"):
        assert command in result.output


def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable, "-c", "from scsa.cli import main; main()", "--version"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and scsa.__version__ in out.stdout


def test_demo_prints_shapes_params_and_parity():
    result = runner.invoke(app, ["demo", "--channels", "16", "--size", "14", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert "256 parameters" in result.output
    assert "(2, 16, 14, 14) -> output (2, 16, 14, 14)" in result.output
    parity = float(result.output.split("max |out| = ")[1].split()[0])
    assert parity <= 1e-5
