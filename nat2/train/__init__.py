"""Super-net training: OFAv2 extended progressive shrinking with knowledge distillation, resumable, data-parallel."""

from __future__ import annotations

from nat2.train.distributed import DistInfo, init_distributed
from nat2.train.phase_run import PhaseInputs, PhaseSummary, run_phase
from nat2.train.progressive import PhaseResult, StepSettings, TrainState, train_phase, validate_corners

__all__ = [
    "DistInfo",
    "PhaseInputs",
    "PhaseResult",
    "PhaseSummary",
    "StepSettings",
    "TrainState",
    "init_distributed",
    "run_phase",
    "train_phase",
    "validate_corners",
]
