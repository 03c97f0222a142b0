"""What each progressive-shrinking phase means, and the rules a phase schedule must follow.

OFAv2's extended progressive shrinking (shared/design/method.md §2.1) trains the max network first, then opens one
elastic dimension at a time: kernel size, parallel levels (parallel variants), exits (early-exit variants), depth,
expand ratio. A dimension that has not been opened yet is held at its maximum. NAT2's transfer warm-up (§3.1) is the
chain ``full -> warmup``: fine-tune each width's max network from pre-trained weights, then train the whole
super-net (every dimension open) with KD from the widest max network (``train.teacher: widest``). This module is
pure Python so that ``params.yaml`` validation can check a schedule without importing torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PHASE_DIMENSION", "applies", "check_schedule"]

#: phase name -> the dimension it opens (None for the static max network)
PHASE_DIMENSION = {name: (None if name in ("full", "warmup") else name.split("_")[0]) for name in
                   ("full", "kernel", "level_1", "level_2", "exit_1", "exit_2", "exit_3", "exit_4", "depth_1",
                    "depth_2", "expand_1", "expand_2", "warmup")}
_MAX = {"kernel_sizes": 7, "expand_ratios": 6, "depths": 4, "exits": 5, "levels": 3}


def applies(phase: str, variant: str) -> bool:
    """Whether ``phase`` exists for super-net ``variant`` (levels need parallel, exits need early exits)."""
    dim = PHASE_DIMENSION[phase]
    if dim == "level":
        return variant.endswith("parallel")
    if dim == "exit":
        return variant.startswith("ee_")
    return True


def _relevant_fields(variant: str) -> list[str]:
    fields = ["kernel_sizes", "expand_ratios", "depths"]
    if variant.startswith("ee_"):
        fields.append("exits")
    if variant.endswith("parallel"):
        fields.append("levels")
    return fields


def check_schedule(train: Any, variant: str) -> tuple[str, Any, str] | None:
    """The first rule ``train`` (a TrainConfig) breaks for ``variant`` as ``(key path, value, allowed)``, or None."""
    lineage = dict(train.lineage)
    if "full" in lineage:
        return "train.lineage", lineage, "full is the first phase and continues from nothing; remove its entry"
    successors: dict[str, str] = {}
    for name, prev in lineage.items():
        if prev in successors:
            return ("train.lineage", lineage, f"{successors[prev]} and {name} both continue from {prev}; the "
                    "phases form one chain")
        successors[prev] = name
    phases = list(train.phases)
    if len(phases) != len(lineage) + 1:
        missing = sorted(set(lineage) - set(phases))
        return "train.lineage", lineage, f"{', '.join(missing)} not reachable from full; link every phase in one chain"
    if train.final != phases[-1]:
        return "train.final", train.final, f"must be the last phase of train.lineage ({phases[-1]})"
    for name in phases:
        if not applies(name, variant):
            need = "a parallel" if PHASE_DIMENSION[name] == "level" else "an early-exit (ee_)"
            return "train.lineage", lineage, f"{name} needs {need} variant; supernet.variant is {variant}"
    full = train.schedule.full
    for f in _relevant_fields(variant):
        if tuple(getattr(full, f)) != (_MAX[f],):
            return f"train.schedule.full.{f}", getattr(full, f), f"must be [{_MAX[f]}] (full trains the max network)"
    if full.subnets_per_step != 1:
        return "train.schedule.full.subnets_per_step", full.subnets_per_step, "must be 1 (a single static network)"
    prev_name = phases[0]
    for name in phases[1:]:
        prev, cur = getattr(train.schedule, prev_name), getattr(train.schedule, name)
        for f in _relevant_fields(variant):
            if not set(getattr(prev, f)) <= set(getattr(cur, f)):
                return (f"train.schedule.{name}.{f}", getattr(cur, f),
                        f"must keep every value the previous phase {prev_name} allows {list(getattr(prev, f))}")
        prev_name = name
    return None
