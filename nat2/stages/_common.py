"""Shared CLI plumbing of the stage modules (argument conventions, logging, the one-line error contract)."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from nat2.config import Params, load_params
from nat2.errors import EXIT_USER_ERROR, Nat2Error

__all__ = ["base_parser", "load", "run_stage", "write_stage_manifest"]


def base_parser(stage: str, description: str) -> argparse.ArgumentParser:
    """A parser with the arguments every stage takes (``--params``, ``--threads``, ``--log``)."""
    parser = argparse.ArgumentParser(prog=f"python -m nat2.stages.{stage}", description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads; must equal runtime.threads (both pipeline tools pass it)")
    parser.add_argument("--log", default=None, help="also append the log to this file")
    return parser


def load(args: argparse.Namespace) -> Params:
    """Load params and check that the command line agrees with them."""
    params = load_params(args.params)
    if args.threads is not None and args.threads != params.runtime.threads:
        raise Nat2Error(f"--threads {args.threads} differs from {args.params}: runtime.threads = "
                        f"{params.runtime.threads}; pass the same value (the pipeline renders it from params)")
    return params


def write_stage_manifest(stage: str, params: Params, output: str | os.PathLike[str], *, uses_device: bool,
                         inputs: Mapping[str, str | os.PathLike[str] | None],
                         extra: Mapping[str, object] | None = None) -> None:
    """The run manifest of a stage, beside (or inside) its main output (:func:`nat2.manifest.manifest_path`).

    ``uses_device``: the stage computes with torch on ``runtime.device`` (recorded as this process's device);
    otherwise it is a CPU-only step.
    """
    from nat2.manifest import manifest_path, write_manifest

    device = "cpu"
    if uses_device:
        from nat2.runtime import select_device

        device = str(select_device(params.runtime.device, os.environ))
    write_manifest(manifest_path(output), stage, params, device, extra=dict(extra or {}), inputs=inputs)


def _setup_logging(log_file: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        from pathlib import Path

        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        handlers=handlers, force=True)


def run_stage(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], None],
              argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run ``body``; a :class:`Nat2Error` becomes one line on stderr and exit status 2."""
    args = parser.parse_args(argv)
    _setup_logging(args.log)
    try:
        body(args)
    except Nat2Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        where = exc.filename or "the output device"
        print(f"error: no space left on {where}; free some space and rerun", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0
