"""The search archive's file format: one Parquet file of evaluated architectures, and the checks it must pass.

This is the only module that reads or writes archive files, so the format has one definition
(:data:`ARCHIVE_SCHEMA`) and every file that reaches a stage has been checked against it: a stale, truncated or
foreign file stops the stage with a one-line :class:`~nat2.errors.Nat2Error` instead of silently feeding wrong
numbers into the surrogate. The byte-stable layout and the lossless column conversion are :mod:`nat2.parquet`'s.

Archive rows are evaluated sub-networks (method.md §3.2). ``top1`` is the validation accuracy in %, ``error`` the
same as a fraction (``1 - top1/100``); the costs are raw counts (:class:`~nat2.costs.CostModel`). Ids are
:meth:`SearchSpace.arch_id` of canonical genomes and are unique within an archive, which removes the reference
code's duplicate-encoding growth (method.md §7.2 item 16). :func:`objective_matrix` turns rows into the objective
values that :mod:`nat2.selection` (survival, trade-off points) and :mod:`nat2.indicators` (hypervolume) work on.

No torch here: search and reporting run without the deep-learning stack.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nat2.config import OBJECTIVES
from nat2.errors import Nat2Error, first_line
from nat2.parquet import GENOME_TYPE, column_array, is_null, write_parquet
from nat2.space.encoding import SearchSpace
from nat2.space.macro import N_EXITS

__all__ = [
    "ARCHIVE_COLUMNS",
    "ARCHIVE_FORMAT",
    "ARCHIVE_SCHEMA",
    "NULLABLE_COLUMNS",
    "OBJECTIVES",
    "check_genomes",
    "dedupe",
    "make_archive",
    "merge",
    "objective_matrix",
    "objective_names",
    "read_archive",
    "write_archive",
]

#: value of the ``nat2`` schema-metadata key; bump it when the columns change so old files are refused clearly
ARCHIVE_FORMAT = "archive/1"

#: the archive file format: column order, types and nullability are all checked on read
ARCHIVE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("genome", GENOME_TYPE, nullable=False),
        pa.field("resolution", pa.int32(), nullable=False),
        pa.field("width", pa.float64(), nullable=False),
        pa.field("exit", pa.int32(), nullable=True),
        pa.field("top1", pa.float64(), nullable=False),
        pa.field("error", pa.float64(), nullable=False),
        pa.field("params", pa.int64(), nullable=False),
        pa.field("macs", pa.int64(), nullable=False),
        pa.field("latency", pa.float64(), nullable=True),
        pa.field("predicted_error", pa.float64(), nullable=True),
        pa.field("iteration", pa.int32(), nullable=False),
        pa.field("origin", pa.string(), nullable=False),
        pa.field("checkpoint_hash", pa.string(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
    ],
    metadata={"nat2": ARCHIVE_FORMAT},
)

ARCHIVE_COLUMNS: tuple[str, ...] = tuple(ARCHIVE_SCHEMA.names)
NULLABLE_COLUMNS: tuple[str, ...] = tuple(f.name for f in ARCHIVE_SCHEMA if f.nullable)

_ID_RE = re.compile(r"[0-9a-f]{12}")
_ERROR_TOL = 1e-9  # |error - (1 - top1/100)|: both are derived from the same count, so only rounding differs


class _Invalid(Exception):
    """Internal: one problem with an archive's content; callers turn it into ValueError or Nat2Error."""


# -- building and validating tables -----------------------------------------------------------------------------


def make_archive(records: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pa.Table:
    """Build a validated archive table from records (a DataFrame or a list of dicts).

    Missing nullable columns (``exit``, ``latency``, ``predicted_error``) are filled with nulls and a missing
    ``error`` is derived from ``top1``, so stages only pass what they measured. Types are checked before they are
    cast (no silent string→int or bool→int conversions), because a wrongly typed column is a bug upstream.

    Args:
        records: one row per evaluated architecture, with the :data:`ARCHIVE_COLUMNS` (any order). ``genome``
            cells are 1-D integer sequences; ``exit`` may be pandas ``NA``/``NaN``/``None`` for single-exit
            variants.

    Returns:
        A single-chunk ``pyarrow.Table`` with exactly :data:`ARCHIVE_SCHEMA`, rows in input order.

    Raises:
        ValueError: on an unknown or missing column, a wrong type, or invalid content (see :func:`write_archive`).
    """
    df = _as_frame(records)
    unknown = [c for c in df.columns if c not in ARCHIVE_COLUMNS]
    if unknown:
        raise ValueError(f"make_archive: unknown column(s) {unknown}; archive columns are {list(ARCHIVE_COLUMNS)}")
    n = len(df)
    if "error" not in df.columns and "top1" in df.columns:
        df = df.assign(error=1.0 - pd.to_numeric(df["top1"]) / 100.0)
    arrays = []
    for field in ARCHIVE_SCHEMA:
        if field.name not in df.columns:
            if not field.nullable:
                raise ValueError(f"make_archive: missing column {field.name!r}")
            arrays.append(pa.nulls(n, type=field.type))
            continue
        arrays.append(column_array(field, df[field.name], "make_archive"))
    table = pa.Table.from_arrays(arrays, schema=ARCHIVE_SCHEMA)
    try:
        _check_content(table)
    except _Invalid as exc:
        raise ValueError(f"make_archive: {exc}") from None
    return table


def _as_frame(records: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    if isinstance(records, pd.DataFrame):
        return records.reset_index(drop=True)
    if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
        raise ValueError(f"make_archive: expected a DataFrame or a list of dicts, got {type(records).__name__}")
    if not all(isinstance(r, Mapping) for r in records):
        raise ValueError("make_archive: every record must be a dict")
    if not records:
        return pd.DataFrame({name: [] for name in ARCHIVE_COLUMNS})
    return pd.DataFrame.from_records(list(records))


def _check_content(table: pa.Table) -> None:
    """Raise :class:`_Invalid` naming the first content rule ``table`` breaks (schema already checked)."""
    if table.num_rows == 0:
        return

    def bad(mask: npt.NDArray[np.bool_], what: str) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise _Invalid(f"row {i} (id {ids[i]!r}) {what}")

    ids = table.column("id").to_pylist()
    for field in ARCHIVE_SCHEMA:
        nulls = table.column(field.name).null_count
        if nulls and not field.nullable:
            raise _Invalid(f"column {field.name!r} has {nulls} null value(s)")
    bad(np.array([_ID_RE.fullmatch(s) is None for s in ids]), "has an id that is not 12 lowercase hex digits")
    seen: dict[str, int] = {}
    for i, s in enumerate(ids):
        if s in seen:
            raise _Invalid(f"row {i} repeats id {s!r} of row {seen[s]} (nat2.archive.dedupe keeps the first)")
        seen[s] = i
    lengths = pc.list_value_length(table.column("genome")).to_numpy()
    bad(lengths == 0, "has an empty genome")
    bad(lengths != lengths[0], f"has a genome length different from row 0's {lengths[0]} (one search space per "
                               "archive)")

    def num(name: str) -> npt.NDArray[np.float64]:
        return np.asarray(table.column(name).cast(pa.float64()).to_numpy(), dtype=np.float64)  # null -> NaN

    bad(~(num("resolution") > 0), "has a non-positive resolution")
    width = num("width")
    bad(~(np.isfinite(width) & (width > 0)), "has a width multiplier that is not a positive number")
    exit_null = np.asarray(table.column("exit").is_null().to_numpy(), dtype=bool)
    bad(exit_null != exit_null[0], "mixes a null and a non-null exit (one super-net variant per archive)")
    exit_ = num("exit")
    bad(~exit_null & ~((exit_ >= 1) & (exit_ <= N_EXITS)), f"has an exit outside 1..{N_EXITS}")
    top1, error = num("top1"), num("error")
    bad(~((top1 >= 0) & (top1 <= 100)), "has a top1 outside [0, 100] % or not finite")
    bad(~((error >= 0) & (error <= 1)), "has an error outside [0, 1] or not finite")
    bad(np.abs(error - (1.0 - top1 / 100.0)) > _ERROR_TOL, "has error != 1 - top1/100")
    bad(num("params") < 0, "has negative params")
    bad(num("macs") < 0, "has negative macs")
    latency = num("latency")
    bad(~np.isnan(latency) & ~(np.isfinite(latency) & (latency > 0)), "has a latency that is not a positive number")
    bad(np.isinf(num("predicted_error")), "has an infinite predicted_error")
    bad(num("iteration") < 0, "has a negative iteration")
    bad(np.array([s == "" for s in table.column("origin").to_pylist()]), "has an empty origin")
    bad(np.array([s == "" for s in table.column("checkpoint_hash").to_pylist()]), "has an empty checkpoint_hash")


def _schema_problem(schema: pa.Schema) -> str | None:
    """The first way ``schema`` differs from :data:`ARCHIVE_SCHEMA` (names, order, types, nulls, tag), or None."""
    names = list(schema.names)
    for name in ARCHIVE_COLUMNS:
        if name not in names:
            return f"missing column {name!r}"
    for name in names:
        if name not in ARCHIVE_COLUMNS:
            return f"unexpected column {name!r}"
    if len(set(names)) != len(names):
        return "duplicate column names"
    if tuple(names) != ARCHIVE_COLUMNS:
        return f"columns in the order {names}, expected {list(ARCHIVE_COLUMNS)}"
    for got, want in zip(schema, ARCHIVE_SCHEMA, strict=True):
        if not got.type.equals(want.type):
            return f"column {want.name!r} has type {got.type}, expected {want.type}"
        if got.nullable != want.nullable:
            allows = "allows nulls, expected non-null" if got.nullable else "is non-null, expected nullable"
            return f"column {want.name!r} {allows}"
    genome_item = schema.field("genome").type.value_field
    if genome_item.nullable:
        return "column 'genome' allows null genes"
    tag = (schema.metadata or {}).get(b"nat2")
    if tag is None:
        return "no 'nat2' format tag in the schema metadata"
    if tag.decode("utf-8", "replace") != ARCHIVE_FORMAT:
        return f"format {tag.decode('utf-8', 'replace')!r}, this nat2 reads {ARCHIVE_FORMAT!r}"
    return None


# -- files ----------------------------------------------------------------------------------------------------------


def write_archive(path: str | os.PathLike[str], table: pa.Table | pd.DataFrame) -> None:
    """Validate ``table`` and write it atomically as Parquet; equal content always gives identical bytes.

    Byte-determinism (so DVC/Snakemake checksums only change when the archive does) comes from the fixed schema,
    one chunk per column and :func:`nat2.parquet.write_parquet`'s layout.

    Args:
        path: destination file (its folder is created).
        table: an archive table (:func:`make_archive`) or records to build one from.

    Raises:
        ValueError: when the table does not have exactly :data:`ARCHIVE_SCHEMA` or its content is invalid: a
            null in a required column, a malformed or repeated id, genomes of different lengths, an exit
            outside 1..5 or mixed null/non-null exits, top1/error out of range or ``error != 1 - top1/100``,
            negative costs, a non-positive latency, a negative iteration, an empty origin or checkpoint hash.
    """
    if not isinstance(table, pa.Table):
        table = make_archive(table)
    problem = _schema_problem(table.schema)
    if problem is not None:
        raise ValueError(f"write_archive: not an archive table ({problem}); build it with make_archive")
    try:
        _check_content(table)
    except _Invalid as exc:
        raise ValueError(f"write_archive: {exc}") from None
    write_parquet(path, table.combine_chunks())


def read_archive(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate an archive file.

    Every problem a user can cause (a missing file, a file from another tool or an older nat2, a truncated
    write) is reported as one line naming the file and the fix, before any stage uses the numbers.

    Args:
        path: a file written by :func:`write_archive`.

    Returns:
        The archive as a DataFrame with the :data:`ARCHIVE_COLUMNS` in order: ``genome`` cells are int16 numpy
        arrays, ``exit`` is pandas ``Int32`` (``<NA>`` for single-exit variants), ``latency`` and
        ``predicted_error`` are float64 with NaN for missing values, strings are pandas strings.

    Raises:
        Nat2Error: when the file is missing, not Parquet, does not have exactly :data:`ARCHIVE_SCHEMA` (names,
            order, types, nullability, format tag) or breaks a content rule of :func:`write_archive`.
    """
    p = Path(path)
    rerun = "rerun the stage that writes it"
    if not p.exists():
        raise Nat2Error(f"{path} does not exist; {rerun}")
    if not p.is_file():
        raise Nat2Error(f"{path} is not a file, so not a nat2 archive; remove it and {rerun}")
    try:
        schema = pq.read_schema(p)
    except (pa.ArrowException, OSError) as exc:
        raise Nat2Error(f"{path} is not a nat2 archive (not a readable Parquet file: {first_line(exc)}); "
                        f"delete it and {rerun}") from None
    problem = _schema_problem(schema)
    if problem is not None:
        raise Nat2Error(f"{path} is not a nat2 archive ({problem}); {rerun}")
    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as exc:
        raise Nat2Error(f"{path} is a damaged nat2 archive ({first_line(exc)}); delete it and {rerun}") from None
    try:
        _check_content(table)
    except _Invalid as exc:
        raise Nat2Error(f"{path} is not a valid nat2 archive ({exc}); {rerun}") from None
    df = table.to_pandas()
    df["exit"] = df["exit"].astype("Int32")
    return df


def check_genomes(df: pd.DataFrame, space: SearchSpace, *, source: str = "archive") -> None:
    """Check that every row's genome belongs to ``space`` and agrees with the row's other columns.

    An archive is tied to one super-net; reading it with another variant or resolution list would decode genomes
    into different networks without any error, so stages call this after :func:`read_archive`.

    Args:
        df: an archive (:func:`read_archive`) or any frame with ``genome`` (and optionally ``id``,
            ``resolution``, ``width``, ``exit``) columns.
        space: the search space of the super-net the archive belongs to.
        source: what to call ``df`` in the message, usually its file name.

    Raises:
        Nat2Error: on a genome of the wrong length or with non-canonical genes, or an id, resolution, width or
            exit that does not match the genome (the message names the first such row and how to fix it).
    """
    fix = "it was made for another search space (check supernet.variant/resolutions/width_mults) or is stale; " \
          "rerun the stage that writes it"
    n = len(df)
    if n == 0:
        return
    genomes = df["genome"].tolist()
    lengths = np.array([len(g) for g in genomes])
    wrong = np.flatnonzero(lengths != space.n_var)
    if wrong.size:
        i = int(wrong[0])
        raise Nat2Error(f"{source}: row {i} has a genome of length {lengths[i]}, {space.variant} needs "
                        f"{space.n_var}; {fix}")
    G = np.array([np.asarray(g, dtype=np.int64) for g in genomes]).reshape(n, space.n_var)
    ok = np.asarray(space.is_canonical(G))
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise Nat2Error(f"{source}: row {i} has a non-canonical genome for {space.variant} "
                        f"({space.explain(G[i])}); {fix}")
    head = {
        "id": np.array(space.arch_ids(G), dtype=object),
        "resolution": np.asarray(space.resolutions)[G[:, 0]],
        "width": np.asarray(space.width_mults)[G[:, 1]],
    }
    if space.exit_gene is not None:
        head["exit"] = G[:, space.exit_gene] + 1
    for name, want in head.items():
        if name not in df.columns:
            continue
        got, expected = df[name].tolist(), want.tolist()
        if name == "width":
            same = [not is_null(g) and math.isclose(g, w, rel_tol=1e-9) for g, w in zip(got, expected, strict=True)]
        else:
            same = [not is_null(g) and g == w for g, w in zip(got, expected, strict=True)]
        if not all(same):
            i = same.index(False)
            raise Nat2Error(f"{source}: row {i} has {name} {got[i]!r} but its genome means {expected[i]!r}; {fix}")
    if space.exit_gene is None and "exit" in df.columns and df["exit"].notna().any():
        i = int(np.flatnonzero(df["exit"].notna().to_numpy())[0])
        raise Nat2Error(f"{source}: row {i} has an exit but {space.variant} is single-exit; {fix}")


def dedupe(df: pd.DataFrame) -> pd.DataFrame:
    """Drop rows whose ``id`` occurred earlier (the first measurement wins), renumbering the index.

    Keeping the first row means incumbent archive members win over later candidates of the same architecture,
    the same precedence :func:`nat2.selection.survive` uses for ties.
    """
    return df.loc[~df["id"].duplicated(keep="first")].reset_index(drop=True)


def merge(previous: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``previous`` followed by the rows of ``new`` whose ids are not already there (one row per id).

    This is the "archive ∪ candidates" of NAT2's update (method.md §4.2): incumbents come first, so their row
    indices are unchanged and :func:`nat2.selection.survive`'s lower-index tie-break favours them.
    """
    if list(previous.columns) != list(new.columns):
        raise ValueError(f"merge: column mismatch {list(previous.columns)} vs {list(new.columns)}")
    frames = [f for f in (previous, new) if len(f)]
    if not frames:
        return previous.iloc[0:0].reset_index(drop=True)
    return dedupe(pd.concat(frames, ignore_index=True))


# -- objectives -------------------------------------------------------------------------------------------------------


def objective_matrix(df: pd.DataFrame, names: Sequence[str]) -> npt.NDArray[np.float64]:
    """The ``[n, len(names)]`` float64 matrix of the chosen objectives, all to be minimised.

    Args:
        df: an archive frame.
        names: objectives, each one of :data:`OBJECTIVES` (``error``, ``params``, ``macs``, ``latency``).

    Raises:
        ValueError: on an unknown or repeated objective name, or a missing column (programming errors).
        Nat2Error: when an objective has missing values (e.g. latency was never measured).
    """
    names = objective_names(names)
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise ValueError(f"objective_matrix: the frame has no column(s) {missing}")
    F = np.empty((len(df), len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        F[:, j] = pd.to_numeric(df[name]).to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(F[:, j])
        if bad.any():
            raise Nat2Error(f"objective {name!r} is missing or not finite in {int(bad.sum())} of {len(df)} archive "
                            f"rows; measure it for every architecture or remove it from search.objectives")
    return F


def objective_names(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple after checking they are distinct members of :data:`OBJECTIVES` (a single string is one).

    Raises:
        ValueError: on an empty, repeated or unknown name (a programming error: params validation comes first).
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names or len(set(names)) != len(names) or any(n not in OBJECTIVES for n in names):
        raise ValueError(f"objective names must be distinct members of {OBJECTIVES}, got {list(names)}")
    return names
