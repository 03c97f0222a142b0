"""Datasets, the deterministic split and the batch loaders.

* :func:`load_source` reads (or generates) a dataset as uint8 arrays: :class:`ImageSource`.
* :func:`make_split` / :func:`write_split` / :func:`read_split`: the seeded train / val / test split with the fixed
  BN-calibration subset, stored as Parquet by the ``prepare_data`` stage: :class:`Split`.
* :class:`TrainLoader`: augmented, resumable, rank-sliced training batches with one random resolution per batch.
* :class:`EvalSet`: validation / test / calibration images materialised once per resolution.
"""

from __future__ import annotations

from nat2.data.datasets import ImageSource, load_source
from nat2.data.loaders import EvalSet, TrainLoader
from nat2.data.split import SPLIT_SCHEMA, SUBSETS, Split, make_split, read_split, write_split

__all__ = [
    "SPLIT_SCHEMA",
    "SUBSETS",
    "EvalSet",
    "ImageSource",
    "Split",
    "TrainLoader",
    "load_source",
    "make_split",
    "read_split",
    "write_split",
]
