"""Stage ``init_archive``: merge the evaluated shards into the initial archive (iteration 0).

``python -m nat2.stages.init_archive --params params.yaml --evals results/search/iter_0/evals
--supernet results/supernet/supernet.pt --split data/split.parquet --out results/search/iter_0/archive.parquet
--out-supernet results/search/iter_0/supernet.pt --stats results/search/iter_0/stats.json``

NAT2 pre-processing keeps ``archive_size - 2`` of the over-sampled design by survival and adds the min and max
architectures. The super-net is copied to ``--out-supernet``: iteration 1 continues from it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nat2.context import RunContext
from nat2.errors import Nat2Error
from nat2.search.initial import init_archive
from nat2.space import SearchSpace
from nat2.stages._common import base_parser, load, run_stage, write_stage_manifest

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("init_archive", "Merge the evaluated initial design into the initial archive.")
    parser.add_argument("--evals", required=True, type=Path, help="folder of shard_<i>.parquet files")
    parser.add_argument("--supernet", required=True, type=Path)
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--lut", type=Path, default=None,
                        help="latency look-up table (profile_latency; needed for the latency objective)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--out-supernet", required=True, type=Path)
    parser.add_argument("--stats", required=True, type=Path)
    return parser


def _body(args: argparse.Namespace) -> None:
    params = load(args)
    files = [args.evals / f"shard_{i}.parquet" for i in params.search.shards]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise Nat2Error(f"evaluation shard(s) missing: {', '.join(missing)}; run the evaluate stage for each shard")
    init_archive(params.search, SearchSpace.from_config(params.supernet),
                 RunContext.from_params(params, args.split, args.lut), files, args.supernet, args.out,
                 args.out_supernet, args.stats)
    write_stage_manifest("init_archive", params, args.out, uses_device=False,
                         inputs={**{f"shard_{i}": f for i, f in zip(params.search.shards, files, strict=True)},
                                 "supernet": args.supernet, "split": args.split, "lut": args.lut})


def main(argv: list[str] | None = None) -> int:
    return run_stage(_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
