"""Stage ``finetune``: NAT2's two-step fine-tuning of one extracted subnet, with test top-1 before and after.

``python -m nat2.stages.finetune --params params.yaml --slot results/final/extract/slot_0
--supernet results/search/iter_3/supernet.pt --split data/split.parquet --out results/final/finetune/slot_0``

Writes ``<out>/{weights.pt,arch.json,card.json,live/step{1,2},model.onnx,model.pt2}``; ``nat2.load_subnet(<out>)``
loads the result.
Rerunning a killed fine-tuning resumes after its last finished epoch.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nat2.context import RunContext
from nat2.finetune import finetune_slot
from nat2.manifest import write_manifest
from nat2.space import SearchSpace
from nat2.stages._common import base_parser, load, run_stage
from nat2.stages._resume import finetune_resume

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("finetune", "Fine-tune one extracted subnet (two steps).")
    parser.add_argument("--slot", required=True, type=Path, help="a slot folder written by the extract stage")
    parser.add_argument("--supernet", required=True, type=Path, help="the final super-net (re-extraction)")
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--lut", type=Path, default=None,
                        help="latency look-up table (profile_latency; needed for the latency objective)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--partial-root", type=Path, default=Path("results/.partial/finetune"))
    return parser


def _body(args: argparse.Namespace) -> None:
    params = load(args)

    def manifest(path: Path, device: str, extra: dict[str, Any]) -> None:
        write_manifest(path, "finetune", params, device, extra=extra)

    finetune_slot(params.postprocess.finetune, SearchSpace.from_config(params.supernet),
                  RunContext.from_params(params, args.split, args.lut), args.slot, args.supernet, args.out,
                  resume_settings=finetune_resume(params), manifest=manifest, partial_root=args.partial_root)


def main(argv: list[str] | None = None) -> int:
    return run_stage(_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
