"""Stage ``finetune``: NAT2's two-step fine-tuning of one extracted subnet, with test top-1 before and after.

``python -m nat2.stages.finetune --params params.yaml --slot results/final/extract/slot_0
--supernet results/search/iter_3/supernet.pt --split data/split.parquet --out results/final/finetune/slot_0``

Writes ``<out>/{weights.pt,arch.json,card.json,metrics.csv,model.onnx,model.pt2}``; ``nat2.load_subnet(<out>)``
loads the result.
Rerunning a killed fine-tuning resumes after its last finished epoch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nat2.finetune import finetune_slot
from nat2.stages._common import base_parser, load, run_stage

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("finetune", "Fine-tune one extracted subnet (two steps).")
    parser.add_argument("--slot", required=True, type=Path, help="a slot folder written by the extract stage")
    parser.add_argument("--supernet", required=True, type=Path, help="the final super-net (re-extraction)")
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--partial-root", type=Path, default=Path("results/.partial/finetune"))
    return parser


def _body(args: argparse.Namespace) -> None:
    finetune_slot(load(args), args.slot, args.supernet, args.split, args.out, args.partial_root)


def main(argv: list[str] | None = None) -> int:
    return run_stage(_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
