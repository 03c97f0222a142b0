"""Stage ``fit_surrogate``: fit the accuracy predictor of one search iteration on the previous archive.

``python -m nat2.stages.fit_surrogate --params params.yaml --iteration 1
--archive results/search/iter_0/archive.parquet --out results/search/iter_1/surrogate.model.json
--report results/search/iter_1/surrogate.json``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nat2.search.fit import fit_surrogate_step
from nat2.space import SearchSpace
from nat2.stages._common import base_parser, load, run_stage, write_stage_manifest

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("fit_surrogate", "Fit the accuracy predictor on an archive (cross-validated report).")
    parser.add_argument("--iteration", required=True, type=int)
    parser.add_argument("--archive", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="model file (JSON, no pickle)")
    parser.add_argument("--report", required=True, type=Path, help="model choice and cross-validated tau (.json)")
    return parser


def _body(args: argparse.Namespace) -> None:
    params = load(args)
    fit_surrogate_step(params.search, SearchSpace.from_config(params.supernet), args.iteration, args.archive,
                       args.out, args.report, seed=params.seed, threads=params.runtime.threads)
    write_stage_manifest("fit_surrogate", params, args.report, uses_device=False, inputs={"archive": args.archive})


def main(argv: list[str] | None = None) -> int:
    return run_stage(_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
