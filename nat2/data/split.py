"""The deterministic train / validation / test split and the fixed BN-calibration subset.

The split is computed once by the ``prepare_data`` stage and stored as a small Parquet table, so every later stage
(and every search iteration) sees exactly the same images, and a checksum of the file tells the pipeline tools
whether anything downstream must rerun. One row per used image:

=========  ========  ==================================================================
column     type      meaning
=========  ========  ==================================================================
pool       string    which source array the row indexes: ``"train"`` or ``"test"``
index      int64     row in that array
split      string    ``"train"``, ``"val"`` (held out of the source training set) or ``"test"``
label      int64     class label (a copy, so consumers can check the split matches the data)
calib      bool      member of the fixed BN-recalibration subset (only ``train`` rows)
=========  ========  ==================================================================

Every selection (validation hold-out, the ``train_size`` / ``test_size`` truncations, the calibration subset) is a
*stratified* seeded choice: its class proportions match the pool's to within one image per class, so a small
validation set still covers every class. Each selection has its own random stream, so e.g. changing
``data.train_size`` does not move the validation images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from nat2.config import DataConfig
from nat2.data.datasets import ImageSource
from nat2.errors import DataError
from nat2.io import atomic_path
from nat2.seeds import numpy_rng

__all__ = ["SPLIT_SCHEMA", "SUBSETS", "Split", "make_split", "read_split", "write_split"]

SPLIT_SCHEMA = pa.schema([("pool", pa.string()), ("index", pa.int64()), ("split", pa.string()),
                          ("label", pa.int64()), ("calib", pa.bool_())])
SUBSETS = ("train", "val", "test", "calib")

_FORMAT_KEY = b"nat2.split"
_FORMAT_VERSION = b"1"
_SPLIT_ORDER = ("train", "val", "test")
# Sub-streams of the prepare_data stage (1 is the synthetic dataset's pixels).
_STREAM_VAL, _STREAM_TRAIN, _STREAM_TEST, _STREAM_CALIB = 2, 3, 4, 5
_RERUN = "rerun python -m nat2.stages.prepare_data"


@dataclass(frozen=True, eq=False)
class Split:
    """A validated split: index and label arrays (int64) of each subset.

    ``train``, ``val`` and ``calib`` index the source's train pool, ``test`` its test pool (see
    :meth:`subset`). Arrays follow the file's row order (ascending index within each split).
    """

    dataset: str
    num_classes: int
    train_pool_size: int
    test_pool_size: int
    train_idx: np.ndarray
    train_labels: np.ndarray
    val_idx: np.ndarray
    val_labels: np.ndarray
    test_idx: np.ndarray
    test_labels: np.ndarray
    calib_idx: np.ndarray
    calib_labels: np.ndarray

    @classmethod
    def from_table(cls, table: pa.Table, where: str = "split table") -> Split:
        """Validate a split table (as :func:`make_split` builds and :func:`read_split` reads) and index it.

        Raises:
            DataError: wrong columns or inconsistent rows, naming ``where``.
        """
        meta = table.schema.metadata or {}
        if not table.schema.remove_metadata().equals(SPLIT_SCHEMA) or meta.get(_FORMAT_KEY) != _FORMAT_VERSION:
            raise DataError(f"{where}: not a nat2 split (columns {', '.join(table.column_names)}; expected "
                            f"{', '.join(SPLIT_SCHEMA.names)}, format {_FORMAT_VERSION.decode()}); {_RERUN}")
        try:
            dataset = meta[b"dataset"].decode()
            num_classes, n_train, n_test = (int(meta[k]) for k in (b"num_classes", b"train_pool", b"test_pool"))
        except (KeyError, ValueError):
            raise DataError(f"{where}: split metadata is incomplete; {_RERUN}") from None
        cols = {name: table.column(name).to_numpy(zero_copy_only=False) for name in SPLIT_SCHEMA.names}
        pool, split = cols["pool"].astype(str), cols["split"].astype(str)
        index, label, calib = cols["index"].astype(np.int64), cols["label"].astype(np.int64), cols["calib"]
        expected_pool = np.where(split == "test", "test", "train")
        problems = [
            (not np.isin(split, _SPLIT_ORDER).all(), "unknown split names"),
            (not (pool == expected_pool).all(), "rows in the wrong pool"),
            (bool((calib & (split != "train")).any()), "calibration rows outside the train split"),
            (bool(((index < 0) | (index >= np.where(pool == "test", n_test, n_train))).any()), "indices out of range"),
            (bool(((label < 0) | (label >= num_classes)).any()), "labels out of range"),
        ]
        for is_bad, what in problems:
            if is_bad:
                raise DataError(f"{where}: {what}; the file is damaged, {_RERUN}")
        for p in ("train", "test"):
            idx = index[pool == p]
            if len(np.unique(idx)) != len(idx):
                raise DataError(f"{where}: an image of the {p} pool is used twice; the file is damaged, {_RERUN}")
        parts = {s: split == s for s in _SPLIT_ORDER}
        parts["calib"] = calib

        def arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
            mask = parts[name]
            return np.ascontiguousarray(index[mask]), np.ascontiguousarray(label[mask])

        (tr, ytr), (va, yva), (te, yte), (ca, yca) = (arrays(s) for s in SUBSETS)
        return cls(dataset=dataset, num_classes=num_classes, train_pool_size=n_train, test_pool_size=n_test,
                   train_idx=tr, train_labels=ytr, val_idx=va, val_labels=yva, test_idx=te, test_labels=yte,
                   calib_idx=ca, calib_labels=yca)

    def subset(self, name: str) -> tuple[str, np.ndarray, np.ndarray]:
        """``(pool, indices, labels)`` of subset ``"train"``, ``"val"``, ``"test"`` or ``"calib"``."""
        if name not in SUBSETS:
            raise ValueError(f"unknown subset {name!r}; expected one of {SUBSETS}")
        idx, labels = getattr(self, f"{name}_idx"), getattr(self, f"{name}_labels")
        return ("test" if name == "test" else "train"), idx, labels

    def sizes(self) -> dict[str, int]:
        """Number of images in each subset (for logs and manifests)."""
        return {name: len(self.subset(name)[1]) for name in SUBSETS}

    def check_source(self, source: ImageSource) -> None:
        """Fail unless this split was made for ``source`` (same dataset, pool sizes and labels).

        Raises:
            DataError: the split belongs to other data (e.g. ``data.dataset`` changed since prepare_data ran).
        """
        sizes = (len(source.train_labels), len(source.test_labels))
        if (source.name, source.num_classes, *sizes) != (self.dataset, self.num_classes, self.train_pool_size,
                                                         self.test_pool_size):
            raise DataError(f"the split was made for {self.dataset} ({self.train_pool_size}+{self.test_pool_size} "
                            f"images) but the data is {source.name} ({sizes[0]}+{sizes[1]}); {_RERUN}")
        for name in SUBSETS:
            pool, idx, labels = self.subset(name)
            if not np.array_equal(source.pool(pool)[1][idx], labels):
                raise DataError(f"the split's {name} labels differ from the {source.name} files; {_RERUN}")


def make_split(source: ImageSource, cfg: DataConfig, seed: int) -> pa.Table:
    """Compute the split of ``source`` for ``cfg``'s sizes; a pure function of its arguments.

    Args:
        source: the dataset.
        cfg: sizes (``val_size``, ``train_size``, ``test_size``, ``calib_size``).
        seed: the root seed (streams ``prepare_data`` 2..5).

    Returns:
        The split table, rows sorted by split (train, val, test) then index, with the schema metadata that
        :meth:`Split.from_table` checks.

    Raises:
        DataError: a size does not fit the dataset.
    """
    n_train, n_test = len(source.train_labels), len(source.test_labels)
    if cfg.val_size >= n_train:
        raise DataError(f"data.val_size = {cfg.val_size} leaves no training images ({source.name} has {n_train}); "
                        "lower it")
    order = _stratified_order(source.train_labels, numpy_rng(seed, "prepare_data", 0, _STREAM_VAL))
    val, rest = order[:cfg.val_size], order[cfg.val_size:]
    if cfg.train_size > len(rest):
        raise DataError(f"data.train_size = {cfg.train_size} exceeds the {len(rest)} training images left after "
                        f"data.val_size = {cfg.val_size}; lower it or set it to 0 (all)")
    train = _take(rest, source.train_labels, cfg.train_size, numpy_rng(seed, "prepare_data", 0, _STREAM_TRAIN))
    if cfg.test_size > n_test:
        raise DataError(f"data.test_size = {cfg.test_size} exceeds the {n_test} test images of {source.name}; "
                        "lower it or set it to 0 (all)")
    test = _take(np.arange(n_test), source.test_labels, cfg.test_size,
                 numpy_rng(seed, "prepare_data", 0, _STREAM_TEST))
    if cfg.calib_size > len(train):
        raise DataError(f"data.calib_size = {cfg.calib_size} exceeds the {len(train)} images of the train split it "
                        "is drawn from; lower it")
    calib = _take(train, source.train_labels, cfg.calib_size, numpy_rng(seed, "prepare_data", 0, _STREAM_CALIB))

    train, val, test = np.sort(train), np.sort(val), np.sort(test)
    index = np.concatenate([train, val, test]).astype(np.int64)
    split = np.repeat(np.array(_SPLIT_ORDER), [len(train), len(val), len(test)])
    pool = np.where(split == "test", "test", "train")
    label = np.concatenate([source.train_labels[train], source.train_labels[val], source.test_labels[test]])
    is_calib = np.zeros(len(index), dtype=bool)
    is_calib[:len(train)] = np.isin(train, calib)
    metadata = {_FORMAT_KEY: _FORMAT_VERSION, b"dataset": source.name.encode(),
                b"num_classes": str(source.num_classes).encode(), b"train_pool": str(n_train).encode(),
                b"test_pool": str(n_test).encode()}
    return pa.table([pa.array(pool.tolist(), pa.string()), pa.array(index, pa.int64()),
                     pa.array(split.tolist(), pa.string()), pa.array(label.astype(np.int64), pa.int64()),
                     pa.array(is_calib, pa.bool_())], schema=SPLIT_SCHEMA.with_metadata(metadata))


def _stratified_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random order of ``range(len(labels))`` whose every prefix is (nearly exactly) stratified by label.

    Systematic sampling: after a random permutation, the j-th image of a class with n images gets the key
    ``(j + 0.5) / n``; sorting by key interleaves the classes in proportion to their sizes, so the first k images
    hold ``round(k * n_c / N)`` images of each class c (+-1), and ties are broken by the random permutation.
    """
    perm = rng.permutation(len(labels))
    lab = np.asarray(labels, dtype=np.int64)[perm]
    counts = np.bincount(lab)
    by_class = np.argsort(lab, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(lab), dtype=np.int64)
    rank[by_class] = np.arange(len(lab)) - starts[lab[by_class]]
    keys = (rank + 0.5) / counts[lab]
    return perm[np.argsort(keys, kind="stable")]


def _take(candidates: np.ndarray, labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A stratified random subset of ``size`` of ``candidates`` (all of them when ``size`` is 0)."""
    if size == 0 or size >= len(candidates):
        return np.asarray(candidates)
    return np.asarray(candidates)[_stratified_order(labels[candidates], rng)[:size]]


def write_split(path: str | os.PathLike[str], table: pa.Table) -> None:
    """Write the split atomically; the same table always gives the same bytes (no timestamps in Parquet)."""
    Split.from_table(table)  # never write a table that read_split would reject
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_split(path: str | os.PathLike[str]) -> Split:
    """Read and validate a split file written by :func:`write_split`.

    Raises:
        DataError: the file is missing, not Parquet, or not a nat2 split (one line, saying to rerun prepare_data).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: split file not found; run python -m nat2.stages.prepare_data --out {p}")
    try:
        table = pq.read_table(p)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{p}: not a readable Parquet file ({type(exc).__name__}); {_RERUN}") from None
    return Split.from_table(table, where=str(p))
