"""Atomic file output.

Stages never leave a half-written file behind: everything is written to a temporary file in the destination
folder and renamed into place (``os.replace`` is atomic on POSIX), so a killed stage leaves either the old file or
the new one.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_dir", "atomic_path", "clean_stale_temporaries", "csv_text", "write_bytes", "write_json",
           "write_text"]


def _tmp_prefix(dest: Path) -> str:
    """Temporary names carry the writer's pid: ``.<name>.<pid>.<random>``, so a later run can tell stale ones."""
    return f".{dest.name}.{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale_temporaries(dest: Path) -> list[Path]:
    """Delete the temporaries a killed writer of ``dest`` left behind (their pid is no longer running).

    A kill during a write leaves ``.<name>.<pid>.<random>[.tmp]`` beside ``dest`` (a 58 MB checkpoint, say); every
    atomic writer calls this before it starts, so they never pile up. A live writer's temporary is left alone.
    """
    removed = []
    pattern = re.compile(rf"^\.{re.escape(dest.name)}\.(?:old\.)?(\d+)\.")
    if not dest.parent.is_dir():
        return removed
    for entry in dest.parent.iterdir():
        m = pattern.match(entry.name)
        if m is None or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _no_space(dest: Path, exc: OSError) -> None:
    """Turn a full disk into the one-line error every stage prints (instead of a traceback)."""
    if exc.errno == errno.ENOSPC:
        from nat2.errors import Nat2Error

        raise Nat2Error(f"no space left on {dest.parent} while writing {dest.name}; free some space and rerun "
                        "(nothing was written)") from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, on error delete it."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(dest)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(dest), suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; outputs get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        _no_space(dest, exc)
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path`` whole, on error it is deleted.

    For stages whose output is a folder: a kill leaves the previous folder (or none), never a half-written one.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(dest)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(dest), dir=dest.parent))
    try:
        yield tmp
        old = None
        if dest.exists():  # moved aside first: a kill here leaves the previous folder under a dot name
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.{os.getpid()}.", dir=dest.parent))
            dest.rename(old / dest.name)
        tmp.rename(dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _no_space(dest, exc)
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    write_bytes(path, text.encode("utf-8"))


def _finite(obj: Any) -> Any:
    """``obj`` with NaN/inf floats as None: strict JSON, readable by every tool (DVC metrics, jq, browsers)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike[str], obj: Any, default: Callable[[Any], Any] | None = None) -> None:
    """Atomically write ``obj`` as sorted, indented, strict JSON (stable bytes for DVC and Snakemake checksums)."""
    write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=True, default=default, allow_nan=False) + "\n")


def csv_text(rows: list[dict[str, Any]], columns: tuple[str, ...], digits: int | None = 6) -> str:
    """Metric rows as CSV for DVC plots: fixed columns, None as an empty cell.

    Floats get ``digits`` significant digits, or their exact round-trip repr with ``digits=None`` (plot data
    that tests compare with the archive).
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    fmt = repr if digits is None else (lambda v: f"{v:.{digits}g}")
    for row in rows:
        writer.writerow({k: "" if row[k] is None else fmt(row[k]) if isinstance(row[k], float) else row[k]
                         for k in columns})
    return buf.getvalue()
