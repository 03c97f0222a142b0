"""Stage ``sample_initial``: the initial design of the search (sampled architectures + the min and max ones).

``python -m nat2.stages.sample_initial --params params.yaml --out results/search/iter_0/design.parquet``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nat2.search.initial import sample_initial
from nat2.space import SearchSpace
from nat2.stages._common import base_parser, load, run_stage, write_stage_manifest

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("sample_initial", "Sample the initial design (search.init policy, NAT2 over-sampling).")
    parser.add_argument("--out", required=True, type=Path, help="genome list to write (.parquet)")
    return parser


def _body(args: argparse.Namespace) -> None:
    params = load(args)
    sample_initial(params.search, SearchSpace.from_config(params.supernet), params.seed, args.out)
    write_stage_manifest("sample_initial", params, args.out, uses_device=False, inputs={})


def main(argv: list[str] | None = None) -> int:
    return run_stage(_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
