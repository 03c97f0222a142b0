"""Stage ``train_supernet``: one progressive-shrinking phase, for the super-net of every width.

``python -m nat2.stages.train_supernet --params params.yaml --phase kernel --split data/split.parquet
--init results/supernet/full.pt --full results/supernet/full.pt --out results/supernet/kernel.pt``

``--init`` is the previous phase's checkpoint (``train.lineage``); ``--full`` the first phase's, the teacher when
``train.teacher`` is ``fixed`` (with ``pet`` the teacher is the ``--init`` network).

Rerunning a killed phase with the same command resumes from its last in-phase checkpoint. Launch with
``torchrun --nproc-per-node N -m nat2.stages.train_supernet ...`` for data-parallel training.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nat2.config import PHASES
from nat2.context import RunContext
from nat2.manifest import write_manifest
from nat2.stages._common import base_parser, load, run_stage
from nat2.stages._resume import train_supernet_resume
from nat2.train import PhaseInputs, run_phase

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("train_supernet", "Train one phase of the super-nets of every width.")
    parser.add_argument("--phase", required=True, choices=PHASES)
    parser.add_argument("--split", required=True, type=Path, help="data split written by prepare_data")
    parser.add_argument("--init", type=Path, default=None, help="checkpoint of the previous phase")
    parser.add_argument("--full", type=Path, default=None, help="checkpoint of the first (full) phase")
    parser.add_argument("--out", required=True, type=Path, help="phase checkpoint to write (.pt)")
    parser.add_argument("--partial-root", type=Path, default=Path("results/.partial/train_supernet"),
                        help="where in-phase checkpoints live (outside every pipeline output)")
    return parser


def _body(args: argparse.Namespace) -> None:
    params = load(args)
    summary = run_phase(PhaseInputs(ctx=RunContext.from_params(params, args.split), supernet=params.supernet,
                                    train=params.train, phase=args.phase, out=args.out,
                                    resume_settings=train_supernet_resume(params, args.phase),
                                    init=args.init, full=args.full,
                                    partial_root=args.partial_root))
    if summary is not None:  # the main process of a data-parallel run
        write_manifest(args.out.with_name(f"{args.out.stem}.manifest.json"), "train_supernet", params,
                       summary.device, extra={"phase": args.phase, "run_hash": summary.run_hash,
                                              "world_size": summary.world_size, "validation": summary.validation})


def main(argv: list[str] | None = None) -> int:
    return run_stage(_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
