"""The latency look-up table (one Parquet file) and the latency model that sums it, vectorised over genomes.

A sub-network's measured latency is predicted as ``scale · lut_sum + offset_ms``: ``lut_sum`` adds the measured
latency of every block the network runs (stem with the fixed first block, each executed layer at its
position's input size / stride / channels, the dense-connection additions of each stage, the exit head), and the
two coefficients are fitted on sub-networks measured end to end (:mod:`nat2.latency.profile`). They absorb what
the blocks measured one by one do not see: the Python loop between blocks, caches warmed by the previous block,
the per-call cost of a runtime that fuses the whole graph. No torch here: search predicts latency for thousands of
genomes per generation from table look-ups, like the params/MACs of :class:`nat2.costs.CostModel`.

The file holds one row per measured block (:data:`LUT_SCHEMA`) and, as Parquet key-value metadata under
``nat2.latency``, where and how it was measured (device, CPU model / GPU name, torch and onnxruntime versions,
threads, batch size, backend), which space it covers, the fitted coefficients and their validation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nat2.errors import Nat2Error
from nat2.parquet import write_parquet
from nat2.space import LAYER_STAGE, MAX_DEPTH, N_EXITS, N_LAYERS, N_STAGES, SearchSpace, canonical_codes, layer_choice
from nat2.space.variants import recorded_stem_stride

__all__ = ["KINDS", "LUT_FORMAT", "LUT_SCHEMA", "LatencyModel", "dense_adds", "read_lut", "write_lut"]

LUT_FORMAT = 1
#: block kinds: the stem with the fixed first block, one elastic layer, one dense-connection addition, an exit head
KINDS = ("stem", "layer", "dense", "head")
_META_KEY = b"nat2.latency"

LUT_SCHEMA = pa.schema([
    pa.field("kind", pa.string(), nullable=False),
    pa.field("width_mult", pa.float64(), nullable=False),
    pa.field("resolution", pa.int32(), nullable=False),
    pa.field("stage", pa.int32(), nullable=False),  # 0-based body stage (layer, dense); -1 otherwise
    pa.field("position", pa.int32(), nullable=False),  # layer: 0 = the stage's first (strided), 1 = the others
    pa.field("kernel", pa.int32(), nullable=False),  # layer only (0 otherwise)
    pa.field("expand", pa.int32(), nullable=False),
    pa.field("branch", pa.int32(), nullable=False),
    pa.field("exit", pa.int32(), nullable=False),  # head: 1..5 (0 otherwise)
    pa.field("in_channels", pa.int32(), nullable=False),
    pa.field("out_channels", pa.int32(), nullable=False),
    pa.field("in_side", pa.int32(), nullable=False),
    pa.field("out_side", pa.int32(), nullable=False),
    pa.field("latency_ms", pa.float64(), nullable=False),  # lowest per-round median (timing.Timing)
    pa.field("p25_ms", pa.float64(), nullable=False),
    pa.field("p75_ms", pa.float64(), nullable=False),
    pa.field("repeats", pa.int32(), nullable=False),
])

#: metadata keys every LUT file carries
META_KEYS = ("format", "backend", "device", "device_name", "torch", "onnxruntime", "threads", "batch_size",
             "channels_last", "variant", "stem_stride", "width_mults", "resolutions", "num_classes", "call_overhead_ms",
             "rounds", "warmup", "scale", "offset_ms", "validation")


def dense_adds(depth: int) -> int:
    """Additions a dense stage of ``depth`` layers performs (:func:`nat2.supernet._static.stage_forward`).

    Layer ``k`` (0-based) adds the outputs of layers ``0..k-3``, the stage output those of ``0..D-3``.
    """
    return sum(max(i - 2, 0) for i in range(depth)) + max(depth - 2, 0)


def write_lut(path: str | os.PathLike[str], table: pd.DataFrame, meta: Mapping[str, Any]) -> None:
    """Write the LUT rows and their metadata atomically (the schema is enforced, extra columns are refused)."""
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"write_lut: metadata lacks {missing}")
    extra = sorted(set(table.columns) - set(LUT_SCHEMA.names))
    if extra:
        raise ValueError(f"write_lut: unknown columns {extra}")
    arrow = pa.Table.from_pandas(table[list(LUT_SCHEMA.names)], schema=LUT_SCHEMA, preserve_index=False)
    blob = json.dumps({k: meta[k] for k in META_KEYS}, sort_keys=True).encode()
    write_parquet(path, arrow.replace_schema_metadata({_META_KEY: blob}))


def read_lut(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows and metadata of a LUT file.

    Raises:
        Nat2Error: a missing, unreadable or foreign file, or one written by another LUT format.
    """
    p = Path(path)
    fix = "rerun the profile_latency stage (snakemake results/latency/lut.parquet, or dvc repro profile_latency)"
    if not p.is_file():
        raise Nat2Error(f"latency look-up table {p} not found; {fix}")
    try:
        table = pq.read_table(p)
    except (OSError, pa.ArrowException) as exc:
        raise Nat2Error(f"latency look-up table {p} is not a readable Parquet file ({exc}); {fix}") from None
    raw = (table.schema.metadata or {}).get(_META_KEY)
    if raw is None or not table.schema.equals(LUT_SCHEMA.with_metadata(table.schema.metadata)):
        raise Nat2Error(f"{p} is not a nat2 latency look-up table (schema or metadata differ); {fix}")
    meta = json.loads(raw)
    if meta.get("format") != LUT_FORMAT:
        raise Nat2Error(f"{p} has LUT format {meta.get('format')!r}, this nat2 reads {LUT_FORMAT}; {fix}")
    return table.to_pandas(), meta


def _fixed(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    a.setflags(write=False)
    return a


class LatencyModel:
    """Predicted latency (milliseconds) of the sub-networks of one space, from a measured LUT.

    Attributes:
        space: the search space the LUT covers.
        num_classes: classifier outputs (the heads' size).
        table: the LUT rows (:data:`LUT_SCHEMA`).
        meta: the LUT metadata (device, backend, coefficients...).
    """

    def __init__(self, space: SearchSpace, num_classes: int, table: pd.DataFrame, meta: Mapping[str, Any],
                 source: str = "the latency look-up table") -> None:
        self.space = space
        self.num_classes = int(num_classes)
        self.table = table
        self.meta = dict(meta)
        self._check_coverage(source)
        self._build(source)

    @classmethod
    def load(cls, path: str | os.PathLike[str], space: SearchSpace, num_classes: int) -> LatencyModel:
        """The model of a LUT file, checked to cover ``space`` with ``num_classes`` outputs (one-line errors)."""
        table, meta = read_lut(path)
        return cls(space, num_classes, table, meta, source=str(path))

    # -- construction --------------------------------------------------------------------------------------------

    def _check_coverage(self, source: str) -> None:
        sp, meta = self.space, self.meta
        fix = "rerun profile_latency with the current supernet settings and dataset"
        if meta.get("variant") != sp.variant.name:
            raise Nat2Error(f"{source} was measured for variant {meta.get('variant')}, the space is "
                            f"{sp.variant.name}; {fix}")
        if recorded_stem_stride(meta) != sp.variant.stem_stride:
            raise Nat2Error(f"{source} was measured with stem stride {recorded_stem_stride(meta)}, the space has "
                            f"{sp.variant.stem_stride}; {fix}")
        if int(meta.get("num_classes", -1)) != self.num_classes:
            raise Nat2Error(f"{source} was measured with {meta.get('num_classes')} classes, the data has "
                            f"{self.num_classes}; {fix}")
        for name, have, need in (("width_mults", meta.get("width_mults", []), sp.width_mults),
                                 ("resolutions", meta.get("resolutions", []), sp.resolutions)):
            lacking = [v for v in need if not any(abs(float(v) - float(h)) < 1e-9 for h in have)]
            if lacking:
                raise Nat2Error(f"{source} has no measurements for supernet.{name} {lacking}; {fix}")

    def _build(self, source: str) -> None:
        sp = self.space
        n_w, n_r, n_c = len(sp.width_mults), len(sp.resolutions), sp.n_codes + 1
        nan = np.nan
        base = np.full((n_w, n_r), nan)
        layers = np.zeros((n_w, n_r, N_LAYERS, n_c))
        dense = np.zeros((n_w, n_r, N_STAGES))
        heads = np.full((n_w, n_r, N_EXITS), nan)
        overhead = float(self.meta["call_overhead_ms"])
        t = self.table
        value = np.maximum(t["latency_ms"].to_numpy(np.float64) - overhead, 0.0)
        index: dict[tuple, float] = {}
        for row, v in zip(t.itertuples(index=False), value, strict=True):
            key = (row.kind, round(float(row.width_mult), 9), int(row.resolution), int(row.stage), int(row.position),
                   int(row.kernel), int(row.expand), int(row.branch), int(row.exit))
            index[key] = float(v)
        exits = range(1, N_EXITS + 1) if sp.variant.early_exit else (N_EXITS,)
        missing: dict[str, None] = {}  # distinct rows (positions 1-3 share one), in the order first asked for

        def get(*key: Any) -> float:
            full = (key[0], round(float(key[1]), 9), *key[2:])
            if full not in index:
                missing.setdefault(f"{key[0]} (w={key[1]}, r={key[2]}, stage={key[3]}, position={key[4]}, "
                                   f"k={key[5]}, e={key[6]}, branch={key[7]}, exit={key[8]})")
                return nan
            return index[full]

        for wi, w in enumerate(sp.width_mults):
            for ri, r in enumerate(sp.resolutions):
                base[wi, ri] = get("stem", w, r, -1, -1, 0, 0, 0, 0)
                for i in range(N_LAYERS):
                    stage, pos = divmod(i, MAX_DEPTH)
                    for code in range(1, n_c):
                        k, e, b = layer_choice(canonical_codes(sp.variant.parallel)[code], sp.variant.parallel)
                        layers[wi, ri, i, code] = get("layer", w, r, stage, min(pos, 1), k, e, b, 0)
                if sp.variant.dense:
                    for s in range(N_STAGES):
                        dense[wi, ri, s] = get("dense", w, r, s, -1, 0, 0, 0, 0)
                for x in exits:
                    heads[wi, ri, x - 1] = get("head", w, r, -1, -1, 0, 0, 0, x)
        if missing:
            raise Nat2Error(f"{source} lacks {len(missing)} block(s) of this space, e.g. {next(iter(missing))}; rerun "
                            "profile_latency")
        self._base, self._layers, self._dense, self._heads = _fixed(base), _fixed(layers), _fixed(dense), _fixed(heads)

    # -- prediction ----------------------------------------------------------------------------------------------

    @property
    def scale(self) -> float:
        """Fitted multiplier of the LUT sum."""
        return float(self.meta["scale"])

    @property
    def offset_ms(self) -> float:
        """Fitted per-network overhead (milliseconds)."""
        return float(self.meta["offset_ms"])

    def lut_sum(self, X: npt.ArrayLike, exits: str = "single") -> npt.NDArray[np.float64]:
        """Sum of the measured blocks each canonical genome runs, in milliseconds (``exits`` as in CostModel).

        Raises:
            ValueError: on a non-canonical genome or an unknown ``exits``.
        """
        if exits not in ("single", "all"):
            raise ValueError(f"LatencyModel: exits must be 'single' or 'all', got {exits!r}")
        sp = self.space
        G = np.atleast_2d(np.asarray(X)).astype(np.int64)
        ok = np.atleast_1d(sp.is_canonical(G))
        if not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            raise ValueError(f"LatencyModel: genome {bad} is not canonical ({sp.explain(G[bad])}); repair it first")
        n = G.shape[0]
        r, w = G[:, 0], G[:, 1]
        nd = G[:, sp.exit_gene] + 1 if sp.exit_gene is not None else np.full(n, N_STAGES, dtype=np.int64)
        codes = G[:, sp.layer_offset:]
        active = np.asarray(LAYER_STAGE)[None, :] < nd[:, None]
        layer = self._layers[w[:, None], r[:, None], np.arange(N_LAYERS)[None, :], codes]
        total = self._base[w, r] + np.where(active, layer, 0.0).sum(axis=1)
        if sp.variant.dense:
            depths = (codes.reshape(n, N_STAGES, MAX_DEPTH) > 0).sum(axis=2)
            adds = np.vectorize(dense_adds)(depths) if n else np.zeros((0, N_STAGES))
            ran = np.arange(N_STAGES)[None, :] < nd[:, None]
            total = total + (np.where(ran, adds, 0) * self._dense[w, r]).sum(axis=1)
        if exits == "all" and sp.variant.early_exit:
            heads = np.cumsum(self._heads, axis=-1)[w, r, nd - 1]
        else:
            heads = self._heads[w, r, nd - 1]
        return total + heads

    def __call__(self, X: npt.ArrayLike, exits: str = "single") -> npt.NDArray[np.float64]:
        """Predicted latency in milliseconds: ``scale · lut_sum + offset_ms``, one per genome."""
        return self.scale * self.lut_sum(X, exits) + self.offset_ms
