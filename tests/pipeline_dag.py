"""Read the jobs of both pipeline definitions as ``{frozenset(outputs): (command, inputs)}``, through public
interfaces only: Snakemake's dry-run listing (``snakemake -n -p --forceall``) and DVC's ``Repo.index.stages``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from nat2.pipeline import tool_env


def _norm(cmd: str) -> str:
    return " ".join(cmd.split())


def _files(line: str) -> frozenset[str]:
    return frozenset(f.strip() for f in line.split(",") if f.strip())


def snakemake_jobs(root: Path, *args: str) -> dict[frozenset[str], tuple[str, frozenset[str]]]:
    """Every job of a dry run that forces the whole DAG (extra ``args``, e.g. ``--config``, are passed on)."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--forceall", "--nocolor", *args],
                          cwd=root, env=tool_env(), capture_output=True, text=True, check=True)
    jobs: dict[frozenset[str], tuple[str, frozenset[str]]] = {}
    for block in re.split(r"\n(?=\[[^\n]*\]\nrule )", proc.stdout + "\n"):
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, flags=re.M))
        shell = re.search(r"^Shell command: (.*)$", block, flags=re.M)
        if "output" in fields and shell and shell.group(1) != "None":
            # Snakemake adds the configfile to every job's inputs; DVC tracks it through each stage's params
            jobs[_files(fields["output"])] = (_norm(shell.group(1)),
                                              _files(fields.get("input", "")) - {"params.yaml"})
    return jobs


def dvc_stages(root: Path) -> dict[frozenset[str], tuple[str, frozenset[str]]]:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        # params.yaml appears as a (params) dependency of every stage; compare file deps only
        return {frozenset(o.def_path for o in st.outs):
                (_norm(st.cmd), frozenset(d.def_path for d in st.deps) - {"params.yaml"})
                for st in repo.index.stages}
