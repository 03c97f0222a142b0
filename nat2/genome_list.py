"""The genome-list file format (``genomes/1``): architectures still to be evaluated.

An initial design (``sample_initial``) and a search's candidates (``search``) are lists of canonical genomes that
no one has measured yet, so they are not archives: they have no accuracy or cost columns, only the id, the genome,
where it came from and, for candidates, the surrogate's prediction. The genome column is the archive's
(:data:`nat2.parquet.GENOME_TYPE`) and the file is written with the same byte-stable Parquet layout.

No torch here: search and reporting run without the deep-learning stack.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nat2.errors import Nat2Error, first_line
from nat2.parquet import GENOME_TYPE, genome_array, write_parquet
from nat2.space.encoding import SearchSpace

__all__ = ["GENOMES_FORMAT", "GENOMES_SCHEMA", "read_genomes", "write_genomes"]

#: value of the ``nat2`` schema-metadata key of a genome list
GENOMES_FORMAT = "genomes/1"

#: the genome-list file format
GENOMES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("genome", GENOME_TYPE, nullable=False),
        pa.field("origin", pa.string(), nullable=False),
        pa.field("predicted_error", pa.float64(), nullable=True),
    ],
    metadata={"nat2": GENOMES_FORMAT},
)


def write_genomes(path: str | os.PathLike[str], space: SearchSpace, genomes: npt.ArrayLike, origins: Sequence[str],
                  predicted_error: npt.ArrayLike | None = None) -> None:
    """Atomically write architectures still to be evaluated (an initial design or a search's candidates)."""
    G = np.asarray(genomes, dtype=np.int64).reshape(-1, space.n_var)
    if not bool(np.all(space.is_canonical(G))) if len(G) else False:
        raise ValueError("write_genomes: every genome must be canonical")
    pred = [None] * len(G) if predicted_error is None else [float(v) for v in np.asarray(predicted_error)]
    table = pa.table({
        "id": pa.array(space.arch_ids(G), pa.string()),
        "genome": genome_array(pd.Series(list(G)), "write_genomes"),
        "origin": pa.array(list(origins), pa.string()),
        "predicted_error": pa.array(pred, pa.float64()),
    }, schema=GENOMES_SCHEMA)
    write_parquet(path, table)


def read_genomes(path: str | os.PathLike[str], space: SearchSpace) -> pd.DataFrame:
    """Read a genome list written by :func:`write_genomes` (one-line :class:`Nat2Error` on any problem)."""
    p = Path(path)
    rerun = "rerun the stage that writes it"
    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as exc:
        raise Nat2Error(f"{path} is missing or not a nat2 genome list ({first_line(exc)}); {rerun}") from None
    meta = table.schema.metadata or {}
    if meta.get(b"nat2") != GENOMES_FORMAT.encode() or table.schema.names != GENOMES_SCHEMA.names:
        raise Nat2Error(f"{path} is not a nat2 genome list ({GENOMES_FORMAT}); {rerun}")
    df = table.to_pandas()
    G = np.stack(df["genome"].to_numpy()).astype(np.int64) if len(df) else np.zeros((0, space.n_var), np.int64)
    if G.shape[1] != space.n_var or not bool(np.all(space.is_canonical(G))) if len(G) else False:
        raise Nat2Error(f"{path} holds genomes of another search space (length {G.shape[1]}, expected "
                        f"{space.n_var}) or non-canonical ones; {rerun}")
    df["genome"] = list(G)
    return df
