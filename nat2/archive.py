"""The search archive: its Parquet file format, objective matrices, survival, trade-off points and hypervolume.

This is the only module that reads or writes archive files, so the format has one definition
(:data:`ARCHIVE_SCHEMA`) and every file that reaches a stage has been checked against it: a stale, truncated or
foreign file stops the stage with a one-line :class:`~nat2.errors.Nat2Error` instead of silently feeding wrong
numbers into the surrogate.

Archive rows are evaluated sub-networks (method.md §3.2). ``top1`` is the validation accuracy in %, ``error`` the
same as a fraction (``1 - top1/100``); the costs are raw counts (:class:`~nat2.costs.CostModel`). Ids are
:meth:`SearchSpace.arch_id` of canonical genomes and are unique within an archive, which removes the reference
code's duplicate-encoding growth (method.md §7.2 item 16).

Multi-objective machinery is pymoo 0.6.2's (non-dominated sorting, crowding distance, NSGA-III niching, Riesz
energy directions, trade-off neighbourhoods, hypervolume); this module fixes what pymoo leaves random or global:

* :func:`survive` breaks every tie deterministically for 1–2 objectives and seeds NSGA-III explicitly;
* pymoo's global ``warnings`` filters set inside NSGA-III and ``HighTradeoffPoints`` are contained;
* :func:`normalise` + :func:`hypervolume` use a *fixed* normalisation (costs divided by the largest
  architecture's cost, error already in [0, 1]) and a fixed reference point, so hypervolumes compare across
  iterations, runs, seeds and policies (method.md §7.2 item 13).

No torch here: search and reporting run without the deep-learning stack.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pymoo.algorithms.moo.nsga3 import ReferenceDirectionSurvival
from pymoo.core.decision_making import NeighborFinder
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.indicators.hv import HV
from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from pymoo.util.ref_dirs import RieszEnergyReferenceDirectionFactory

from nat2.config import OBJECTIVES
from nat2.errors import Nat2Error
from nat2.io import atomic_path
from nat2.space.encoding import SearchSpace
from nat2.space.macro import N_EXITS

__all__ = [
    "GENOMES_SCHEMA",
    "read_genomes",
    "write_genomes",
    "ARCHIVE_COLUMNS",
    "ARCHIVE_FORMAT",
    "ARCHIVE_SCHEMA",
    "NULLABLE_COLUMNS",
    "OBJECTIVES",
    "TRADEOFF_EPSILON",
    "check_genomes",
    "dedupe",
    "fronts",
    "high_tradeoff",
    "hypervolume",
    "make_archive",
    "merge",
    "non_dominated",
    "normalise",
    "objective_matrix",
    "read_archive",
    "reference_directions",
    "survive",
    "write_archive",
]

#: value of the ``nat2`` schema-metadata key; bump it when the columns change so old files are refused clearly
ARCHIVE_FORMAT = "archive/1"

#: the archive file format: column order, types and nullability are all checked on read
ARCHIVE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("genome", pa.list_(pa.field("element", pa.int16(), nullable=False)), nullable=False),
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

#: neighbourhood radius of the trade-off measure on the [0, 1]-normalised front (pymoo / MSuNAS value)
TRADEOFF_EPSILON = 0.125

_ID_RE = re.compile(r"[0-9a-f]{12}")
_ERROR_TOL = 1e-9  # |error - (1 - top1/100)|: both are derived from the same count, so only rounding differs
_COMPRESSION = "zstd"
_COMPRESSION_LEVEL = 3
_INT16 = np.iinfo(np.int16)


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
        arrays.append(_to_arrow(field, df[field.name]))
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


def _to_arrow(field: pa.Field, col: pd.Series) -> pa.Array:
    """Convert one column after checking its kind, so only lossless, intended conversions happen."""
    name, typ = field.name, field.type
    if name == "genome":
        return _genome_array(col)
    values = col.tolist() if col.dtype == object else None
    if pa.types.is_string(typ):
        ok = all(isinstance(v, str) or _isnull(v) for v in col.tolist())
        kind = "strings"
    elif pa.types.is_integer(typ):
        ok = _numeric_dtype(col) or (values is not None and all(_is_int(v) or _isnull(v) for v in values))
        if ok and pd.api.types.is_float_dtype(col):
            finite = col.to_numpy(dtype=np.float64, na_value=np.nan)
            finite = finite[np.isfinite(finite)]
            ok = bool((finite == np.round(finite)).all())
        kind = "integers"
    else:
        ok = _numeric_dtype(col) or (values is not None and all(_is_real(v) or _isnull(v) for v in values))
        kind = "numbers"
    if not ok:
        raise ValueError(f"make_archive: column {name!r} must hold {kind}, got dtype {col.dtype}")
    try:
        return pa.array(col, type=typ, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise ValueError(f"make_archive: column {name!r} does not fit {typ}: {_first_line(exc)}") from None


def _numeric_dtype(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def _isnull(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))


def _is_int(v: object) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_real(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _genome_array(col: pd.Series) -> pa.Array:
    """Genomes as ``list<int16>``: built from offsets so that every cell is checked and nothing is coerced."""
    rows = []
    for i, cell in enumerate(col.tolist()):
        if cell is None or isinstance(cell, (str, bytes)) or np.ndim(cell) != 1:
            raise ValueError(f"make_archive: genome of row {i} must be a 1-D integer sequence, got {cell!r}")
        arr = np.asarray(cell)
        if arr.size and (arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"make_archive: genome of row {i} must hold integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < _INT16.min or arr.max() > _INT16.max):
            raise ValueError(f"make_archive: genome of row {i} has genes outside the int16 range")
        rows.append(arr.astype(np.int16))
    lengths = np.array([len(r) for r in rows], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int16)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, pa.int16()),
                                    type=ARCHIVE_SCHEMA.field("genome").type)


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- files ----------------------------------------------------------------------------------------------------------


def write_archive(path: str | os.PathLike[str], table: pa.Table | pd.DataFrame) -> None:
    """Validate ``table`` and write it atomically as Parquet; equal content always gives identical bytes.

    Byte-determinism (so DVC/Snakemake checksums only change when the archive does) comes from a fixed schema
    with no pandas metadata, one chunk per column, one row group, fixed compression and no timestamps in the
    Parquet footer. The footer does name the pyarrow version, so bytes are stable for a pinned environment.

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
    table = table.combine_chunks()
    with atomic_path(path) as tmp:
        pq.write_table(
            table,
            tmp,
            row_group_size=max(table.num_rows, 1),
            compression=_COMPRESSION,
            compression_level=_COMPRESSION_LEVEL,
            write_statistics=True,
        )


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
        raise Nat2Error(f"{path} is not a nat2 archive (not a readable Parquet file: {_first_line(exc)}); "
                        f"delete it and {rerun}") from None
    problem = _schema_problem(schema)
    if problem is not None:
        raise Nat2Error(f"{path} is not a nat2 archive ({problem}); {rerun}")
    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as exc:
        raise Nat2Error(f"{path} is a damaged nat2 archive ({_first_line(exc)}); delete it and {rerun}") from None
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
            same = [not _isnull(g) and math.isclose(g, w, rel_tol=1e-9) for g, w in zip(got, expected, strict=True)]
        else:
            same = [not _isnull(g) and g == w for g, w in zip(got, expected, strict=True)]
        if not all(same):
            i = same.index(False)
            raise Nat2Error(f"{source}: row {i} has {name} {got[i]!r} but its genome means {expected[i]!r}; {fix}")
    if space.exit_gene is None and "exit" in df.columns and df["exit"].notna().any():
        i = int(np.flatnonzero(df["exit"].notna().to_numpy())[0])
        raise Nat2Error(f"{source}: row {i} has an exit but {space.variant} is single-exit; {fix}")


def dedupe(df: pd.DataFrame) -> pd.DataFrame:
    """Drop rows whose ``id`` occurred earlier (the first measurement wins), renumbering the index.

    Keeping the first row means incumbent archive members win over later candidates of the same architecture,
    the same precedence :func:`survive` uses for ties.
    """
    return df.loc[~df["id"].duplicated(keep="first")].reset_index(drop=True)


def merge(previous: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``previous`` followed by the rows of ``new`` whose ids are not already there (one row per id).

    This is the "archive ∪ candidates" of NAT2's update (method.md §4.2): incumbents come first, so their row
    indices are unchanged and :func:`survive`'s lower-index tie-break favours them.
    """
    if list(previous.columns) != list(new.columns):
        raise ValueError(f"merge: column mismatch {list(previous.columns)} vs {list(new.columns)}")
    frames = [f for f in (previous, new) if len(f)]
    if not frames:
        return previous.iloc[0:0].reset_index(drop=True)
    return dedupe(pd.concat(frames, ignore_index=True))


# -- objectives and non-dominated sorting ----------------------------------------------------------------------


def objective_matrix(df: pd.DataFrame, names: Sequence[str]) -> npt.NDArray[np.float64]:
    """The ``[n, len(names)]`` float64 matrix of the chosen objectives, all to be minimised.

    Args:
        df: an archive frame.
        names: objectives, each one of :data:`OBJECTIVES` (``error``, ``params``, ``macs``, ``latency``).

    Raises:
        ValueError: on an unknown or repeated objective name, or a missing column (programming errors).
        Nat2Error: when an objective has missing values (e.g. latency was never measured).
    """
    names = _objective_names(names)
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


def _objective_names(names: Sequence[str]) -> tuple[str, ...]:
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names or len(set(names)) != len(names) or any(n not in OBJECTIVES for n in names):
        raise ValueError(f"objective names must be distinct members of {OBJECTIVES}, got {list(names)}")
    return names


def _matrix(F: npt.ArrayLike, what: str, *, min_obj: int = 1) -> npt.NDArray[np.float64]:
    arr = np.asarray(F, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < min_obj:
        raise ValueError(f"{what}: expected F of shape [n, m] with m >= {min_obj}, got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: F contains NaN or infinite values")
    return arr


def fronts(F: npt.ArrayLike) -> list[npt.NDArray[np.int64]]:
    """Non-dominated fronts of ``F`` (minimisation): a list of index arrays, best first, ascending within each.

    Identical rows do not dominate each other, so duplicates share a front.
    """
    F = _matrix(F, "fronts")
    if len(F) == 0:
        return []
    return [np.sort(np.asarray(f, dtype=np.int64)) for f in NonDominatedSorting().do(F)]


def non_dominated(F: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Indices of the first front of ``F`` (ascending); duplicates of a non-dominated row are all included."""
    F = _matrix(F, "non_dominated")
    if len(F) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.asarray(NonDominatedSorting().do(F, only_non_dominated_front=True), dtype=np.int64))


def _crowding(F: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """NSGA-II crowding distance (pymoo's ``"cd"``, the one ``RankAndCrowding`` uses by default)."""
    return np.asarray(get_crowding_function("cd").do(F, n_remove=0), dtype=np.float64)


def _rank_crowding_order(F: npt.NDArray[np.float64], candidates: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``candidates`` sorted by (front of F, crowding within that front descending, index): best first."""
    out = []
    chosen = set(candidates.tolist())
    for front in fronts(F):
        cd = _crowding(F[front])
        keep = np.array([i in chosen for i in front.tolist()], dtype=bool)
        front, cd = front[keep], cd[keep]
        out.append(front[np.lexsort((front, -cd))])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


# -- survival ---------------------------------------------------------------------------------------------------------


def survive(F: npt.ArrayLike, n: int, *, seed: int) -> npt.NDArray[np.int64]:
    """Indices of the ``n`` survivors of ``F`` by the NSGA-II/III survival NAT2 uses (method.md §3.5 step 7, §4).

    Used for the fixed-size archive update (archive ∪ candidates → archive size), the pre-processing cut and the
    top-N selection. Survivors are returned in ascending row order (a subset, not a ranking), so the caller's row
    order is preserved.

    * 1 objective: the ``n`` smallest values.
    * 2 objectives (NSGA-II): whole fronts in rank order while they fit; the splitting front is cut by pymoo's
      crowding distance (boundary points infinite).
    * ≥ 3 objectives (NSGA-III): pymoo's ``ReferenceDirectionSurvival`` (hyperplane normalisation and niching)
      with ``max(n, m)`` Riesz-energy reference directions generated from ``seed`` (pymoo 0.6.2 ignores a
      ``seed=`` passed to ``get_reference_directions``, so the generator is passed explicitly).

    Ties: for 1–2 objectives ties in value or crowding go to the lower row index, with no randomness (``seed``
    is unused), so on tie-free data the result is exactly pymoo's ``RankAndCrowding`` survival, and with
    duplicates the incumbent (earlier row) wins. For ≥ 3 objectives pymoo's niching breaks ties (equal niche
    counts, equal distances) with ``numpy.random.default_rng(seed)``; identical ``F`` and ``seed`` give identical
    survivors. Duplicate rows are allowed in every case.

    Args:
        F: ``[N, m]`` finite objective values, all minimised.
        n: number of survivors; ``n >= N`` returns every index.
        seed: seeds the reference directions and the niching tie-breaks (≥ 3 objectives).

    Returns:
        int64 indices into ``F``, ascending, ``min(n, N)`` of them, distinct.

    Raises:
        ValueError: on a malformed ``F`` or a negative ``n``.
    """
    F = _matrix(F, "survive")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"survive: n must be a non-negative integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"survive: seed must be a non-negative integer, got {seed!r}")
    N, m = F.shape
    if n >= N:
        return np.arange(N, dtype=np.int64)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if m == 1:
        chosen = np.argsort(F[:, 0], kind="stable")[:n]
    elif m == 2:
        chosen = _rank_and_crowding(F, int(n))
    else:
        chosen = _reference_direction_survival(F, int(n), int(seed))
    return np.sort(np.asarray(chosen, dtype=np.int64))


def _rank_and_crowding(F: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.int64]:
    """Select like pymoo's ``RankAndCrowding``, with its random tie-break replaced by (crowding desc, index asc)."""
    survivors: list[npt.NDArray[np.int64]] = []
    taken = 0
    for front in NonDominatedSorting().do(F, n_stop_if_ranked=n):
        front = np.sort(np.asarray(front, dtype=np.int64))
        if taken + len(front) <= n:
            survivors.append(front)
            taken += len(front)
            continue
        cd = np.asarray(get_crowding_function("cd").do(F[front], n_remove=taken + len(front) - n))
        survivors.append(front[np.lexsort((front, -cd))][: n - taken])
        break
    return np.concatenate(survivors)


def reference_directions(n_obj: int, n: int, seed: int) -> npt.NDArray[np.float64]:
    """``n`` Riesz-energy reference directions in ``n_obj`` dimensions, generated from ``seed`` alone.

    pymoo 0.6.2's ``get_reference_directions("energy", ..., seed=s)`` drops ``s`` and always uses seed 1, so the
    factory is called with an explicit ``random_state``; NSGA-III's inner search and its survival both use this.
    """
    return RieszEnergyReferenceDirectionFactory(n_obj, n).do(random_state=np.random.default_rng(seed))


def _reference_direction_survival(F: npt.NDArray[np.float64], n: int, seed: int) -> npt.NDArray[np.int64]:
    m = F.shape[1]
    ref_dirs = reference_directions(m, max(n, m), seed)
    survival = ReferenceDirectionSurvival(ref_dirs)
    with warnings.catch_warnings():  # pymoo calls warnings.simplefilter("ignore") inside the normalisation
        idx = survival.do(Problem(n_var=1, n_obj=m), Population.new("F", F), n_survive=n,
                          random_state=np.random.default_rng(seed), return_indices=True)
    return np.asarray(idx, dtype=np.int64)


# -- decision making ----------------------------------------------------------------------------------------------


def high_tradeoff(F: npt.ArrayLike, k: int) -> npt.NDArray[np.int64]:
    """The ``k`` architectures with the highest trade-off value, best first (method.md §3.6, MSuNAS top-K).

    On the non-dominated front (normalised to [0, 1] per objective by its own min/max, identical rows counted
    once), each point's trade-off is, as in pymoo's ``HighTradeoffPoints``, the minimum over its neighbours
    (within :data:`TRADEOFF_EPSILON`, at least ``min(2m, f-1)`` nearest) of sacrifice/gain, where sacrifice
    (gain) is the summed worsening (improvement) moving from the point to the neighbour. A large value means
    leaving the point costs much more than it gains. pymoo returns only statistical outliers of this value; NAT
    reports a fixed number, so here the top ``k`` are taken.

    When the front has fewer than ``k`` distinct points, the rest is filled by rank and crowding (remaining front
    duplicates, then the next fronts, most isolated first), so the result always has ``min(k, len(F))``
    distinct indices. Ties go to the lower index.

    Args:
        F: ``[N, m]`` finite objectives (m >= 2), all minimised.
        k: number of points wanted.

    Returns:
        int64 indices into ``F``: highest trade-off first, then the fill order.

    Raises:
        ValueError: on a malformed ``F``, fewer than 2 objectives or a negative ``k``.
    """
    F = _matrix(F, "high_tradeoff", min_obj=2)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"high_tradeoff: k must be a non-negative integer, got {k!r}")
    k = min(int(k), len(F))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    front = non_dominated(F)
    _, first = np.unique(F[front], axis=0, return_index=True)
    distinct = front[np.sort(first)]
    mu = _tradeoff(F[distinct])
    chosen = distinct[np.lexsort((distinct, -np.nan_to_num(mu, nan=-np.inf)))][:k]
    if len(chosen) < k:
        rest = np.setdiff1d(np.arange(len(F)), chosen)
        chosen = np.concatenate([chosen, _rank_crowding_order(F, rest)[: k - len(chosen)]])
    return chosen.astype(np.int64)


def _tradeoff(front: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per-point trade-off value of pymoo's ``HighTradeoffPoints`` on a duplicate-free front; NaN for a lone point."""
    lo, hi = front.min(axis=0), front.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    N = (front - lo) / span
    finder = NeighborFinder(N, epsilon=TRADEOFF_EPSILON, n_min_neigbors="auto", consider_2d=False)
    mu = np.full(len(N), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(len(N)):
            diff = N[np.asarray(finder.find(i), dtype=np.int64)] - N[i]
            ratio = np.maximum(0.0, diff).sum(axis=1) / np.maximum(0.0, -diff).sum(axis=1)
            ratio = ratio[~np.isnan(ratio)]  # the point itself (0/0)
            if ratio.size:
                mu[i] = ratio.min()
    return mu


# -- hypervolume ----------------------------------------------------------------------------------------------------


def normalise(F: npt.ArrayLike, names: Sequence[str], max_costs: Mapping[str, float]) -> npt.NDArray[np.float64]:
    """Objectives on a fixed scale: ``error`` as is (a fraction), every cost divided by the largest network's cost.

    The scale depends only on the search space (the caller computes ``max_costs`` with the cost model on
    :meth:`SearchSpace.max_genome`, and a fixed latency for the max network), never on which architectures an
    archive happens to hold, so hypervolumes of different iterations, runs, seeds and policies are comparable.

    Args:
        F: ``[n, len(names)]`` raw objectives (:func:`objective_matrix`).
        names: the objective of each column.
        max_costs: ``{cost name: cost of the largest architecture}`` for every non-error objective in ``names``.

    Returns:
        A new float64 array of the same shape.

    Raises:
        ValueError: on a shape mismatch, unknown names, or a missing, non-finite or non-positive max cost.
    """
    names = _objective_names(names)
    F = _matrix(F, "normalise")
    if F.shape[1] != len(names):
        raise ValueError(f"normalise: F has {F.shape[1]} columns for {len(names)} objective names")
    out = F.copy()
    for j, name in enumerate(names):
        if name == "error":
            continue
        scale = max_costs.get(name)
        if scale is None or isinstance(scale, bool) or not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"normalise: max_costs[{name!r}] must be a positive number, got {scale!r}")
        out[:, j] = F[:, j] / float(scale)
    return out


def hypervolume(F_norm: npt.ArrayLike, ref_point: float | Sequence[float]) -> float:
    """Hypervolume dominated by the non-dominated points of ``F_norm`` up to a fixed reference point.

    Points that do not strictly dominate the reference point contribute nothing; dominated points never change
    the value. Computed by pymoo's ``HV`` (moocore backend) without further normalisation, so with
    :func:`normalise` and a constant reference (``search.hv_ref`` per objective) the value is comparable across
    iterations, runs, seeds and policies.

    Args:
        F_norm: ``[n, m]`` normalised objectives (:func:`normalise`), all minimised.
        ref_point: one value for every objective, or ``m`` values.

    Returns:
        The hypervolume (0.0 when no point dominates the reference point).

    Raises:
        ValueError: on a malformed ``F_norm`` or reference point.
    """
    F = _matrix(F_norm, "hypervolume")
    ref = np.asarray(ref_point, dtype=np.float64)
    ref = np.full(F.shape[1], float(ref)) if ref.ndim == 0 else ref
    if ref.shape != (F.shape[1],) or not np.isfinite(ref).all():
        raise ValueError(f"hypervolume: ref_point must be a number or {F.shape[1]} finite numbers, got {ref_point!r}")
    F = F[(F < ref).all(axis=1)]
    if len(F) == 0:
        return 0.0
    return float(HV(ref_point=ref)(F[non_dominated(F)]))


# -- genome lists (initial design, candidates) ------------------------------------------------------------------------

GENOMES_FORMAT = "genomes/1"
GENOMES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("genome", ARCHIVE_SCHEMA.field("genome").type, nullable=False),
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
        "genome": _genome_array(pd.Series(list(G))),
        "origin": pa.array(list(origins), pa.string()),
        "predicted_error": pa.array(pred, pa.float64()),
    }, schema=GENOMES_SCHEMA)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=max(table.num_rows, 1), compression=_COMPRESSION,
                       compression_level=_COMPRESSION_LEVEL)


def read_genomes(path: str | os.PathLike[str], space: SearchSpace) -> pd.DataFrame:
    """Read a genome list written by :func:`write_genomes` (one-line :class:`Nat2Error` on any problem)."""
    p = Path(path)
    rerun = "rerun the stage that writes it"
    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as exc:
        raise Nat2Error(f"{path} is missing or not a nat2 genome list ({_first_line(exc)}); {rerun}") from None
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
