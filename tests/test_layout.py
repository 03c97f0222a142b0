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


def test_a_repository_copy_leaves_a_users_run_behind(tmp_path) -> None:
    """Tests copy the working tree; what a user's `make run` left in results/ and data/ must not come along."""
    from nat2.pipeline import copy_repo

    src = tmp_path / "src"
    (src / "results/supernet").mkdir(parents=True)
    (src / "data").mkdir()
    for rel in ("results/README.md", "data/README.md", "nat2.txt"):
        (src / rel).write_text(rel)
    subprocess.run(["git", "init", "-q"], cwd=src, check=True)
    subprocess.run(["git", "add", "-A"], cwd=src, check=True)
    (src / "results/supernet/full.metrics.csv").write_text("epoch\n1\n")  # a plot DVC keeps out of its cache
    (src / "data/split.parquet").write_bytes(b"PAR1")
    (src / "notes.txt").write_text("untracked, not a run output")
    (src / "dvc.lock").write_text("schema: '2.0'\n")  # `make run` then `make test`: DVC's record of that run
    (src / "data/raw/FashionMNIST/raw").mkdir(parents=True)  # `nat2 fetch-data` downloaded the dataset here
    (src / "data/raw/FashionMNIST/raw/t10k-labels-idx1-ubyte").write_bytes(b"idx")
    dest = copy_repo(src, tmp_path / "dest")
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*")
                    if p.is_file() and not p.is_relative_to(dest / "data/raw"))
    assert copied == ["data/README.md", "nat2.txt", "notes.txt", "results/README.md"]
    assert (dest / "data/raw").is_symlink() and (dest / "data/raw").resolve() == (src / "data/raw").resolve()
    assert (dest / "data/raw/FashionMNIST/raw/t10k-labels-idx1-ubyte").read_bytes() == b"idx"
