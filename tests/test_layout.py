"""The repository's layout: the fixed top level exists in a fresh clone, and git tracks nothing it ignores."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from helpers import ROOT

TOP_LEVEL = ("Snakefile", "rules", "dvc.yaml", "params.yaml", "params", "profiles", "nat2", "nat2/stages", "data",
             "results", "tests", "benchmarks", "pyproject.toml", "Makefile", "README.md", ".ci/run")


def _git(*args: str) -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()


def test_a_clone_has_the_fixed_top_level() -> None:
    tracked = _git("ls-files")
    for entry in TOP_LEVEL:
        assert any(f == entry or f.startswith(entry + "/") for f in tracked), f"{entry} is not in a fresh clone"
    assert "data/README.md" in tracked and "results/README.md" in tracked


def test_git_tracks_no_ignored_file() -> None:
    assert _git("ls-files", "--cached", "--ignored", "--exclude-standard") == []
