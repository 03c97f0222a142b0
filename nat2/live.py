"""Per-epoch metrics of the training loops through dvclive, kept in step with the loops' checkpoints.

Super-net phases, adaptation and fine-tuning log one dvclive step per epoch into a folder of their own
(``metrics.json`` with the last values and the step, ``plots/metrics/<name>.tsv`` histories), which DVC reads for
``dvc exp show`` / ``dvc plots`` and DVC Studio shows live. Two rules make it fit a resumable pipeline:

* the folder lives next to the loop's in-phase checkpoint while the loop runs (Snakemake and DVC delete declared
  outputs before a rerun, which would lose it) and is copied into the stage's output folder at the end;
* it is in step with the checkpoint: on resume it must hold exactly the epochs the checkpoint holds. dvclive's own
  ``resume=True`` continues a folder that does; a folder that does not (killed between the checkpoint and the log
  line, or from other settings) is rebuilt from the checkpoint's epoch rows, so a resumed run's metrics equal an
  uninterrupted run's.

Rows are logged without timestamps, so the files are a function of the run's numbers alone (both tools' outputs
stay byte-identical).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nat2.errors import Nat2Error

__all__ = ["LIVE_KEYS", "EpochLive", "live_folder", "publish", "read_rows"]

#: the epoch rows' columns the training loops log (one metric each, one step per epoch)
LIVE_KEYS = ("lr", "train_loss", "train_top1", "val_top1")

log = logging.getLogger(__name__)


class EpochLive:
    """A dvclive folder with one step per epoch row; ``keys`` are the numeric columns logged (None skipped).

    Args:
        folder: the dvclive folder (a working folder next to the loop's checkpoint).
        keys: row columns to log as metrics (``train_loss``, ``val_top1``, ...).
        done: the epoch rows the loop's checkpoint already holds (empty on a fresh start).
    """

    def __init__(self, folder: Path, keys: Sequence[str], done: Sequence[Mapping[str, Any]] = ()) -> None:
        from dvclive import Live

        self.folder, self.keys = Path(folder), tuple(keys)
        in_step = len(done) > 0 and _logged_step(self.folder) == len(done) - 1
        self._live = Live(str(self.folder), resume=in_step, save_dvc_exp=False, dvcyaml=None, report=None)
        if in_step:
            self._live.step = len(done)
            log.info("dvclive: resuming %s at step %d", self.folder, len(done))
        else:
            if done:
                log.info("dvclive: rebuilding %s from the checkpoint's %d epochs", self.folder, len(done))
            for row in done:
                self.log(row)

    def log(self, row: Mapping[str, Any]) -> None:
        """Log one epoch row as the next step (numeric, non-None columns among ``keys``)."""
        for key in self.keys:
            value = row.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._live.log_metric(key, float(value))
        self._live.next_step()

    def close(self) -> None:
        """Write the summary (``metrics.json``); the folder is then complete."""
        self._live.end()


def live_folder(checkpoint: Path) -> Path:
    """A loop's dvclive folder next to its checkpoint: ``results/supernet/kernel.pt`` -> ``kernel.live``."""
    return checkpoint.with_name(f"{checkpoint.stem}.live")


def _logged_step(folder: Path) -> int | None:
    """The last step a dvclive folder recorded (its ``metrics.json``), None when there is none or it is broken."""
    try:
        return int(json.loads((folder / "metrics.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def publish(source: Path, dest: Path, rows: Sequence[Mapping[str, Any]], keys: Sequence[str] = LIVE_KEYS) -> None:
    """Copy a finished dvclive folder to ``dest``, a new path inside a stage's output being written atomically.

    ``rows`` are the loop's epoch rows: a folder that does not hold exactly them (a width parked by an older
    version, a partial folder cleaned by hand) is rebuilt from them first.
    """
    if _logged_step(source) != len(rows) - 1:
        shutil.rmtree(source, ignore_errors=True)
        EpochLive(source, keys, rows).close()
    shutil.copytree(source, dest)


def read_rows(folder: Path) -> list[dict[str, Any]]:
    """A dvclive folder's histories as epoch rows (``epoch`` = step + 1; a metric not logged at a step is None).

    Raises:
        Nat2Error: the folder holds no dvclive histories.
    """
    metrics = folder / "plots" / "metrics"
    files = sorted(metrics.rglob("*.tsv")) if metrics.is_dir() else []
    if not files and _logged_step(folder) is not None:
        raise Nat2Error(f"{folder}: no dvclive histories under plots/metrics; rerun the stage that wrote it")
    rows: dict[int, dict[str, Any]] = {}
    for path in files:
        name = path.relative_to(metrics).with_suffix("").as_posix()
        try:
            for line in path.read_text().splitlines()[1:]:
                step, value = line.split("\t")[:2]
                rows.setdefault(int(step), {})[name] = float(value)
        except (OSError, ValueError) as exc:
            raise Nat2Error(f"{path}: unreadable dvclive history ({type(exc).__name__}); rerun the stage that "
                            "wrote it") from None
    names = sorted({n for r in rows.values() for n in r})
    return [{"epoch": step + 1, **{n: rows[step].get(n) for n in names}} for step in sorted(rows)]
