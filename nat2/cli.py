"""The ``nat2`` command: helpers around the pipeline (the stages themselves run as ``python -m nat2.stages.X``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nat2 import __version__
from nat2.config import iter_keys, load_params, params_hash
from nat2.errors import EXIT_USER_ERROR, Nat2Error

__all__ = ["main"]


def _validate(args: argparse.Namespace) -> int:
    params = load_params(args.file)
    print(f"{args.file}: valid ({sum(1 for _ in iter_keys())} keys, params hash {params_hash(params)})")
    return 0


def _info(args: argparse.Namespace) -> int:
    import platform

    params = load_params(args.params)
    lines = [
        f"nat2 {__version__} (python {platform.python_version()})",
        f"params: {args.params} (hash {params_hash(params)})",
        f"dataset: {params.data.dataset}  variant: {params.supernet.variant}  "
        f"widths: {list(params.supernet.width_mults)}  resolutions: {list(params.supernet.resolutions)}",
        f"objectives: {', '.join(params.search.objectives)}  seed: {params.seed}",
    ]
    try:
        import torch

        cuda = f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cuda: not available"
        lines.append(f"torch {torch.__version__}  {cuda}  threads: {params.runtime.threads}")
    except ImportError:  # pragma: no cover - torch is a hard dependency
        lines.append("torch: not installed")
    print("\n".join(lines))
    return 0


def _keys(args: argparse.Namespace) -> int:
    for path, _tp, spec in iter_keys():
        print(f"{path:32s} {spec.doc}")
    return 0


def _dvc_yaml(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nat2.io import write_text
    from nat2.workflow import dvc_yaml

    path, text = Path(args.file), dvc_yaml()
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    if args.write:
        if current != text:
            write_text(path, text)
        print(f"{path}: {'written' if current != text else 'up to date'} (from nat2/workflow.py)")
        return 0
    if current != text:
        print(f"{path}: out of date with nat2/workflow.py and the stages' imports; run `nat2 dvc-yaml --write`",
              file=sys.stderr)
        return 1
    print(f"{path}: up to date with nat2/workflow.py")
    return 0


def _show(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nat2.report import summary_table
    from nat2.slot_folder import read_card

    root = Path(args.results)
    folder = root / "final" / "finetune"
    slots = sorted(folder.glob("slot_*"), key=lambda p: int(p.name.split("_")[1]) if p.name[5:].isdigit() else -1)
    if not slots:
        raise Nat2Error(f"no fine-tuned slots under {folder}; run the pipeline (make run) or pass the results folder")
    print(summary_table([read_card(s) for s in slots]), end="")
    metrics = root / "report" / "metrics.json"
    if metrics.is_file():
        import json

        m = json.loads(metrics.read_text())
        print(f"\nHV {m['initial_hv']:.5f} -> {m['final_hv']:.5f} over {m['iterations']} iterations; "
              f"best test top-1 {m['best_test_top1']:.2f} % (slot {m['best_slot']})")
        for name, b in m.get("baselines", {}).items():
            print(f"baseline {name}: {b['params'] / 1e6:.3f} M params, {b['macs'] / 1e6:.2f} M MACs, test top-1 "
                  f"{b['test_top1']:.2f} %; slots beating it (higher test top-1, fewer MACs): {b['slots_beating']}")
    if (root / "benchmarks").is_dir():
        from nat2.pipeline import stage_times

        times = stage_times(root / "benchmarks")
        parts = ", ".join(f"{group} {seconds / 60:.1f}" for group, seconds in times.items())
        print(f"wall time (min): {parts}; total {sum(times.values()) / 60:.1f}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nat2.export import FORMATS, export_slot
    from nat2.slot_folder import load_subnet, read_card

    folder = Path(args.results) / "final" / "finetune" / f"slot_{args.slot}"
    if not folder.is_dir():
        have = sorted(p.name for p in folder.parent.glob("slot_*"))
        raise Nat2Error(f"no fine-tuned slot {args.slot} under {folder.parent} (found: {', '.join(have) or 'none'});"
                        " pick one of postprocess.slots or run the pipeline")
    card = read_card(folder)
    out = Path(args.out) if args.out else Path(args.results) / "exports" / f"slot_{args.slot}"
    out.mkdir(parents=True, exist_ok=True)
    record = export_slot(load_subnet(folder), int(card["resolution"]), out, (args.format,))
    print(f"{out / FORMATS[args.format]}: matches the eager module (max error {record[args.format]['max_error']:.1e})")
    return 0


def _use(args: argparse.Namespace) -> int:
    import subprocess
    from pathlib import Path

    from nat2.presets import holds_preset, use_preset

    target = Path(args.params)
    if holds_preset(target, args.preset):
        print(f"{target} already holds {args.preset}")
        return 0
    tracked = subprocess.run(["git", "diff", "--quiet", "--", str(target)], capture_output=True)
    if tracked.returncode == 1:
        print(f"error: {target} has uncommitted edits; commit or revert them (git checkout {target}) before "
              f"switching to {args.preset}", file=sys.stderr)
        return 2
    use_preset(args.preset, target)
    print(f"{target} <- {args.preset}")
    return 0


def _smoke(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nat2.pipeline import smoke, smoke_line

    print(f"smoke: running the whole chain on {args.preset} in a temporary copy (a few minutes)...", file=sys.stderr)
    result = smoke(Path(args.keep) if args.keep else None, args.preset, args.cores)
    print(smoke_line(result))
    return 0


def _fetch_data(args: argparse.Namespace) -> int:
    import logging

    from nat2.data.fetch import fetch_dataset

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = load_params(args.params)
    result = fetch_dataset(params.data)
    verb = {"found": "found in", "apt": "installed (Debian package) in", "download": "downloaded into"}[result.how]
    print(f"{params.data.dataset}: {verb} {result.location}")
    return 0


def _plots_html(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nat2.plots import plots_html

    print(f"dvc plots page: {plots_html(Path(args.out), args.revisions)}")
    return 0


def _check_html(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nat2.browser import REPORT_GALLERY_JS, check_page

    failed = False
    for page in map(Path, args.pages):
        if not page.is_file():
            raise Nat2Error(f"{page}: no such page; write it first (make report)")
        shot = Path(args.screenshots) / f"{page.parent.name if page.name == 'index.html' else page.stem}.png"
        check = check_page(page, shot, script=REPORT_GALLERY_JS)
        blank = check.blank_plots
        ok = not check.errors and not blank and bool(check.plots)
        failed |= not ok
        print(f"{page}: {'ok' if ok else 'FAILED'}: {len(check.plots)} plots, {len(blank)} blank, "
              f"{len(check.errors)} errors; screenshot {shot}")
        for line in check.errors[:10]:
            print(f"  {line}")
    return 1 if failed else 0


def _rerun(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nat2.pipeline import rerun_iteration

    rerun_iteration(Path.cwd(), str(args.iteration), args.cores)
    print(f"iteration {args.iteration} and everything downstream rerun")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nat2`` command."""
    parser = argparse.ArgumentParser(prog="nat2", description="NAT2 neural architecture search pipeline helpers.")
    parser.add_argument("--version", action="version", version=f"nat2 {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="validate a params file (exit 2 with one line on the first problem)")
    p.add_argument("file", nargs="?", default="params.yaml")
    p.set_defaults(func=_validate)
    p = sub.add_parser("info", help="print the run's main settings and the software/hardware found")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=_info)
    p = sub.add_parser("keys", help="list every params.yaml key with its meaning")
    p.set_defaults(func=_keys)
    p = sub.add_parser("dvc-yaml", help="check (or --write) that dvc.yaml is generated from the stage table")
    p.add_argument("file", nargs="?", default="dvc.yaml")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help="write it (after a stage or an import changed)")
    g.add_argument("--check", action="store_true", help="exit 1 when it is out of date (the default)")
    p.set_defaults(func=_dvc_yaml)
    p = sub.add_parser("use", help="write params.yaml = a preset merged onto the file it extends (make use)")
    p.add_argument("preset", help="a preset, e.g. params/ci.yaml")
    p.add_argument("--params", default="params.yaml", help="the file to write (default: params.yaml)")
    p.set_defaults(func=_use)
    p = sub.add_parser("show", help="print the fine-tuned subnets' table (and the report's headline figures)")
    p.add_argument("results", nargs="?", default="results")
    p.set_defaults(func=_show)
    p = sub.add_parser("export", help="export a fine-tuned slot to ONNX or a torch.export program, checked")
    p.add_argument("--slot", required=True, type=int)
    p.add_argument("--format", required=True, choices=("onnx", "pt2"))
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--out", default=None, help="output folder (default: <results>/exports/slot_<k>; the pipeline's "
                   "own exports are in final/finetune/slot_<k>)")
    p.set_defaults(func=_export)
    p = sub.add_parser("smoke", help="run the whole tiny chain in a temporary copy of the repository (make smoke)")
    p.add_argument("--preset", default="params/ci.yaml")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--keep", default=None, help="run in this folder and keep it (default: a temporary one)")
    p.set_defaults(func=_smoke)
    p = sub.add_parser("fetch-data", help="make the params' dataset available: found, else Debian's package "
                       "(apt, root), else torchvision's download (make run/test call it)")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=_fetch_data)
    p = sub.add_parser("plots-html", help="write `dvc plots show` (or `diff REV...`) as a page that draws offline")
    p.add_argument("revisions", nargs="*", help="revisions or experiments to compare (none: the workspace)")
    p.add_argument("--out", default="results/report/dvc_plots", help="folder of index.html")
    p.set_defaults(func=_plots_html)
    p = sub.add_parser("check-html", help="load HTML pages in headless Chromium: screenshot, script errors, blank "
                       "plots (exit 1 on any)")
    p.add_argument("pages", nargs="+")
    p.add_argument("--screenshots", default="results/report/screenshots", help="folder of the PNG screenshots")
    p.set_defaults(func=_check_html)
    p = sub.add_parser("rerun", help="rerun one search iteration and everything downstream (make rerun ITER=k)")
    p.add_argument("iteration")
    p.add_argument("--cores", type=int, default=2)
    p.set_defaults(func=_rerun)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nat2`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Nat2Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
