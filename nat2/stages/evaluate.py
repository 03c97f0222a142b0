"""Stage ``evaluate``: evaluate one shard of a genome list on a super-net (BN recalibration + validation top-1).

``python -m nat2.stages.evaluate --params params.yaml --genomes results/search/iter_0/design.parquet
--supernet results/supernet/supernet.pt --split data/split.parquet --shard 0
--out results/search/iter_0/evals/shard_0.parquet``

Shard ``i`` of ``n = len(search.shards)`` takes every n-th genome, so shards can run as parallel jobs; finished
evaluations are cached (``results/.cache/evaluations/``), so a killed shard resumes where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nat2.context import RunContext
from nat2.errors import Nat2Error
from nat2.search.initial import evaluate_shard
from nat2.space import SearchSpace
from nat2.stages._common import base_parser, load, run_stage, write_stage_manifest

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("evaluate", "Evaluate one shard of a genome list on a super-net.")
    parser.add_argument("--genomes", required=True, type=Path)
    parser.add_argument("--supernet", required=True, type=Path)
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--lut", type=Path, default=None,
                        help="latency look-up table (profile_latency; needed for the latency objective)")
    parser.add_argument("--shard", required=True, help="shard index i, or i/n (n must equal len(search.shards))")
    parser.add_argument("--out", required=True, type=Path, help="archive file of this shard (.parquet)")
    parser.add_argument("--cache-dir", type=Path, default=Path("results/.cache/evaluations"),
                        help="evaluation cache (outside pipeline outputs; a killed run resumes from it)")
    return parser


def _body(args: argparse.Namespace) -> None:
    params = load(args)
    index, _, count = str(args.shard).partition("/")
    if not index.isdigit() or (count and (not count.isdigit() or int(count) != len(params.search.shards))):
        raise Nat2Error(f"--shard {args.shard}: give i or i/n with n = len(search.shards) = "
                        f"{len(params.search.shards)}")
    evaluate_shard(RunContext.from_params(params, args.split, args.lut), SearchSpace.from_config(params.supernet),
                   params.search.shards, int(index), args.genomes, args.supernet, args.out, cache_dir=args.cache_dir,
                   latency="latency" in params.search.objectives)
    write_stage_manifest("evaluate", params, args.out, uses_device=True,
                         inputs={"genomes": args.genomes, "supernet": args.supernet, "split": args.split,
                                 "lut": args.lut})


def main(argv: list[str] | None = None) -> int:
    return run_stage(_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
