"""Driving the whole pipeline: the smoke run in a temporary copy, and the rerun of one search iteration.

Both go through Snakemake exactly as a user would (``snakemake --cores N`` with the workflow profile), so what
they prove is the pipeline itself, not a shortcut around it. ``make smoke`` and the pipeline tests share
:func:`smoke`; ``make rerun ITER=k`` calls :func:`rerun_iteration`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nat2.config import load_params
from nat2.errors import Nat2Error
from nat2.presets import use_preset

__all__ = ["ITERATION_STAGES", "RUN_FOLDERS", "STAGE_GROUPS",
           "copy_repo", "iteration_targets", "rerun_iteration", "run_tool",
           "smoke", "smoke_line", "stage_times", "tool_env"]

#: the four stages of one search iteration and one output file of each (what --forcerun is given)
ITERATION_STAGES = {"fit_surrogate": "surrogate.json", "search": "candidates.parquet",
                    "update_archive": "update.json", "adapt_supernet": "adapt.json"}


#: wall-time groups of the Snakemake benchmark files (results/benchmarks/<path>.tsv), by path prefix
STAGE_GROUPS = {"data": ("prepare_data",), "latency": ("profile_latency",),
                "super-net training": ("train_supernet/", "assemble_supernet"),
                "initial archive": ("search/sample_initial", "search/evaluate_", "search/init_archive"),
                "search iterations": ("search/fit_surrogate_", "search/search_", "search/update_archive_",
                                      "search/adapt_supernet_"),
                "baselines": ("final/baseline_",), "post-processing": ("final/",)}


def stage_times(benchmarks: Path) -> dict[str, float]:
    """Seconds of wall time per stage group, summed over the Snakemake benchmark files of a run."""
    out = dict.fromkeys(STAGE_GROUPS, 0.0)
    for tsv in sorted(benchmarks.rglob("*.tsv")):
        rel = tsv.relative_to(benchmarks).as_posix()
        group = next((g for g, prefixes in STAGE_GROUPS.items() if rel.startswith(prefixes)), None)
        lines = tsv.read_text().splitlines()
        if group is not None and len(lines) >= 2:
            out[group] += float(lines[-1].split("\t")[0])
    return out


def tool_env() -> dict[str, str]:
    """The environment for a pipeline tool: this interpreter's ``bin`` first on PATH, no DVC analytics.

    Stage commands call ``python``, which must be the interpreter that has nat2's dependencies.
    """
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def run_tool(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``snakemake``/``dvc``/``git`` (a module of this interpreter when it is one) in ``cwd``."""
    exe = [sys.executable, "-m", args[0]] if args[0] in ("snakemake", "dvc") else [args[0]]
    proc = subprocess.run([*exe, *args[1:]], cwd=cwd, env=tool_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise Nat2Error(f"`{' '.join(args)}` failed in {cwd} (exit {proc.returncode}): " + " | ".join(tail))
    return proc


#: folders where a run writes its outputs: a copy of the repository takes only their tracked files (READMEs)
RUN_FOLDERS = ("data/", "results/")
#: where ``nat2 fetch-data`` downloads datasets (``data.root``): a copy links to the source's, never re-downloads
RAW_DATA = "data/raw"


def copy_repo(src: Path, dest: Path) -> Path:
    """Copy the repository's files (tracked, plus untracked ones git does not ignore) into ``dest``.

    A run's outputs are left behind (untracked files under :data:`RUN_FOLDERS`, e.g. the plots DVC keeps out of
    its cache after ``make run``, and an untracked ``dvc.lock``): a copy is a fresh checkout, whatever the user has
    run in ``src``. Downloaded datasets (:data:`RAW_DATA`) are linked, not copied.
    """
    def listed(*flags: str) -> list[str]:
        out = subprocess.run(["git", "ls-files", "-z", *flags], cwd=src, capture_output=True, check=True).stdout
        return [p for p in out.decode().split("\0") if p]

    untracked = {p for p in listed("--others", "--exclude-standard") if p.startswith(RUN_FOLDERS) or p == "dvc.lock"}
    for rel in listed("--cached", "--others", "--exclude-standard"):
        source = src / rel
        if rel in untracked or not source.is_file():
            continue  # a run's output, or deleted in the working tree
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    raw = src / RAW_DATA
    if raw.is_dir() and not (dest / RAW_DATA).exists():  # downloaded datasets are inputs, not a run's outputs
        (dest / RAW_DATA).parent.mkdir(parents=True, exist_ok=True)
        (dest / RAW_DATA).symlink_to(raw.resolve(), target_is_directory=True)
    return dest


def iteration_targets(params_file: Path, iteration: str) -> list[str]:
    """One output file of each of ``iteration``'s four stages (forcing them reruns the iteration).

    Raises:
        Nat2Error: ``iteration`` is not one of ``search.iterations``.
    """
    params = load_params(params_file)
    if iteration not in params.search.iterations:
        raise Nat2Error(f"iteration {iteration!r} is not one of search.iterations "
                        f"{sorted(params.search.iterations, key=int)} in {params_file}; pick one of those")
    return [f"results/search/iter_{iteration}/{name}" for name in ITERATION_STAGES.values()]


def rerun_iteration(root: Path, iteration: str, cores: int) -> None:
    """Rerun one iteration's four stages and everything downstream with Snakemake, then record it for DVC."""
    targets = iteration_targets(root / "params.yaml", iteration)
    run_tool(["snakemake", "--cores", str(cores), "--forcerun", *targets], root)
    if (root / ".git").exists() and (root / "dvc.lock").exists():
        run_tool(["dvc", "commit", "-f", "-q"], root)


def smoke(dest: Path | None = None, preset: str = "params/ci.yaml", cores: int = 2,
          src: Path | None = None) -> dict[str, Any]:
    """Run the full chain on ``preset`` in a copy of the repository; return the figures of the smoke line.

    ``dest`` (default: a new temporary folder, deleted afterwards) receives the copy and keeps the run.
    """
    src = src or Path(__file__).resolve().parents[1]
    keep = dest is not None
    dest = Path(dest) if keep else Path(tempfile.mkdtemp(prefix="nat2-smoke-"))
    try:
        copy_repo(src, dest)
        use_preset(dest / preset, dest / "params.yaml")
        start = time.perf_counter()
        run_tool(["snakemake", "--cores", str(cores)], dest)
        wall = time.perf_counter() - start
        params = load_params(dest / "params.yaml")
        metrics = json.loads((dest / "results/report/metrics.json").read_text())
        slots = [dest / f"results/final/finetune/slot_{k}" for k in params.postprocess.slots]
        done = [s for s in slots if (s / "model.onnx").is_file() and (s / "model.pt2").is_file()]
        return {"iterations": len(params.search.iterations), "hv": metrics["final_hv"],
                "best_top1": metrics["best_test_top1"], "subnets": len(done), "wall_s": wall, "root": dest}
    finally:
        if not keep:
            shutil.rmtree(dest, ignore_errors=True)


def smoke_line(result: dict[str, Any]) -> str:
    """The last line ``make smoke`` prints."""
    return (f"smoke: iterations={result['iterations']} hv={result['hv']:.4f} best_top1={result['best_top1']:.2f} "
            f"subnets={result['subnets']} wall_s={result['wall_s']:.0f}")
