"""The inner search on the surrogate: NSGA-II (2 objectives) or NSGA-III (3+) over canonical integer genomes.

Objective 1 is the surrogate's predicted error, the others are exact (the vectorised cost model), all minimised
(method.md §3.5 step 2). Unlike the reference, a :class:`CanonicalRepair` operator makes every genome canonical
before the surrogate sees it (method.md §7.2 item 3), so the architecture that is predicted is the one that is
later evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.algorithms.moo.nsga3 import NSGA3
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.operators.crossover.pntx import TwoPointCrossover
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.optimize import minimize

from nat2.search.sampling import Genomes
from nat2.selection import reference_directions
from nat2.space import SearchSpace

__all__ = ["CanonicalRepair", "InnerSearchResult", "SurrogateProblem", "inner_search"]


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
