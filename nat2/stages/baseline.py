"""Stage ``baseline``: train one baseline network with the slots' two-step fine-tuning recipe.

``python -m nat2.stages.baseline --params params.yaml --model cnn --split data/split.parquet
--out results/final/baseline/cnn``

Writes ``<out>/{weights.pt,card.json,live/step{1,2},manifest.json}``; the report puts the card beside the slots.
Rerunning a killed baseline resumes after its last finished epoch.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nat2.baseline import resolution_of, train_baseline
from nat2.context import RunContext
from nat2.errors import Nat2Error
from nat2.manifest import write_manifest
from nat2.stages._common import base_parser, load, run_stage
from nat2.stages._resume import baseline_resume

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("baseline", "Train one baseline network with the slots' fine-tuning recipe.")
    parser.add_argument("--model", required=True, help="one of baseline.models")
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--partial-root", type=Path, default=Path("results/.partial/baseline"))
    return parser


def _body(args: argparse.Namespace) -> None:
    params = load(args)
    if args.model not in params.baseline.models:
        raise Nat2Error(f"--model {args.model} is not in baseline.models {list(params.baseline.models)}; add it "
                        "to params.yaml or pass one of them")

    def manifest(path: Path, device: str, extra: dict[str, Any]) -> None:
        write_manifest(path, "baseline", params, device, extra=extra)

    train_baseline(args.model, params.postprocess.finetune,
                   resolution_of(params.baseline, params.supernet.resolutions),
                   RunContext.from_params(params, args.split), args.out,
                   resume_settings=baseline_resume(params), manifest=manifest, partial_root=args.partial_root)


def main(argv: list[str] | None = None) -> int:
    return run_stage(_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
