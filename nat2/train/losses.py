"""Training losses: label-smoothed cross-entropy, distillation against soft targets, AEP and ENS-KD.

Early-exit super-nets distil from an *ensemble* teacher (ENS-KD, method.md §2.3): the teacher's target is
``softmax(sum_i w_i * logits_i)`` over its exits, while the student is always the single-exit sampled subnet.
The max early-exit network itself is trained with AEP's joint loss ``sum_i w_i * CE_i`` over all exits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["aep_loss", "aep_weights", "ensemble_logits", "soft_cross_entropy", "subnet_loss"]


def aep_weights(n: int, ordering: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """AEP's (loss, output) weights of ``n`` exits, shallowest first, rounded to 4 decimals (method.md §2.6).

    With ``m = n(n+1)/2``: ``asc`` gives exit i the weight i/m for both (deeper exits weigh more), ``desc`` the
    reverse, ``mix`` descending loss weights with ascending output weights, ``unif`` 1/n everywhere.
    """
    if n < 1:
        raise ValueError(f"aep_weights: need at least one exit, got {n}")
    m = n * (n + 1) / 2
    asc = tuple(round(i / m, 4) for i in range(1, n + 1))
    desc = asc[::-1]
    unif = tuple(round(1 / n, 4) for _ in range(n))
    table = {"asc": (asc, asc), "desc": (desc, desc), "mix": (desc, asc), "unif": (unif, unif)}
    if ordering not in table:
        raise ValueError(f"aep_weights: ordering must be one of {sorted(table)}, got {ordering!r}")
    return table[ordering]


def ensemble_logits(exit_logits: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """Weighted sum of the exits' logits (weights of the first ``len(exit_logits)`` exits)."""
    if len(exit_logits) > len(weights):
        raise ValueError(f"{len(exit_logits)} exits but {len(weights)} weights")
    out = exit_logits[0] * weights[0]
    for logits, w in zip(exit_logits[1:], weights[1:], strict=False):
        out = out + logits * w
    return out


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a probability target (OFA's ``kd_type="ce"``), averaged over the batch."""
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def subnet_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float,
                soft_targets: torch.Tensor | None, kd_ratio: float) -> torch.Tensor:
    """Label-smoothed CE, plus ``kd_ratio`` times the distillation term when a teacher gives soft targets."""
    loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    if soft_targets is not None and kd_ratio > 0:
        loss = loss + kd_ratio * soft_cross_entropy(logits, soft_targets)
    return loss


def aep_loss(exit_logits: Sequence[torch.Tensor], labels: torch.Tensor, weights: Sequence[float],
             label_smoothing: float) -> torch.Tensor:
    """AEP joint training loss of a multi-exit network: ``sum_i w_i * CE(exit_i)``."""
    if not exit_logits or len(exit_logits) != len(weights):
        raise ValueError(f"aep_loss: {len(exit_logits)} exits need as many weights, got {len(weights)}")
    total = None
    for logits, w in zip(exit_logits, weights, strict=True):
        term = w * F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
        total = term if total is None else total + term
    return total
