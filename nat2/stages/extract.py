"""Stage ``extract``: the final subnets (fixed slots by trade-off) with recalibrated weights and model cards.

``python -m nat2.stages.extract --params params.yaml --archive results/search/iter_3/archive.parquet
--supernet results/search/iter_3/supernet.pt --split data/split.parquet --out results/final/extract``

Writes ``<out>/slot_<k>/{arch.json,weights.pt,card.json}`` for k < postprocess.slots and ``<out>/front.parquet``
(the final non-dominated set); the folder appears whole or not at all.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nat2.context import RunContext
from nat2.extract import extract_slots
from nat2.manifest import write_manifest
from nat2.space import SearchSpace
from nat2.stages._common import base_parser, load, run_stage

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("extract", "Extract the final subnets into fixed slots.")
    parser.add_argument("--archive", required=True, type=Path)
    parser.add_argument("--supernet", required=True, type=Path)
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--lut", type=Path, default=None,
                        help="latency look-up table (profile_latency; needed for the latency objective)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (slot_<k>/ + front.parquet)")
    return parser


def _body(args: argparse.Namespace) -> None:
    params = load(args)

    def manifest(path: Path, device: str, extra: dict[str, Any]) -> None:
        write_manifest(path, "extract", params, device, extra=extra)

    extract_slots(params.search.objectives, len(params.postprocess.slots), SearchSpace.from_config(params.supernet),
                  RunContext.from_params(params, args.split, args.lut), args.archive, args.supernet, args.out,
                  manifest=manifest, accurate=params.postprocess.accurate_slots,
                  max_params=params.postprocess.accurate_max_params)


def main(argv: list[str] | None = None) -> int:
    return run_stage(_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
