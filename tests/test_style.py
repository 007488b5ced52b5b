"""The code style the project keeps (ruff, configured in pyproject.toml): pyflakes' errors (undefined
names, unused imports and variables), pycodestyle (lines up to 120 characters, ambiguous names) and
import order, over the package, operators, app, tests, benchmarks and scripts."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


def _ruff() -> list[str]:
    beside = Path(sys.executable).with_name("ruff")
    if beside.exists():
        return [str(beside)]
    if shutil.which("ruff"):
        return ["ruff"]
    pytest.fail("ruff is not installed; scripts/setup.sh installs it")


def test_ruff_finds_nothing():
    result = subprocess.run([*_ruff(), "check", "--no-cache", "--output-format", "concise", "."], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_ruff_reads_the_project_configuration(tmp_path):
    # a copy of a module with a line of 121 characters is refused: the limit is the configured one
    long_line = "x = " + repr("a" * 115)
    assert len(long_line) == 121
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (tmp_path / "module.py").write_text(long_line + "\n")
    result = subprocess.run([*_ruff(), "check", "--no-cache", "--output-format", "concise", "."], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 1 and "E501" in result.stdout, result.stdout
