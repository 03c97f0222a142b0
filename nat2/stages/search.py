"""Stage ``search``: propose one iteration's candidates (inner NSGA-II/III on the predictor + spread selection).

``python -m nat2.stages.search --params params.yaml --iteration 1 --archive results/search/iter_0/archive.parquet
--surrogate results/search/iter_1/surrogate.model.json --split data/split.parquet
--out results/search/iter_1/candidates.parquet --stats results/search/iter_1/search.json``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nat2.context import RunContext
from nat2.search.propose import propose_candidates
from nat2.space import SearchSpace
from nat2.stages._common import base_parser, load, run_stage, write_stage_manifest

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("search", "Propose new candidate architectures for one iteration.")
    parser.add_argument("--iteration", required=True, type=int)
    parser.add_argument("--archive", required=True, type=Path)
    parser.add_argument("--surrogate", required=True, type=Path)
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--lut", type=Path, default=None,
                        help="latency look-up table (profile_latency; needed for the latency objective)")
    parser.add_argument("--out", required=True, type=Path, help="candidate genome list (.parquet)")
    parser.add_argument("--stats", required=True, type=Path)
    return parser


def _body(args: argparse.Namespace) -> None:
    params = load(args)
    propose_candidates(params.search, SearchSpace.from_config(params.supernet),
                       RunContext.from_params(params, args.split, args.lut), args.iteration, args.archive,
                       args.surrogate, args.out, args.stats)
    write_stage_manifest("search", params, args.out, uses_device=False,
                         inputs={"archive": args.archive, "surrogate": args.surrogate, "split": args.split,
                                 "lut": args.lut})


def main(argv: list[str] | None = None) -> int:
    return run_stage(_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
