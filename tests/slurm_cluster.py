"""A real one-node SLURM cluster on localhost for the pipeline's SLURM test (Debian's slurm-wlm + munge).

``local_slurm(folder)`` installs the packages when they are missing (root and apt needed, else the test is
skipped), writes ``/etc/slurm/slurm.conf`` for one node with a ``cpu`` and a ``gpu`` partition (the ``gpu``
partition's node declares one GRES gpu backed by ``/dev/null``, so ``--gpus=1`` jobs are scheduled on a machine
without GPUs and run on CPU), starts munged, slurmctld and slurmd, and stops them afterwards. The configuration
lives at the default path because job steps (``srun`` inside a batch job) do not inherit ``SLURM_CONF``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MARKER = "# nat2 test cluster (tests/slurm_cluster.py); safe to delete"
CONF_DIR = Path("/etc/slurm")
PACKAGES = ("slurm-wlm", "munge")


def _run(*cmd: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check, **kw)


def ensure_packages() -> None:
    """Install slurm-wlm and munge through apt when missing; skip the test where that is impossible."""
    if all(shutil.which(t) for t in ("sbatch", "squeue", "slurmctld", "slurmd", "munged")):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("SLURM test needs slurm-wlm and munge (apt-get install slurm-wlm munge, as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run("apt-get", "update", "-qq", env=env)
    _run("apt-get", "install", "-y", "-qq", *PACKAGES, env=env)


def _conf(host: str, state: Path, cpus: int) -> str:
    return "\n".join([
        MARKER,
        "ClusterName=nat2test", f"SlurmctldHost={host}", "SlurmUser=root", "AuthType=auth/munge",
        f"StateSaveLocation={state}/ctld", f"SlurmdSpoolDir={state}/spool",
        f"SlurmctldPidFile={state}/slurmctld.pid", f"SlurmdPidFile={state}/slurmd.pid",
        f"SlurmctldLogFile={state}/slurmctld.log", f"SlurmdLogFile={state}/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "ReturnToService=2", "MpiDefault=none",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        # the profile asks for up to 32 GB per job: let the node claim more memory than this machine has
        "SlurmdParameters=config_overrides", "GresTypes=gpu", "MinJobAge=7200",
        f"NodeName={host} CPUs={cpus} RealMemory=64000 Gres=gpu:1 State=UNKNOWN",
        f"PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        f"PartitionName=gpu Nodes={host} MaxTime=INFINITE State=UP",
        "",
    ])


def _start_munge() -> None:
    if _run("pgrep", "-x", "munged", check=False).returncode == 0:
        return
    key = Path("/etc/munge/munge.key")
    if not key.is_file():
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
    for d in ("/run/munge", "/var/lib/munge", "/var/log/munge"):
        Path(d).mkdir(parents=True, exist_ok=True)
    _run("chown", "-R", "munge:munge", "/etc/munge", "/run/munge", "/var/lib/munge", "/var/log/munge",
         check=False)
    started = _run("su", "munge", "-s", "/bin/sh", "-c", "/usr/sbin/munged", check=False)
    if started.returncode != 0:
        _run("/usr/sbin/munged", "--force")


@contextlib.contextmanager
def local_slurm(state: Path, cpus: int | None = None) -> Iterator[str]:
    """A running one-node cluster for the duration of the ``with`` block; yields the node name."""
    ensure_packages()
    conf = CONF_DIR / "slurm.conf"
    if conf.exists() and MARKER not in conf.read_text(errors="replace"):
        pytest.skip(f"{conf} belongs to a real SLURM installation; not overwriting it")
    host = socket.gethostname().split(".")[0]
    for sub in ("ctld", "spool"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    CONF_DIR.mkdir(parents=True, exist_ok=True)
    conf.write_text(_conf(host, state, cpus or os.cpu_count() or 1))
    (CONF_DIR / "gres.conf").write_text(f"{MARKER}\nNodeName={host} Name=gpu Count=1 File=/dev/null\n")
    _start_munge()
    _run("pkill", "-x", "slurmctld", check=False)
    _run("pkill", "-x", "slurmd", check=False)
    _run("slurmctld", "-c")  # -c: clean start, no state of an earlier test run
    _run("slurmd", "-c")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = _run("sinfo", "-h", "-o", "%P %t", check=False).stdout
            if "cpu* idle" in out and "gpu idle" in out:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the local SLURM node did not come up: {out!r}; see {state}/slurmctld.log")
        yield host
    finally:
        _run("scontrol", "shutdown", check=False)
        time.sleep(1)
        _run("pkill", "-x", "slurmd", check=False)
        _run("pkill", "-x", "slurmctld", check=False)
        for name in ("slurm.conf", "gres.conf"):
            f = CONF_DIR / name
            if f.exists() and MARKER in f.read_text(errors="replace"):
                f.unlink()
