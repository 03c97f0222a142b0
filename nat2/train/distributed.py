"""Data-parallel training across processes launched by ``torchrun`` (gloo on CPU, NCCL on CUDA).

Gradients are averaged with one all-reduce per optimiser step, after all subnets of the step have accumulated
theirs. This is what ``DistributedDataParallel`` computes, but without its per-backward hooks, which assume one
fixed graph: a super-net step runs several different subnets, each touching a different parameter subset. Every
rank samples the same subnets (same seeds), so the set of parameters with gradients agrees across ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistInfo", "allreduce_grads", "broadcast_model", "init_distributed"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the data-parallel group."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes outputs."""
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1); otherwise a single process.

    ``device`` must be this rank's own device (``cuda:LOCAL_RANK``, see :func:`nat2.runtime.select_device`).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        if device.type == "cuda":  # NCCL, bound to this rank's GPU (runtime.select_device picked it)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size())


@torch.no_grad()
def allreduce_grads(model: nn.Module, info: DistInfo) -> None:
    """Average the accumulated gradients over all ranks (in parameter order, so every rank matches)."""
    if info.world_size <= 1:
        return
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


@torch.no_grad()
def broadcast_model(model: nn.Module, info: DistInfo) -> None:
    """Make every rank start from rank 0's parameters and buffers."""
    if info.world_size <= 1:
        return
    for t in [*model.parameters(), *model.buffers()]:
        dist.broadcast(t, 0)
