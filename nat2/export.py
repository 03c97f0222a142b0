"""Deployable exports of a fine-tuned subnet: an ONNX file and a ``torch.export`` program (``.pt2``).

Both are traced from the eager CPU module with a dynamic batch dimension at the subnet's own resolution, then
loaded back (onnxruntime for ONNX, ``torch.export.load`` for the program) and run on a fixed batch of random
images whose size differs from the tracing example, so a silently specialised batch size is caught. An export
whose outputs differ from the eager module's by more than ``TOLERANCE`` (absolute, plus the same relative to the
largest logit) is refused, never written.

ONNX goes through torch's current exporter (``torch.onnx.export(..., dynamo=True)``), which needs the ``onnx`` and
``onnxscript`` packages; onnxruntime checks it. ``make venv`` installs all three.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nat2.errors import Nat2Error

__all__ = ["FORMATS", "TOLERANCE", "export_module", "export_slot", "run_export"]

log = logging.getLogger(__name__)

FORMATS = {"onnx": "model.onnx", "pt2": "model.pt2"}
TOLERANCE = 1e-4
_INPUT, _OUTPUT = "images", "logits"
_MAX_BATCH = 4096


def _example(resolution: int, batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, resolution, resolution, generator=g)


def _dynamic_batch() -> dict[str, dict[int, Any]]:
    return {"x": {0: torch.export.Dim("batch", min=1, max=_MAX_BATCH)}}


@contextlib.contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """Raise the named loggers to WARNING for the block.

    The ONNX exporter's INFO lines (one per optimisation pass) drown a stage's log.
    """
    loggers = [logging.getLogger(name) for name in names]
    levels = [q.level for q in loggers]
    for q in loggers:
        q.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for q, level in zip(loggers, levels, strict=True):
            q.setLevel(level)


def export_module(model: nn.Module, resolution: int, path: Path, fmt: str) -> None:
    """Write ``model`` (eval mode, CPU) as ``fmt`` (``onnx`` or ``pt2``) to ``path``."""
    example = (_example(resolution, 2, 0),)
    if fmt == "pt2":
        program = torch.export.export(model, example, dynamic_shapes=_dynamic_batch())
        torch.export.save(program, path)
    elif fmt == "onnx":
        try:
            import onnx  # noqa: F401  (the exporter imports them lazily; fail here with the fix)
            import onnxscript  # noqa: F401
        except ImportError:
            raise Nat2Error("ONNX export needs the onnx and onnxscript packages; run `make venv` or "
                            "`pip install onnx onnxscript onnxruntime`") from None
        with quiet_loggers("onnx_ir", "onnxscript"):
            # weights inside the one file (no model.onnx.data beside it): the file can be moved and renamed
            torch.onnx.export(model, example, str(path), dynamo=True, dynamic_shapes=_dynamic_batch(),
                              input_names=[_INPUT], output_names=[_OUTPUT], verbose=False, external_data=False)
    else:
        raise Nat2Error(f"unknown export format {fmt!r}; use one of {sorted(FORMATS)}")


def run_export(path: Path, x: torch.Tensor) -> np.ndarray:
    """Outputs of an exported file on ``x`` (onnxruntime for ``.onnx``, the loaded program for ``.pt2``)."""
    if path.suffix == ".onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise Nat2Error("checking an ONNX export needs onnxruntime; run `make venv` or "
                            "`pip install onnxruntime`") from None
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        return torch.export.load(path).module()(x).numpy()


def _max_error(path: Path, model: nn.Module, resolution: int) -> float:
    x = _example(resolution, 5, 1)
    with torch.no_grad():
        eager = model(x).numpy()
    got = run_export(path, x)
    if got.shape != eager.shape:
        raise Nat2Error(f"{path.name}: output shape {got.shape} differs from the eager module's {eager.shape}")
    scale = max(1.0, float(np.abs(eager).max()))
    return float(np.abs(got - eager).max() / scale)


def export_slot(model: nn.Module, resolution: int, folder: Path, formats: tuple[str, ...]) -> dict[str, Any]:
    """Export ``model`` into ``folder`` in every format, check each against eager; returns what the card records.

    Raises:
        Nat2Error: an export's outputs differ from the eager module's by more than :data:`TOLERANCE`.
    """
    model = model.to(device="cpu", memory_format=torch.contiguous_format).eval()
    record: dict[str, Any] = {}
    for fmt in formats:
        path = folder / FORMATS[fmt]
        tmp = folder / f".{os.getpid()}-{path.name}"  # checked before it takes the real name (atomic, no loss)
        try:
            export_module(model, resolution, tmp, fmt)
            err = _max_error(tmp, model, resolution)
            if not err <= TOLERANCE:
                raise Nat2Error(f"the {fmt} export differs from the eager module by {err:.2e} (> {TOLERANCE}); "
                                "report this with the slot's card.json")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        record[fmt] = {"file": path.name, "max_error": err}
        log.info("exported %s (max error %.2e)", path.name, err)
    return record
