"""The archive's gene distribution that super-net adaptation samples its subnets from (method.md §3.5 step 7).

NAT fits a distribution to the genes of the archive's top members and trains the super-net on subnets drawn from
it. Here it is a smoothed per-gene frequency table over the ACTIVE genes (method.md §7.2: the reference fits every
continuous scipy distribution to each gene's histogram instead), and sampling inverts exactly how it counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nat2.search.sampling import Genomes
from nat2.space import SearchSpace

__all__ = ["gene_distribution", "sample_from_distribution"]


def gene_distribution(space: SearchSpace, X: Genomes, smoothing: float) -> list[np.ndarray]:
    """Per-gene categorical distribution over ``[lb..ub]`` of the genomes ``X``: frequencies of the ACTIVE genes.

    NAT fits a distribution to the top archive members' genes and samples adaptation subnets from it. Only the
    genes that shape a row's network are counted (:meth:`SearchSpace.active_genes`): the filler of the stages an
    early exit skips, and a stage's fourth layer gene when its third is 0, say nothing about what the archive
    prefers, and counting them makes later stages look dominated by the filler's k3/e3 codes and depth 2. The
    fourth gene is thus counted conditionally on the stage having a third layer, which makes the depth that
    :func:`sample_from_distribution` draws follow the archive's depth frequencies exactly.

    The reference fits every continuous scipy distribution to each gene's histogram and keeps the best SSE (slow,
    non-deterministic under multiprocessing, and odd for categorical genes); a smoothed frequency table is what
    the NAT authors describe, is exact for categorical data and deterministic. A gene active in no row (with
    ``smoothing`` 0) gets the uniform distribution.
    """
    lb, ub = space.lower_bound(), space.upper_bound()
    active = space.active_genes(X) if len(X) else np.zeros((0, space.n_var), dtype=bool)
    dists = []
    for g in range(space.n_var):
        values = X[active[:, g], g] - lb[g]
        counts = np.bincount(values, minlength=ub[g] - lb[g] + 1).astype(np.float64) + smoothing
        total = counts.sum()
        dists.append(counts / total if total > 0 else np.full(len(counts), 1.0 / len(counts)))
    return dists


def sample_from_distribution(space: SearchSpace, dists: Sequence[np.ndarray], n: int,
                             rng: np.random.Generator) -> Genomes:
    """``n`` canonical genomes drawn gene by gene from ``dists`` (see :func:`gene_distribution`).

    Always made canonical with ``fill`` (zero every layer after a stage's first zero), whatever the search's
    repair mode: that is the inverse of how the distribution counts a stage's later layer genes (only while the
    layers before them exist), so stage depths come out with the archive's frequencies; ``push`` would turn a
    skipped third layer plus a present fourth one into a depth-3 stage and bias depth upwards.
    """
    lb = space.lower_bound()
    X = np.stack([lb[g] + rng.choice(len(p), size=n, p=p) for g, p in enumerate(dists)], axis=1)
    return space.repair(X, "fill")
