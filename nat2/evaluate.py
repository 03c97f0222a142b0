"""High-fidelity evaluation of subnets: BN recalibration on the fixed calibration subset, then top-1.

A subnet inherits BatchNorm statistics accumulated over other subnets, so each is extracted (a static copy: the
super-net is never modified), recalibrated on the calibration images at the subnet's own resolution, and measured
on the validation split (method.md §3.3). Images are materialised once per resolution by
:class:`nat2.data.EvalSet`, so evaluating many archs costs only their forwards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from nat2.costs import CostModel
from nat2.space import Arch, SearchSpace
from nat2.supernet import recalibrate_bn

__all__ = ["EVAL_CODE_MODULES", "EvalCache", "Evaluator", "accuracy", "calibrated_subnet", "eval_code_version",
           "eval_context_key", "evaluate_arch"]

log = logging.getLogger(__name__)


@torch.no_grad()
def accuracy(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Top-1 accuracy in percent of ``model`` (eval mode) over ``(x, y)`` batches."""
    model.eval()
    correct = total = 0
    for x, y in batches:
        correct += int((model(x).argmax(dim=1) == y).sum())
        total += len(y)
    if total == 0:
        raise ValueError("accuracy over zero images")
    return 100.0 * correct / total


def evaluate_arch(net: nn.Module, arch: Arch, calib: object, val: object, *, calib_batch_size: int,
                  eval_batch_size: int, memory_format: torch.memory_format = torch.channels_last) -> float:
    """Validation top-1 (%) of ``arch`` extracted from ``net`` (a SuperNet or SuperNetSet), BN recalibrated.

    ``calib`` and ``val`` are :class:`nat2.data.EvalSet` objects (calibration subset and validation split).
    """
    sub = calibrated_subnet(net, arch, calib, calib_batch_size=calib_batch_size, memory_format=memory_format)
    return accuracy(sub, val.batches(arch.resolution, eval_batch_size))


def calibrated_subnet(net: nn.Module, arch: Arch, calib: object, *, calib_batch_size: int,
                      memory_format: torch.memory_format = torch.channels_last,
                      output_weights: Sequence[float] | None = None) -> nn.Module:
    """``arch`` extracted from ``net`` (multi-exit with ``output_weights``), BN recalibrated at its resolution.

    Every evaluation, extraction and fine-tuning starts from this module (``calib``: the calibration EvalSet).
    """
    sub = net.extract(arch, output_weights).to(memory_format=memory_format)
    recalibrate_bn(sub, (x for x, _ in calib.batches(arch.resolution, calib_batch_size)))
    return sub


#: the modules whose code decides an evaluation's number (extraction, BN recalibration, transforms, decoding)
EVAL_CODE_MODULES = ("nat2.evaluate", "nat2.supernet", "nat2.data.loaders", "nat2.data.transforms", "nat2.space")


def eval_code_version() -> str:
    """Hash of the source of every module in :data:`EVAL_CODE_MODULES` (and the torch version).

    Part of the evaluation cache's key, so an edit to extraction, recalibration or the transforms can never bring
    back accuracies computed by the old code (a hand-bumped version number would be forgotten).
    """
    import importlib

    h = hashlib.sha256(f"torch={torch.__version__}".encode())
    for name in EVAL_CODE_MODULES:
        mod = importlib.import_module(name)
        files = [Path(mod.__file__)]
        if Path(mod.__file__).name == "__init__.py":  # a package: every module in it
            files = sorted(Path(mod.__file__).parent.glob("*.py"))
        for f in files:
            h.update(f"{name}/{f.name}".encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def eval_context_key(checkpoint_hash: str, calib: object, val: object, *, calib_batch_size: int,
                     eval_batch_size: int, memory_format: torch.memory_format, device: torch.device | str) -> str:
    """Key of everything that determines an evaluation's top-1 besides the architecture.

    The weights (the super-net's content hash), the exact calibration and validation images and labels (their
    content, so a new split, calibration subset, augmentation draw or dataset changes it), the batch sizes (BN
    recalibration averages per batch), memory format, device, thread count, and the evaluation code itself.
    """
    h = hashlib.sha256()
    for part in (checkpoint_hash, calib.fingerprint(), val.fingerprint(), str(calib_batch_size), str(eval_batch_size),
                 str(memory_format), torch.device(device).type, str(torch.get_num_threads()), eval_code_version()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


class EvalCache:
    """Evaluations already done in one evaluation context, appended to a JSON-lines file as they finish.

    Keyed by (arch id, :func:`eval_context_key`): a rerun of a killed evaluation stage, or another stage that meets
    the same architecture in the same context, skips what is known. Each line carries a checksum of (context,
    id, top-1), so a line that was cut by a kill, edited, or copied from another context is skipped with a
    warning and recomputed, never trusted; an unreadable file (binary, a directory in its place) disables the
    cache for this run with a warning. Lives outside pipeline outputs (``results/.cache/evaluations/<key>.jsonl``),
    so neither Snakemake nor DVC removes it.
    """

    def __init__(self, folder: Path | None, context_key: str) -> None:
        self.context_key = context_key
        self.path = folder / f"{context_key}.jsonl" if folder is not None else None
        self._known: dict[str, float] = {}
        self._cut = False  # the file ends inside a line (a kill mid-write): start the next append on a new line
        if self.path is None or not (self.path.exists() or self.path.is_symlink()):
            return
        try:
            text = self.path.read_bytes().decode("utf-8", errors="replace")
        except OSError as exc:
            log.warning("evaluation cache %s is unreadable (%s); evaluating without it", self.path, exc)
            self.path = None
            return
        self._cut = bool(text) and not text.endswith("\n")
        bad = 0
        for line in text.splitlines():
            rec = self._parse(line)
            if rec is None:
                bad += 1
            else:
                self._known[rec[0]] = rec[1]
        if bad:
            log.warning("evaluation cache %s: skipped %d damaged or foreign line(s); those archs are re-evaluated",
                        self.path, bad)

    def _checksum(self, arch_id: str, top1: float) -> str:
        return hashlib.sha256(f"{self.context_key}|{arch_id}|{top1!r}".encode()).hexdigest()[:16]

    def _parse(self, line: str) -> tuple[str, float] | None:
        try:
            rec = json.loads(line)
            arch_id, top1, check = rec["id"], rec["top1"], rec["check"]
        except (json.JSONDecodeError, TypeError, KeyError):
            return None
        if not isinstance(arch_id, str) or isinstance(top1, bool) or not isinstance(top1, (int, float)):
            return None
        top1 = float(top1)
        if not math.isfinite(top1) or not 0.0 <= top1 <= 100.0 or check != self._checksum(arch_id, top1):
            return None
        return arch_id, top1

    def get(self, arch_id: str) -> float | None:
        """The cached top-1 of ``arch_id``, or None."""
        return self._known.get(arch_id)

    def put(self, arch_id: str, top1: float) -> None:
        """Remember (and append to the file) one evaluation."""
        self._known[arch_id] = top1
        if self.path is None:
            return
        line = json.dumps({"id": arch_id, "top1": top1, "check": self._checksum(arch_id, top1)}) + "\n"
        if self._cut:
            line, self._cut = "\n" + line, False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
        except OSError as exc:  # the cache only saves time: never let it fail an evaluation
            log.warning("evaluation cache %s is not writable (%s); continuing without it", self.path, exc)
            self.path = None


@dataclass
class Evaluator:
    """Everything needed to evaluate many archs of one run on one super-net file (data materialised once)."""

    space: SearchSpace
    nets: nn.Module
    checkpoint_hash: str
    calib: object
    val: object
    cost_model: CostModel
    calib_batch_size: int
    eval_batch_size: int
    memory_format: torch.memory_format
    cache: EvalCache

    def evaluate(self, genomes: np.ndarray, *, iteration: int, origin: str, seed: int,
                 predicted: np.ndarray | None = None, progress: bool | None = None) -> list[dict]:
        """Archive records (see :mod:`nat2.archive`) of ``genomes``: top-1 after BN recalibration, exact costs."""
        costs = self.cost_model(genomes)
        records = []
        bar = tqdm(genomes, desc=f"evaluate ({origin})", leave=False,
                   disable=None if progress is None else not progress)  # None: a bar on terminals only
        for i, genome in enumerate(bar):
            arch = self.space.decode(genome)
            arch_id = self.space.arch_id(genome)
            top1 = self.cache.get(arch_id)
            if top1 is None:
                top1 = evaluate_arch(self.nets, arch, self.calib, self.val, calib_batch_size=self.calib_batch_size,
                                     eval_batch_size=self.eval_batch_size, memory_format=self.memory_format)
                self.cache.put(arch_id, top1)
            records.append({
                "id": arch_id, "genome": [int(g) for g in genome], "resolution": arch.resolution,
                "width": arch.width_mult, "exit": arch.exit, "top1": top1, "error": 1.0 - top1 / 100.0,
                "params": int(costs["params"][i]), "macs": int(costs["macs"][i]),
                "latency": float(costs["latency"][i]) if "latency" in costs else None,
                "predicted_error": None if predicted is None else float(predicted[i]), "iteration": iteration,
                "origin": origin, "checkpoint_hash": self.checkpoint_hash, "seed": seed,
            })
        return records
