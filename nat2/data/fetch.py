"""Get the dataset a run needs before the first stage reads it (``nat2 fetch-data``, called by ``make run/test``).

A fresh machine lacks Fashion-MNIST, and a pipeline that stops at its first stage to ask for a package is a third
command nobody reads about. So the two make targets fetch it themselves, the cheapest way that works here:

1. nothing, when it is already found (``<data.root>/FashionMNIST/raw`` or Debian's folder);
2. Debian's ``dataset-fashion-mnist`` package, when ``apt-get`` is there and we are root (offline mirrors work);
3. torchvision's download into ``data.root``, when the network allows it;
4. otherwise one line naming both ways to get it by hand.

The other datasets are not installable by package: they are only checked (and downloaded when ``data.download``
allows it, as the stages would), so the error comes before a long run instead of inside it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nat2.config import DataConfig
from nat2.data.datasets import FASHION_MNIST_DIRS, find_fashion_mnist, load_source, torchvision_download
from nat2.errors import DataError

__all__ = ["DEBIAN_PACKAGE", "FetchResult", "apt_install", "fetch_dataset"]

log = logging.getLogger(__name__)

DEBIAN_PACKAGE = "dataset-fashion-mnist"

#: ``runner(argv) -> (exit status, last output line)``: how apt-get is run (tests pass a fake one)
Runner = Callable[[Sequence[str]], tuple[int, str]]


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch_dataset` did: ``how`` is ``found``, ``apt`` or ``download``; ``location`` the folder."""

    how: str
    location: str


def _run(argv: Sequence[str]) -> tuple[int, str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run(list(argv), capture_output=True, text=True, env=env)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return proc.returncode, lines[-1] if lines else ""


def apt_install(package: str, runner: Runner = _run, is_root: bool | None = None,
                which: Callable[[str], str | None] = shutil.which) -> str | None:
    """Install a Debian package; return None on success, else why it could not (one phrase).

    The package lists are refreshed only when the first try fails: an up-to-date machine installs offline.
    """
    if which("apt-get") is None:
        return "apt-get is not available"
    if not (os.geteuid() == 0 if is_root is None else is_root):
        return "installing packages needs root"
    status, last = runner(["apt-get", "install", "-y", "-q", package])
    if status != 0:
        runner(["apt-get", "update", "-q"])
        status, last = runner(["apt-get", "install", "-y", "-q", package])
    return None if status == 0 else f"apt-get install {package} failed ({last or f'exit {status}'})"


def fetch_dataset(cfg: DataConfig, *, apt: Callable[[str], str | None] = apt_install,
                  download: Callable[[str, Path], None] = torchvision_download) -> FetchResult:
    """Make ``cfg.dataset`` available (see the module docstring for the order of the ways tried).

    Args:
        cfg: the ``data`` section of the params.
        apt: installs a Debian package, returning None or why it failed (tests pass a fake one).
        download: torchvision's download of a dataset into a root (tests pass a fake one).

    Raises:
        DataError: no way worked; the line names the ways to get it by hand.
    """
    root = Path(cfg.root)
    if cfg.dataset != "fashion_mnist":
        source = load_source(cfg, 0)
        return FetchResult("found", source.location)
    found = find_fashion_mnist(root)
    if found is not None:
        return FetchResult("found", str(found))
    apt_why = apt(DEBIAN_PACKAGE)
    found = find_fashion_mnist(root)
    if apt_why is None and found is not None:
        log.info("fashion_mnist: installed the Debian package %s", DEBIAN_PACKAGE)
        return FetchResult("apt", str(found))
    apt_why = apt_why or f"the package installed but left no IDX files in {' or '.join(FASHION_MNIST_DIRS)}"
    log.info("fashion_mnist: %s; trying torchvision's download into %s", apt_why, root)
    try:
        download("fashion_mnist", root)
    except DataError as exc:
        download_why = str(exc).split("; ")[0]
    else:
        found = find_fashion_mnist(root)
        if found is not None:
            return FetchResult("download", str(found))
        download_why = f"the download left no IDX files in {root / 'FashionMNIST' / 'raw'}"
    raise DataError(f"fashion_mnist is not installed and could not be fetched ({apt_why}; {download_why}); run "
                    f"`sudo apt-get install {DEBIAN_PACKAGE}`, or `nat2 fetch-data` on a machine online (it "
                    f"downloads into {root})")
