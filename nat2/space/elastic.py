"""Elastic choices of one training phase: the values each dimension may take, sampling, and validation corners.

Progressive shrinking trains the super-net on subnets drawn from a phase's allowed values (a dimension not opened
yet is pinned at its maximum). Sampling takes an explicit ``numpy.random.Generator``; validation uses the "corner"
subnets, every combination of the min and max of each open dimension, as OFA does.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nat2.space.arch import Arch
from nat2.space.encoding import SearchSpace
from nat2.space.macro import BRANCH_MASKS, BRANCH_MBCONV, MAX_DEPTH, N_LAYERS, N_STAGES

__all__ = ["ElasticChoices", "LEVEL_MASKS"]

#: number of active parallel branches -> the branch masks with that many branches
LEVEL_MASKS: dict[int, tuple[int, ...]] = {n: tuple(m for m in BRANCH_MASKS if bin(m).count("1") == n)
                                           for n in (1, 2, 3)}
#: the mask used for a level in corner subnets: MBConv first, so kernel and expand still matter
_CORNER_MASK = {1: BRANCH_MBCONV, 2: BRANCH_MBCONV | 2, 3: 7}


@dataclass(frozen=True)
class ElasticChoices:
    """Allowed values per elastic dimension (``exits``/``levels`` only for the variants that have them)."""

    kernel_sizes: tuple[int, ...]
    expand_ratios: tuple[int, ...]
    depths: tuple[int, ...]
    exits: tuple[int, ...] | None
    levels: tuple[int, ...] | None

    @classmethod
    def from_phase(cls, phase: Any, space: SearchSpace) -> ElasticChoices:
        """Choices of a ``PhaseConfig`` for the variant of ``space``."""
        return cls(tuple(phase.kernel_sizes), tuple(phase.expand_ratios), tuple(phase.depths),
                   tuple(phase.exits) if space.variant.early_exit else None,
                   tuple(phase.levels) if space.variant.parallel else None)

    @property
    def masks(self) -> tuple[int, ...]:
        """Branch masks that may be sampled (just MBConv for non-parallel variants)."""
        if self.levels is None:
            return (BRANCH_MBCONV,)
        return tuple(m for n in self.levels for m in LEVEL_MASKS[n])

    def _build(self, space: SearchSpace, width: float, resolution: int, exit_: int | None, depths: Sequence[int],
               layers: Sequence[tuple[int, int, int]]) -> Arch:
        ks, es, bs = [0] * N_LAYERS, [0] * N_LAYERS, [0] * N_LAYERS
        it = iter(layers)
        for s, d in enumerate(depths):
            for j in range(d):
                k, e, b = next(it)
                if not b & BRANCH_MBCONV:
                    k, e = 3, 3  # canonical: the MBConv choices of a layer without MBConv are index 0
                ks[s * MAX_DEPTH + j], es[s * MAX_DEPTH + j], bs[s * MAX_DEPTH + j] = k, e, b
        arch = Arch(resolution, width, exit_, tuple(depths), tuple(ks), tuple(es), tuple(bs))
        return space.canonicalize(arch)

    def sample(self, rng: np.random.Generator, space: SearchSpace, width: float, resolution: int) -> Arch:
        """A uniformly drawn subnet: depth per stage, then kernel / expand / branch mask per executed layer."""
        exit_ = int(rng.choice(self.exits)) if self.exits is not None else None
        depths = [int(d) for d in rng.choice(self.depths, size=N_STAGES)]
        n = sum(depths)
        ks = rng.choice(self.kernel_sizes, size=n)
        es = rng.choice(self.expand_ratios, size=n)
        bs = rng.choice(self.masks, size=n)
        return self._build(space, width, resolution, exit_, depths,
                           [(int(k), int(e), int(b)) for k, e, b in zip(ks, es, bs, strict=True)])

    def contains(self, arch: Arch) -> bool:
        """Whether every executed choice of ``arch`` is allowed (stages after the exit do not run)."""
        if self.exits is not None and arch.exit not in self.exits:
            return False
        for s in range(arch.stages_run):
            if arch.depths[s] not in self.depths:
                return False
        for _s, _j, i in arch.active_layers():
            b = arch.branches[i]
            if b not in self.masks:
                return False
            if b & BRANCH_MBCONV and (arch.kernel_sizes[i] not in self.kernel_sizes
                                      or arch.expand_ratios[i] not in self.expand_ratios):
                return False
        return True

    def max_arch(self, space: SearchSpace, width: float, resolution: int) -> Arch:
        """Every dimension at its allowed maximum (the phase's largest subnet)."""
        return self.corners(space, width, (resolution,), limit=None)[-1]

    def corners(self, space: SearchSpace, width: float, resolutions: Sequence[int], limit: int | None = None,
                rng: np.random.Generator | None = None) -> list[Arch]:
        """Subnets at every min/max combination of the open dimensions (and of the resolutions).

        Each corner is uniform: one kernel size, expand ratio, depth and branch mask for the whole network. When
        ``limit`` is smaller than the number of corners, ``limit`` of them are drawn with ``rng`` (the first and
        last corner, the smallest and the largest network, are always kept).
        """
        def ends(values: Sequence[int] | None) -> tuple[Any, ...]:
            if values is None:
                return (None,)
            return tuple(sorted({min(values), max(values)}))

        combos = list(itertools.product(ends(resolutions), ends(self.kernel_sizes), ends(self.expand_ratios),
                                        ends(self.depths), ends(self.exits), ends(self.levels)))
        archs = []
        for r, k, e, d, x, lv in combos:
            b = _CORNER_MASK[lv] if lv is not None else BRANCH_MBCONV
            archs.append(self._build(space, width, r, x, [d] * N_STAGES, [(k, e, b)] * (d * N_STAGES)))
        if limit is not None and len(archs) > limit:
            if rng is None:
                raise ValueError("corners: a generator is needed to draw a subset")
            middle = sorted(rng.choice(np.arange(1, len(archs) - 1), size=max(limit - 2, 0), replace=False))
            archs = [archs[0], *(archs[i] for i in middle), archs[-1]]
        return archs
