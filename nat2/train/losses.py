"""Training losses: label-smoothed cross-entropy, distillation against soft targets, AEP and ENS-KD.

Early-exit super-nets distil from an *ensemble* teacher (ENS-KD, method.md §2.3): the teacher's target is
``softmax(sum_i w_i * logits_i)`` over its exits, while the student is always the single-exit sampled subnet.
The max early-exit network itself is trained with AEP's joint loss ``sum_i w_i * CE_i`` over all exits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["aep_loss", "ensemble_logits", "soft_cross_entropy", "subnet_loss"]


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
    total = None
    for logits, w in zip(exit_logits, weights, strict=False):
        term = w * F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
        total = term if total is None else total + term
    return total
