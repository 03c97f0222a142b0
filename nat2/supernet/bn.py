"""BatchNorm recalibration of a subnet on the fixed calibration subset.

A subnet inherits running statistics that were accumulated over *other* subnets, so its top-1 collapses unless
its BN statistics are re-estimated on its own activations (OFA's ``set_running_statistics``). Here every BN is
switched to ``momentum=None`` (PyTorch's cumulative average), its statistics are reset, and the calibration
batches are run in train mode under ``no_grad``: the running mean becomes exactly the average of the batch means,
at the cost of one forward per calibration image (OFA's hook-based version costs ~1.5x that). Nothing else
(weights, dropout, mode) is changed, and everything is restored on an exception.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn

__all__ = ["recalibrate_bn", "recalibrated_bn"]


def _bn_modules(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _snapshot(model: nn.Module) -> tuple[dict, dict]:
    bns = _bn_modules(model)
    buffers = {id(m): {k: v.clone() for k, v in m._buffers.items() if v is not None} for m in bns}
    meta = {id(m): m.momentum for m in bns}
    return buffers, meta


def _restore(model: nn.Module, buffers: dict, meta: dict, modes: dict) -> None:
    for m in _bn_modules(model):
        for k, v in buffers[id(m)].items():
            m._buffers[k].copy_(v)
        m.momentum = meta[id(m)]
    for m in model.modules():
        m.training = modes[id(m)]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor], forward: str = "forward") -> nn.Module:
    """Re-estimate every BN's running statistics of ``model`` on ``batches``; return ``model`` in eval mode.

    Args:
        model: a static subnet (or a super-net with its active arch set: then every statistic is reset and only
            the active prefix re-estimated, so use :func:`recalibrated_bn`, which restores them afterwards).
        batches: calibration images (already at the subnet's resolution, normalised, in the model's format).
        forward: name of the method to call (``forward_all_exits`` calibrates every exit of a teacher).

    Raises:
        Whatever the forward raises; the model's BN statistics, momenta and train/eval modes are then restored.
    """
    buffers, meta = _snapshot(model)
    modes = {id(m): m.training for m in model.modules()}
    try:
        for m in _bn_modules(model):
            m.reset_running_stats()
            m.momentum = None
        model.train()
        seen = 0
        for x in batches:
            getattr(model, forward)(x)
            seen += 1
        if seen == 0:
            raise ValueError("BN recalibration got no calibration batch")
        for m in _bn_modules(model):
            m.momentum = meta[id(m)]
    except BaseException:
        _restore(model, buffers, meta, modes)
        raise
    return model.eval()


@contextlib.contextmanager
def recalibrated_bn(model: nn.Module, batches: Iterable[torch.Tensor],
                    forward: str = "forward") -> Iterator[nn.Module]:
    """Context manager: ``model`` recalibrated (eval mode) inside the block, its original BN state restored after.

    Use it to evaluate a subnet in place inside a super-net without losing the super-net's statistics.
    """
    buffers, meta = _snapshot(model)
    modes = {id(m): m.training for m in model.modules()}
    try:
        yield recalibrate_bn(model, batches, forward)
    finally:
        _restore(model, buffers, meta, modes)
