"""The NAT / NAT2 search steps that need no network.

Initial sampling, the inner multi-objective search on the surrogate, candidate selection, and the archive's gene
distribution for adaptation.

The inner search (method.md §3.5) is pymoo's NSGA-II (2 objectives) or NSGA-III (3 or more) over integer genomes:
objective 1 is the surrogate's predicted error, the others are exact (the vectorised cost model). Unlike the
reference, a :class:`CanonicalRepair` operator makes every genome canonical before the surrogate sees it
(method.md §7.2 item 3), so the architecture that is predicted is the one that is later evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.algorithms.moo.nsga3 import NSGA3
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.operators.crossover.pntx import TwoPointCrossover
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.optimize import minimize

from nat2.archive import reference_directions
from nat2.space import SearchSpace

__all__ = [
    "CanonicalRepair",
    "InnerSearchResult",
    "SurrogateProblem",
    "gene_distribution",
    "initial_genomes",
    "inner_search",
    "random_candidates",
    "sample_from_distribution",
    "select_candidates",
    "unique_new",
]

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


class CanonicalRepair(Repair):
    """Make every genome canonical (``fill`` or ``push``), so the surrogate only ever scores real architectures."""

    def __init__(self, space: SearchSpace, mode: str) -> None:
        super().__init__()
        self.space, self.mode = space, mode

    def _do(self, problem: Problem, X: np.ndarray, **kwargs: object) -> np.ndarray:
        return self.space.repair(np.rint(X), self.mode).astype(X.dtype if X.dtype.kind == "f" else np.int64)


class SurrogateProblem(Problem):
    """Objectives of a population: predicted error, then exact costs (all minimised)."""

    def __init__(self, space: SearchSpace, predict: Callable[[Genomes], np.ndarray],
                 costs: Callable[[Genomes], np.ndarray], n_obj: int,
                 on_evaluate: Callable[[Genomes], None] | None = None) -> None:
        super().__init__(n_var=space.n_var, n_obj=n_obj, xl=space.lower_bound(), xu=space.upper_bound(), vtype=int)
        self.space, self.predict, self.costs, self.on_evaluate = space, predict, costs, on_evaluate

    def _evaluate(self, X: np.ndarray, out: dict, *args: object, **kwargs: object) -> None:
        G = np.rint(X).astype(np.int64)
        if self.on_evaluate is not None:
            self.on_evaluate(G)
        out["F"] = np.column_stack([self.predict(G), self.costs(G)])


@dataclass(frozen=True)
class InnerSearchResult:
    """The final population of the inner search."""

    X: Genomes
    F: np.ndarray


def inner_search(space: SearchSpace, predict: Callable[[Genomes], np.ndarray],
                 costs: Callable[[Genomes], np.ndarray], n_obj: int, *, pop_size: int, generations: int,
                 crossover_prob: float, mutation_eta: float, repair: str, seed: int,
                 on_evaluate: Callable[[Genomes], None] | None = None) -> InnerSearchResult:
    """NSGA-II (2 objectives) or NSGA-III (3+) on the surrogate; every evaluated genome is canonical.

    pymoo >= 0.6.1.6 draws every random choice from ``np.random.default_rng(seed)`` passed to the operators as
    ``random_state``, and NSGA-III's reference directions get their own ``default_rng(seed)``, so the result
    depends on ``seed`` only, never on global RNG state.
    """
    problem = SurrogateProblem(space, predict, costs, n_obj, on_evaluate)
    common = {
        "sampling": IntegerRandomSampling(),
        "crossover": TwoPointCrossover(prob=crossover_prob),
        "mutation": PM(eta=mutation_eta, vtype=float, repair=RoundingRepair()),
        "repair": CanonicalRepair(space, repair),
        "eliminate_duplicates": True,
    }
    if n_obj == 2:
        algorithm = NSGA2(pop_size=pop_size, **common)
    else:
        ref_dirs = reference_directions(n_obj, pop_size, seed)
        algorithm = NSGA3(ref_dirs=ref_dirs, pop_size=pop_size, **common)
    # minimize's seed= becomes the algorithm's random_state (np.random.default_rng(seed)) that every operator uses
    res = minimize(problem, algorithm, ("n_gen", generations), seed=seed, verbose=False)
    X = np.rint(res.pop.get("X")).astype(np.int64)
    return InnerSearchResult(X, res.pop.get("F"))


def _spread(values: np.ndarray) -> float:
    """Unevenness of points along one axis: std of the gaps between sorted values (MSuNAS's subset objective)."""
    if len(values) < 3:
        return 0.0
    return float(np.std(np.diff(np.sort(values))))


def select_candidates(pool_costs: np.ndarray, pool_pred: np.ndarray, front_costs: np.ndarray, k: int) -> list[int]:
    """Pick ``k`` pool members that spread most evenly along the cost axes of the archive's front.

    Greedy version of method.md §3.5 step 4: each step adds the member that minimises, over the (normalised)
    cost axes, the largest std of gaps between the sorted front ∪ selected values; ties go to the lower predicted
    error. Deterministic and vectorised per step (the reference runs a 500 x 200 binary GA for this).

    Args:
        pool_costs: ``[m, c]`` normalised costs of the candidates (already new and unique).
        pool_pred: ``[m]`` predicted errors.
        front_costs: ``[f, c]`` normalised costs of the archive's non-dominated front.
        k: number to pick (all of the pool when it has fewer).

    Returns:
        Indices into the pool, in the order chosen.
    """
    m = len(pool_costs)
    if m <= k:
        return list(np.argsort(pool_pred, kind="stable"))
    chosen: list[int] = []
    remaining = list(np.argsort(pool_pred, kind="stable"))
    base = front_costs
    for _ in range(k):
        scores = []
        for j in remaining:
            pts = np.concatenate([base, pool_costs[[*chosen, j]]])
            scores.append(max(_spread(pts[:, a]) for a in range(pts.shape[1])))
        best = int(np.argmin(scores))  # argmin keeps the first (= lowest predicted error) among equal scores
        chosen.append(remaining.pop(best))
    return chosen


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
