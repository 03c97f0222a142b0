"""Run manifests: what produced an output (resolved params, package versions, git revision, device, seed).

Every stage writes ``<output>.manifest.json`` (or ``manifest.json`` inside an output folder). The manifest holds
no wall-clock time, so two identical runs write identical manifests and DVC/Snakemake checksums stay stable.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from nat2.config import Params, params_hash, to_dict
from nat2.io import write_json

__all__ = ["build_manifest", "git_revision", "write_manifest"]

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


def build_manifest(stage: str, params: Params, device: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of one stage run."""
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
        **(extra or {}),
    }


def write_manifest(path: str | os.PathLike[str], stage: str, params: Params, device: str,
                   extra: dict[str, Any] | None = None) -> None:
    """Atomically write the manifest of one stage run to ``path``."""
    write_json(path, build_manifest(stage, params, device, extra))
