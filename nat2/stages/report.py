"""Stage ``report``: summary table, headline metrics, plot data (CSV) and figures of a finished run.

``python -m nat2.stages.report --params params.yaml --search results/search --supernet-dir results/supernet
--finetune results/final/finetune --baselines results/final/baseline --lut results/latency/lut.parquet
--out results/report``

Reads the archive of every iteration in ``search.iterations``, the training curves of every phase in
``train.lineage`` and every fine-tuned slot; writes ``<out>/{summary.md,metrics.json,hv.csv,surrogate.csv,
archive.csv,front.csv,slots.csv,baselines.csv,training.csv,finetune.csv,latency.csv}`` and ``<out>/figures/*.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nat2.report import write_report
from nat2.stages._common import base_parser, load, run_stage, write_stage_manifest

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("report", "Write the run's report (tables, metrics, plot data, figures).")
    parser.add_argument("--search", required=True, type=Path, help="folder of the iter_<k>/ outputs")
    parser.add_argument("--supernet-dir", required=True, type=Path, help="folder of the <phase>.live dvclive folders")
    parser.add_argument("--finetune", required=True, type=Path, help="folder of the fine-tuned slot_<k>/")
    parser.add_argument("--baselines", required=True, type=Path,
                        help="folder of the baseline/<model>/ outputs (baseline stage)")
    parser.add_argument("--lut", required=True, type=Path, help="latency look-up table (profile_latency)")
    parser.add_argument("--out", required=True, type=Path)
    return parser


def _body(args: argparse.Namespace) -> None:
    params = load(args)
    write_report(params, args.search, args.supernet_dir, args.finetune, args.lut, args.baselines, args.out)
    write_stage_manifest("report", params, args.out, uses_device=True,
                         inputs={"search": args.search, "supernet_dir": args.supernet_dir, "finetune": args.finetune,
                                 "baselines": args.baselines, "lut": args.lut})


def main(argv: list[str] | None = None) -> int:
    return run_stage(_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
