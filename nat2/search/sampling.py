"""New, distinct architectures drawn by a sampling policy: the initial design and random search's candidates.

Both draw in rounds until exactly ``n`` distinct canonical genomes exist that are not excluded (the bounds, or
the archive), so the count is exact and the result depends only on the generator. The sampling policies
themselves (``uniform``, NAT2's ``arch_space``, ``uniform_depth``) are :meth:`nat2.space.SearchSpace.sample`'s.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from nat2.space import SearchSpace

__all__ = ["Genomes", "initial_genomes", "random_candidates", "unique_new"]

Genomes = npt.NDArray[np.int64]


def unique_new(space: SearchSpace, X: Genomes, exclude: set[str]) -> Genomes:
    """Rows of ``X`` whose arch id is not in ``exclude``, first occurrence only, order kept."""
    keep, seen = [], set(exclude)
    for i, arch_id in enumerate(space.arch_ids(X)):
        if arch_id not in seen:
            seen.add(arch_id)
            keep.append(i)
    return X[keep]


def initial_genomes(space: SearchSpace, policy: str, n: int, rng: np.random.Generator) -> Genomes:
    """``n`` distinct canonical genomes drawn with sampling ``policy`` (min and max archs excluded: added apart).

    Draws in rounds until ``n`` distinct ones exist, so the count is exact and depends only on the generator.
    """
    bounds = {space.arch_id(space.min_genome()), space.arch_id(space.max_genome())}
    out = np.empty((0, space.n_var), dtype=np.int64)
    for _ in range(1000):
        if len(out) >= n:
            break
        ids = set(space.arch_ids(out)) | bounds if len(out) else set(bounds)
        out = np.concatenate([out, unique_new(space, space.sample(rng, max(n - len(out), 8), policy), ids)])
    if len(out) < n:
        raise ValueError(f"could not draw {n} distinct architectures with policy {policy}")
    return out[:n]


def random_candidates(space: SearchSpace, n: int, exclude: set[str], rng: np.random.Generator) -> Genomes:
    """``n`` new uniformly drawn architectures (the random-search baseline's candidates)."""
    out = np.empty((0, space.n_var), dtype=np.int64)
    for _ in range(1000):
        if len(out) >= n:
            break
        taken = exclude | set(space.arch_ids(out)) if len(out) else set(exclude)
        out = np.concatenate([out, unique_new(space, space.sample(rng, n - len(out), "uniform"), taken)])
    return out[:n]
