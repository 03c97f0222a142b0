"""Stage ``update_archive``: evaluate one iteration's candidates and update the archive (append or survival).

``python -m nat2.stages.update_archive --params params.yaml --iteration 1
--archive results/search/iter_0/archive.parquet --candidates results/search/iter_1/candidates.parquet
--supernet results/search/iter_0/supernet.pt --split data/split.parquet
--out results/search/iter_1/updated.parquet --stats results/search/iter_1/update.json``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nat2.context import RunContext
from nat2.search.update import update_archive_step
from nat2.space import SearchSpace
from nat2.stages._common import base_parser, load, run_stage, write_stage_manifest

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("update_archive", "Evaluate the candidates and update the archive.")
    parser.add_argument("--iteration", required=True, type=int)
    parser.add_argument("--archive", required=True, type=Path)
    parser.add_argument("--candidates", required=True, type=Path)
    parser.add_argument("--supernet", required=True, type=Path)
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--lut", type=Path, default=None,
                        help="latency look-up table (profile_latency; needed for the latency objective)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--stats", required=True, type=Path)
    parser.add_argument("--cache-dir", type=Path, default=Path("results/.cache/evaluations"),
                        help="evaluation cache (outside pipeline outputs; a killed run resumes from it)")
    return parser


def _body(args: argparse.Namespace) -> None:
    params = load(args)
    update_archive_step(params.search, SearchSpace.from_config(params.supernet),
                        RunContext.from_params(params, args.split, args.lut), args.iteration, args.archive,
                        args.candidates, args.supernet, args.out, args.stats, cache_dir=args.cache_dir)
    write_stage_manifest("update_archive", params, args.out, uses_device=True,
                         inputs={"archive": args.archive, "candidates": args.candidates, "supernet": args.supernet,
                                 "split": args.split, "lut": args.lut})


def main(argv: list[str] | None = None) -> int:
    return run_stage(_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
