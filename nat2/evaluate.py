"""High-fidelity evaluation of subnets: BN recalibration on the fixed calibration subset, then top-1.

A subnet inherits BatchNorm statistics accumulated over other subnets, so each is extracted (a static copy: the
super-net is never modified), recalibrated on the calibration images at the subnet's own resolution, and measured
on the validation split (method.md §3.3). Images are materialised once per resolution by
:class:`nat2.data.EvalSet`, so evaluating many archs costs only their forwards.
"""

from __future__ import annotations

import json
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

__all__ = ["EvalCache", "Evaluator", "accuracy", "calibrated_subnet", "evaluate_arch"]


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


class EvalCache:
    """Evaluations already done on one super-net, appended to a JSON-lines file as they finish.

    Keyed by (arch id, checkpoint content hash): a rerun of a killed evaluation stage, or another stage that meets
    the same architecture on the same weights, skips what is known. Lives outside pipeline outputs
    (``results/.cache/evaluations/<hash>.jsonl``), so neither Snakemake nor DVC removes it.
    """

    def __init__(self, folder: Path | None, checkpoint_hash: str) -> None:
        self.checkpoint_hash = checkpoint_hash
        self.path = folder / f"{checkpoint_hash}.jsonl" if folder is not None else None
        self._known: dict[str, float] = {}
        if self.path is not None and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill: that evaluation is simply redone
                self._known[rec["id"]] = float(rec["top1"])

    def get(self, arch_id: str) -> float | None:
        """The cached top-1 of ``arch_id``, or None."""
        return self._known.get(arch_id)

    def put(self, arch_id: str, top1: float) -> None:
        """Remember (and append to the file) one evaluation."""
        self._known[arch_id] = top1
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"id": arch_id, "top1": top1}) + "\n")


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
                "params": int(costs["params"][i]), "macs": int(costs["macs"][i]), "latency": None,
                "predicted_error": None if predicted is None else float(predicted[i]), "iteration": iteration,
                "origin": origin, "checkpoint_hash": self.checkpoint_hash, "seed": seed,
            })
        return records
