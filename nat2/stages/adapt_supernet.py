"""Stage ``adapt_supernet``: adapt the super-net on the archive's distribution and re-evaluate the archive.

``python -m nat2.stages.adapt_supernet --params params.yaml --iteration 1
--archive results/search/iter_1/updated.parquet --supernet results/search/iter_0/supernet.pt
--split data/split.parquet --full results/supernet/full.pt --out-supernet results/search/iter_1/supernet.pt
--out-archive results/search/iter_1/archive.parquet --stats results/search/iter_1/adapt.json``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nat2.context import RunContext
from nat2.search.adapt import adapt_supernet_step
from nat2.space import SearchSpace
from nat2.stages._common import base_parser, load, run_stage, write_stage_manifest
from nat2.stages._resume import adapt_supernet_resume

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("adapt_supernet", "Adapt the super-net to the archive, then re-evaluate the archive.")
    parser.add_argument("--iteration", required=True, type=int)
    parser.add_argument("--archive", required=True, type=Path)
    parser.add_argument("--supernet", required=True, type=Path)
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--lut", type=Path, default=None,
                        help="latency look-up table (profile_latency; needed for the latency objective)")
    parser.add_argument("--full", type=Path, default=None, help="full-phase checkpoint (warmup_max teacher)")
    parser.add_argument("--out-supernet", required=True, type=Path)
    parser.add_argument("--out-archive", required=True, type=Path)
    parser.add_argument("--stats", required=True, type=Path)
    parser.add_argument("--partial-root", type=Path, default=Path("results/.partial/adapt_supernet"))
    parser.add_argument("--cache-dir", type=Path, default=Path("results/.cache/evaluations"),
                        help="evaluation cache (outside pipeline outputs; a killed run resumes from it)")
    return parser


def _body(args: argparse.Namespace) -> None:
    params = load(args)
    adapt_supernet_step(params.search, params.train, SearchSpace.from_config(params.supernet),
                        RunContext.from_params(params, args.split, args.lut), args.iteration, args.archive,
                        args.supernet,
                        args.full, args.out_supernet, args.out_archive, args.stats, dropout=params.supernet.dropout,
                        resume_settings=adapt_supernet_resume(params), partial_root=args.partial_root,
                        cache_dir=args.cache_dir)
    write_stage_manifest("adapt_supernet", params, args.out_archive, uses_device=True,
                         inputs={"archive": args.archive, "supernet": args.supernet, "split": args.split,
                                 "lut": args.lut,
                                 "full": args.full})


def main(argv: list[str] | None = None) -> int:
    return run_stage(_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
