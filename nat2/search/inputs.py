"""What every search step checks on entry, and the seed of each step's random choices.

The iteration must be in the chain, the archive readable, of this space and measured on the super-net it comes
with.

An archive's accuracies are only meaningful on the weights they were measured on, so a step that is given a
super-net refuses an archive whose records name another one (for instance iteration 2's archive with the
pre-adaptation super-net, or a super-net from another run).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nat2 import archive as arc
from nat2.config import SearchConfig
from nat2.errors import Nat2Error
from nat2.seeds import numpy_rng
from nat2.space import SearchSpace

__all__ = ["check_iteration", "check_measured_on", "read_search_archive", "step_seed"]


def step_seed(seed: int, stage: str, iteration: int) -> int:
    """An integer seed for pymoo and the survival of ``stage`` in ``iteration``, drawn from the root seed."""
    return int(numpy_rng(seed, stage, iteration).integers(2**31 - 1))


def check_iteration(search: SearchConfig, iteration: int) -> str:
    """``iteration`` as the key of ``search.iterations`` it must be (one line naming the chain otherwise)."""
    key = str(iteration)
    if key not in search.iterations:
        raise Nat2Error(f"--iteration {iteration} is not in the search.iterations chain "
                        f"{list(search.iteration_order)}; pick one of those")
    return key


def read_search_archive(path: Path, space: SearchSpace, evaluated_on: str | None = None,
                        supernet: Path | None = None) -> pd.DataFrame:
    """An archive a search stage continues from: readable, of this space, not empty, measured on ``evaluated_on``.

    ``evaluated_on`` is the content hash of the super-net the stage was given (None: not checked).
    """
    df = arc.read_archive(path)
    arc.check_genomes(df, space)
    if df.empty:
        raise Nat2Error(f"archive {path} holds no architecture; rerun the stage that writes it")
    if evaluated_on is not None:
        check_measured_on(df, path, evaluated_on, supernet)
    return df


def check_measured_on(df: pd.DataFrame, path: Path, evaluated_on: str, supernet: Path | None) -> None:
    """Refuse an archive (read from ``path``) whose records were measured on another super-net than ``supernet``."""
    other = sorted(set(df["checkpoint_hash"]) - {evaluated_on})
    if other:
        raise Nat2Error(f"archive {path} was evaluated on super-net {other[0]} but --supernet {supernet} is "
                        f"{evaluated_on}; pass the super-net of the same iteration (iter_<i>/supernet.pt)")
