"""Optimiser and learning-rate schedule of super-net training.

SGD with Nesterov momentum, weight decay on every parameter except BatchNorm affines and biases (OFA's
``no_decay_keys="bn#bias"``). The learning rate is a pure function of the global step — a linear warm-up over
``warmup_epochs``, then a cosine to zero over exactly ``epochs`` — so a resumed run needs only the step count to
continue the schedule, and no scheduler object has hidden state.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["build_sgd", "lr_at", "set_lr"]


def build_sgd(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """Nesterov SGD with two parameter groups: decayed weights, and undecayed BN parameters and biases."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if "bn." in name or name.endswith("bias") else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)


def lr_at(step: int, steps_per_epoch: int, epochs: int, warmup_epochs: int, base_lr: float) -> float:
    """Learning rate of global ``step`` (0-based): linear warm-up, then cosine annealing to 0."""
    warmup = warmup_epochs * steps_per_epoch
    if step < warmup:
        return base_lr * (step + 1) / warmup
    total = max(epochs * steps_per_epoch, 1)
    t = min(step - warmup, total)
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * t / total))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
