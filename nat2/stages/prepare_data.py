"""Stage ``prepare_data``: read the dataset and write its deterministic split (and warm the decoded-image cache).

``python -m nat2.stages.prepare_data --params params.yaml --out data/split.parquet``

Writes ``--out`` (the split, see :mod:`nat2.data.split`) and ``<out stem>.manifest.json`` beside it. Every check
runs before the first write, so a user error (missing dataset, sizes that do not fit) writes nothing.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nat2.data import Split, load_source, make_split, write_split
from nat2.manifest import write_manifest
from nat2.stages._common import base_parser, load, run_stage

__all__ = ["main"]

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("prepare_data", "Read the dataset and write the seeded train/val/test + calibration split.")
    parser.add_argument("--out", required=True, help="split file to write (Parquet), e.g. data/split.parquet")
    return parser


def _manifest_path(out: str | Path) -> Path:
    """``data/split.parquet`` -> ``data/split.manifest.json``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.manifest.json")


def _body(args: argparse.Namespace) -> None:
    params = load(args)
    source = load_source(params.data, params.seed, threads=params.runtime.threads)
    table = make_split(source, params.data, params.seed)
    sizes = Split.from_table(table).sizes()
    write_split(args.out, table)
    write_manifest(_manifest_path(args.out), "prepare_data", params, device="cpu", extra={
        "split_sizes": sizes,
        "num_classes": source.num_classes,
        "source": {"dataset": source.name, "location": source.location,
                   "train_pool": len(source.train_labels), "test_pool": len(source.test_labels),
                   "image_shape": list(source.train_images.shape[1:]), "mean": list(source.mean),
                   "std": list(source.std)},
    })
    log.info("prepare_data: %s split of %s written to %s", sizes, source.name, args.out)


def main(argv: list[str] | None = None) -> int:
    return run_stage(_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
