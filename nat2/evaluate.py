"""High-fidelity evaluation of subnets: BN recalibration on the fixed calibration subset, then top-1.

A subnet inherits BatchNorm statistics accumulated over other subnets, so each is extracted (a static copy: the
super-net is never modified), recalibrated on the calibration images at the subnet's own resolution, and measured
on the validation split (method.md §3.3). Images are materialised once per resolution by
:class:`nat2.data.EvalSet`, so evaluating many archs costs only their forwards.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from nat2.space import Arch
from nat2.supernet import recalibrate_bn

__all__ = ["accuracy", "evaluate_arch"]


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
    sub = net.extract(arch).to(memory_format=memory_format)
    recalibrate_bn(sub, (x for x, _ in calib.batches(arch.resolution, calib_batch_size)))
    return accuracy(sub, val.batches(arch.resolution, eval_batch_size))
