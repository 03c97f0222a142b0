"""Read the jobs of both pipeline definitions as ``{frozenset(outputs): (command, inputs)}``.

Snakemake exposes its DAG only through internal names (``_prepare_dag``, ``_build_dag``, ``dag.jobs``), pinned
by the ``snakemake<10`` requirement; DVC through ``Repo.index.stages``.
"""

from __future__ import annotations

import os
from pathlib import Path


def _norm(cmd: str) -> str:
    return " ".join(cmd.split())


def snakemake_jobs(root: Path) -> dict[frozenset[str], tuple[str, frozenset[str]]]:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import DAGSettings, OutputSettings, Quietness, ResourceSettings

    cwd = os.getcwd()
    os.chdir(root)
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL}, dryrun=True)) as api:
            wf_api = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=root / "Snakefile",
                                  workdir=root)
            wf = wf_api.dag(DAGSettings(forceall=True)).workflow_api._workflow
            wf._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
            wf._build_dag()
            # Snakemake adds the configfile to every job's inputs; DVC tracks it through each stage's params:
            return {frozenset(map(str, job.output)):
                    (_norm(job.shellcmd), frozenset(map(str, job.input)) - {"params.yaml"})
                    for job in wf.dag.jobs if job.shellcmd}
    finally:
        os.chdir(cwd)


def dvc_stages(root: Path) -> dict[frozenset[str], tuple[str, frozenset[str]]]:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        # params.yaml appears as a (params) dependency of every stage; compare file deps only
        return {frozenset(o.def_path for o in st.outs):
                (_norm(st.cmd), frozenset(d.def_path for d in st.deps) - {"params.yaml"})
                for st in repo.index.stages}
