"""Seed derivation: every random choice in nat2 flows from ``params.yaml``'s ``seed``.

A stage never shares a random stream with another stage or iteration: its generators come from
``SeedSequence([seed, stage_id, iteration, *extra])``, so rerunning one stage (or one search iteration) alone
reproduces the same bytes, and no code touches the global ``random`` / ``numpy.random`` / ``torch`` state.
"""

from __future__ import annotations

import numpy as np

__all__ = ["STAGE_IDS", "numpy_rng", "seed_sequence", "torch_generator"]

# Stable numeric ids (never renumber: changing one changes every derived stream of that stage).
STAGE_IDS: dict[str, int] = {
    "prepare_data": 1,
    "calibration": 2,
    "train_supernet": 3,
    "warmup": 4,
    "init_archive": 5,
    "fit_surrogate": 6,
    "search": 7,
    "update_archive": 8,
    "adapt_supernet": 9,
    "extract": 10,
    "finetune": 11,
    "report": 12,
    "baseline": 13,
    "test": 99,
}


def seed_sequence(seed: int, stage: str, iteration: int = 0, *extra: int) -> np.random.SeedSequence:
    """The seed sequence of ``stage`` at ``iteration`` (extra integers name sub-streams, e.g. an epoch)."""
    if stage not in STAGE_IDS:
        raise KeyError(f"unknown stage {stage!r} for seeding; known: {sorted(STAGE_IDS)}")
    return np.random.SeedSequence([int(seed), STAGE_IDS[stage], int(iteration), *map(int, extra)])


def numpy_rng(seed: int, stage: str, iteration: int = 0, *extra: int) -> np.random.Generator:
    """A fresh ``numpy.random.Generator`` (PCG64) for the given stream."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, stage, iteration, *extra)))


def torch_generator(seed: int, stage: str, iteration: int = 0, *extra: int):  # noqa: ANN201 - torch is optional here
    """A CPU ``torch.Generator`` seeded from the given stream (torch imported lazily)."""
    import torch

    state = seed_sequence(seed, stage, iteration, *extra).generate_state(2, dtype=np.uint32)
    gen = torch.Generator()
    gen.manual_seed(int(state[0]) << 32 | int(state[1]))
    return gen
