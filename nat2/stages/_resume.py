"""The settings each resumable stage's resume key covers: exactly the keys the stage table lists for it.

A stage that checkpoints inside a run (a training phase, an adaptation, a fine-tuning) resumes a partial
checkpoint only when it was written for the same settings; the key is a hash of what these functions return plus
the run's own inputs (file digests, iteration, process count), computed in the library. Taking the stage's own
settings (:func:`nat2.stage_settings.stage_settings`) means an edit that reruns the stage in Snakemake/DVC also
starts its checkpoints afresh, and an edit that does not (threads, checkpoint cadence, another phase's schedule)
keeps them.
"""

from __future__ import annotations

from typing import Any

from nat2.config import Params
from nat2.stage_settings import stage_settings

__all__ = ["adapt_supernet_resume", "baseline_resume", "finetune_resume", "train_supernet_resume"]


def train_supernet_resume(params: Params, phase: str) -> dict[str, Any]:
    """The settings a training phase's in-phase checkpoints are keyed by (stored in the phase checkpoint too)."""
    if phase not in params.train.phases:
        return {}  # not a phase of this run: the library refuses it with its one-line error
    if phase == params.train.phases[0]:
        return stage_settings("train_full", params)
    return stage_settings("train_phase", params, phase=phase)


def adapt_supernet_resume(params: Params) -> dict[str, Any]:
    """The settings an adaptation's in-run checkpoints are keyed by."""
    return stage_settings("adapt_supernet", params)


def finetune_resume(params: Params) -> dict[str, Any]:
    """The settings a fine-tuning's per-epoch checkpoints are keyed by (with the slot's card)."""
    return stage_settings("finetune", params)


def baseline_resume(params: Params) -> dict[str, Any]:
    """The settings a baseline's per-epoch checkpoints are keyed by (with its name and resolution)."""
    return stage_settings("baseline", params)
