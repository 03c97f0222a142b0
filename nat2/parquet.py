"""nat2's Parquet conventions: a byte-stable file layout and pandas → Arrow columns that are never coerced.

Archives (:mod:`nat2.archive`) and genome lists (:mod:`nat2.genome_list`) are both Parquet files whose bytes must
change only when their content does, because DVC and Snakemake key reruns on checksums; and both are built from
pandas data whose column types must be checked *before* Arrow casts them, because a silent string→int or
bool→int conversion hides a bug upstream. Both rules live here once.

No torch here: search and reporting run without the deep-learning stack.
"""

from __future__ import annotations

import numbers
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nat2.errors import first_line
from nat2.io import atomic_path

__all__ = ["GENOME_TYPE", "column_array", "genome_array", "is_null", "write_parquet"]

#: the genome column: one list of int16 genes per architecture (archives and genome lists)
GENOME_TYPE = pa.list_(pa.field("element", pa.int16(), nullable=False))

_COMPRESSION = "zstd"
_COMPRESSION_LEVEL = 3
_INT16 = np.iinfo(np.int16)


def write_parquet(path: str | os.PathLike[str], table: pa.Table) -> None:
    """Write ``table`` atomically in nat2's byte-stable layout; equal tables always give identical bytes.

    One row group, fixed compression, statistics on, and no pandas metadata or timestamps in the footer. The
    footer does name the pyarrow version, so bytes are stable for a pinned environment. No content checks here:
    the caller validates its own format first.
    """
    with atomic_path(path) as tmp:
        pq.write_table(
            table,
            tmp,
            row_group_size=max(table.num_rows, 1),
            compression=_COMPRESSION,
            compression_level=_COMPRESSION_LEVEL,
            write_statistics=True,
        )


def column_array(field: pa.Field, col: pd.Series, what: str) -> pa.Array:
    """Convert one column to ``field``'s type after checking its kind, so only lossless, intended conversions happen.

    Args:
        field: the target field; a ``genome`` field goes through :func:`genome_array`.
        col: the pandas column.
        what: the caller, named at the start of an error message.

    Raises:
        ValueError: the column holds another kind of value (strings for numbers, bools for integers, fractional
            floats for integers) or a value that does not fit the type.
    """
    name, typ = field.name, field.type
    if name == "genome":
        return genome_array(col, what)
    values = col.tolist() if col.dtype == object else None
    if pa.types.is_string(typ):
        ok = all(isinstance(v, str) or is_null(v) for v in col.tolist())
        kind = "strings"
    elif pa.types.is_integer(typ):
        ok = _numeric_dtype(col) or (values is not None and all(_is_int(v) or is_null(v) for v in values))
        if ok and pd.api.types.is_float_dtype(col):
            finite = col.to_numpy(dtype=np.float64, na_value=np.nan)
            finite = finite[np.isfinite(finite)]
            ok = bool((finite == np.round(finite)).all())
        kind = "integers"
    else:
        ok = _numeric_dtype(col) or (values is not None and all(_is_real(v) or is_null(v) for v in values))
        kind = "numbers"
    if not ok:
        raise ValueError(f"{what}: column {name!r} must hold {kind}, got dtype {col.dtype}")
    try:
        return pa.array(col, type=typ, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise ValueError(f"{what}: column {name!r} does not fit {typ}: {first_line(exc)}") from None


def genome_array(col: pd.Series, what: str) -> pa.Array:
    """Genomes as :data:`GENOME_TYPE`: built from offsets so that every cell is checked and nothing is coerced.

    Raises:
        ValueError: a cell is not a 1-D integer sequence or has a gene outside the int16 range (``what`` first).
    """
    rows = []
    for i, cell in enumerate(col.tolist()):
        if cell is None or isinstance(cell, (str, bytes)) or np.ndim(cell) != 1:
            raise ValueError(f"{what}: genome of row {i} must be a 1-D integer sequence, got {cell!r}")
        arr = np.asarray(cell)
        if arr.size and (arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"{what}: genome of row {i} must hold integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < _INT16.min or arr.max() > _INT16.max):
            raise ValueError(f"{what}: genome of row {i} has genes outside the int16 range")
        rows.append(arr.astype(np.int16))
    lengths = np.array([len(r) for r in rows], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int16)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, pa.int16()), type=GENOME_TYPE)


def is_null(v: object) -> bool:
    """Whether a pandas cell is missing (``None``, ``pd.NA`` or a float NaN)."""
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))


def _numeric_dtype(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def _is_int(v: object) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_real(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
