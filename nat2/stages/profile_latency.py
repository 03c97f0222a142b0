"""Stage ``profile_latency``: the latency look-up table of the search space, its fitted overhead and validation.

``python -m nat2.stages.profile_latency --params params.yaml --split data/split.parquet
--out results/latency/lut.parquet --subnets results/latency/subnets.csv --stats results/latency/latency.json``

Times every block of the space on ``runtime.device`` with ``runtime.threads`` (or under ONNX Runtime), then
``latency.fit_subnets + latency.validate_subnets`` random sub-networks end to end (:mod:`nat2.latency.profile`).
The split is read for the class count only. Run it with nothing else on the machine: Snakemake gives it every
thread of ``runtime.threads``, and a concurrent job would be timed too.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from nat2.context import RunContext
from nat2.space import SearchSpace
from nat2.stages._common import base_parser, load, run_stage, write_stage_manifest

__all__ = ["main"]

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("profile_latency", "Measure the latency look-up table of the search space and validate it.")
    parser.add_argument("--split", required=True, type=Path, help="the data split (for the class count)")
    parser.add_argument("--out", required=True, type=Path, help="look-up table to write (.parquet)")
    parser.add_argument("--subnets", required=True, type=Path, help="timed sub-networks: predicted vs measured (.csv)")
    parser.add_argument("--stats", required=True, type=Path, help="validation statistics (.json)")
    return parser


def _body(args: argparse.Namespace) -> None:
    from nat2.latency.profile import profile_space, write_profile
    from nat2.latency.timing import make_timer

    params = load(args)
    cfg = params.latency
    ctx = RunContext.from_params(params, args.split)
    space = SearchSpace.from_config(params.supernet)
    num_classes = ctx.num_classes
    timer = make_timer(cfg.backend, ctx.device, ctx.memory_format, params.runtime.threads, cfg.batch_size,
                       cfg.warmup, cfg.repeats, cfg.rounds)
    profile = profile_space(space, num_classes, timer, fit_subnets=cfg.fit_subnets,
                            validate_subnets=cfg.validate_subnets, seed=params.seed, threads=params.runtime.threads)
    write_profile(profile, args.out, args.subnets, args.stats)
    write_stage_manifest("profile_latency", params, args.out, uses_device=cfg.backend == "torch",
                         inputs={"split": args.split}, extra={k: profile.meta[k] for k in (
                             "backend", "device", "device_name", "torch", "onnxruntime", "threads", "batch_size")})
    s = profile.stats
    log.info("profile_latency: %d blocks in %.0f s; on %d held-out sub-networks tau %.3f, MAPE %.1f %%",
             s["blocks"], s["lut_s"], s["n"], s["kendall_tau"], s["mape"])


def main(argv: list[str] | None = None) -> int:
    return run_stage(_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
