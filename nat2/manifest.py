"""Run manifests: what produced an output (resolved params, package versions, git revision, device, seed).

Every stage writes ``<output>.manifest.json`` beside its main output file (or ``manifest.json`` inside an output
folder; :func:`manifest_path`), with the content hash of each input it read. The manifest holds no wall-clock
time, so two identical runs write identical manifests and DVC/Snakemake checksums stay stable.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from nat2.config import Params, params_hash, to_dict
from nat2.io import write_json

__all__ = ["build_manifest", "file_digest", "git_revision", "manifest_path", "write_manifest"]

_PACKAGES = ("nat2", "torch", "torchvision", "numpy", "pandas", "pyarrow", "pymoo", "lightgbm", "scikit-learn")


def git_revision(cwd: str | os.PathLike[str] | None = None) -> str:
    """The current git commit (``+dirty`` when tracked files differ), or ``unknown`` outside a checkout."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def manifest_path(output: str | os.PathLike[str]) -> Path:
    """Where a stage's manifest goes: ``<stem>.manifest.json`` beside a file, ``manifest.json`` in a folder."""
    out = Path(output)
    return out / "manifest.json" if out.is_dir() or not out.suffix else out.with_name(f"{out.stem}.manifest.json")


def file_digest(path: str | os.PathLike[str] | None, length: int = 16) -> str:
    """First ``length`` hex digits of the sha256 of a file, of a folder's files (names, bytes), or ``-`` for None."""
    if path is None:
        return "-"
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        if p.is_dir():
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:length]


def build_manifest(stage: str, params: Params, device: str, extra: dict[str, Any] | None = None,
                   inputs: Mapping[str, str | os.PathLike[str] | None] | None = None) -> dict[str, Any]:
    """The manifest of one stage run (``inputs``: name -> path of each file or folder read, hashed here)."""
    return {
        "stage": stage,
        "argv": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "params": to_dict(params),
        "params_hash": params_hash(params),
        "seed": params.seed,
        "device": device,
        "platform": f"{platform.system()}-{platform.machine()}",
        "versions": _versions(),
        "git_revision": git_revision(),
        "inputs": {name: {"path": str(path), "sha256": file_digest(path)} for name, path in (inputs or {}).items()
                   if path is not None},
        **(extra or {}),
    }


def write_manifest(path: str | os.PathLike[str], stage: str, params: Params, device: str,
                   extra: dict[str, Any] | None = None,
                   inputs: Mapping[str, str | os.PathLike[str] | None] | None = None) -> None:
    """Atomically write the manifest of one stage run to ``path``."""
    write_json(path, build_manifest(stage, params, device, extra, inputs))
