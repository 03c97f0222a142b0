"""Stage ``assemble_supernet``: turn the last training phase into the run's super-net file.

``python -m nat2.stages.assemble_supernet --params params.yaml --phase-ckpt results/supernet/expand_2.pt
--out results/supernet/supernet.pt``

The output bundles the super-nets of every width (weights only) with their content hash; search, evaluation and
post-processing read only this file, never the training checkpoints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nat2.stages._common import base_parser, load, run_stage
from nat2.train.assemble import assemble_supernet

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("assemble_supernet", "Bundle the final phase's super-nets into the run's super-net file.")
    parser.add_argument("--phase-ckpt", required=True, type=Path, help="checkpoint of the last phase (train.final)")
    parser.add_argument("--out", required=True, type=Path, help="super-net file to write (.pt)")
    return parser


def _body(args: argparse.Namespace) -> None:
    assemble_supernet(load(args), args.phase_ckpt, args.out)


def main(argv: list[str] | None = None) -> int:
    return run_stage(_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
