"""Iteration step 2: propose the iteration's candidates (method.md §3.5 steps 2-4; the ``search`` stage).

Surrogate-guided policies run the inner NSGA-II/III on the predictor (:mod:`nat2.search.inner`), drop what the
archive already holds, and pick ``search.candidates`` members spread along the cost axes of the archive's front
(:func:`nat2.selection.select_candidates`); random search draws as many new uniform architectures.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nat2 import archive as arc
from nat2.config import SearchConfig
from nat2.context import RunContext
from nat2.errors import Nat2Error
from nat2.genome_list import write_genomes
from nat2.indicators import cost_matrix, max_costs, normalise
from nat2.io import write_json
from nat2.search.inner import inner_search
from nat2.search.inputs import check_iteration, read_search_archive, step_seed
from nat2.search.policy import resolve_policy
from nat2.search.sampling import random_candidates, unique_new
from nat2.seeds import numpy_rng
from nat2.selection import non_dominated, select_candidates
from nat2.space import SearchSpace

__all__ = ["propose_candidates"]


def propose_candidates(search: SearchConfig, space: SearchSpace, ctx: RunContext, iteration: int, archive: Path,
                       surrogate: Path, out: Path, stats_out: Path,
                       on_evaluate: Callable[[np.ndarray], None] | None = None) -> dict[str, Any]:
    """Propose ``search.candidates`` new architectures (surrogate-guided, or uniform for random search).

    Args:
        search: the ``search`` settings.
        space: the search space.
        ctx: the run context (root seed; the class count, read from the split file).
        iteration: the iteration (a key of ``search.iterations``).
        archive: the previous iteration's archive.
        surrogate: the model file ``fit_surrogate`` wrote for this iteration (unused by random search).
        out: the candidate genome list to write.
        stats_out: the step's statistics (JSON) to write.
        on_evaluate: called with every population the surrogate scores (tests check they are canonical).
    """
    check_iteration(search, iteration)
    pol = resolve_policy(search)
    df = read_search_archive(archive, space)
    known = set(df["id"])
    model = ctx.cost_model(space, latency="latency" in search.objectives)
    seed = step_seed(ctx.seed, "search", iteration)
    if not pol.surrogate_guided:
        G = random_candidates(space, search.candidates, known, numpy_rng(ctx.seed, "search", iteration))
        write_genomes(out, space, G, ["candidate"] * len(G))
        stats = {"iteration": iteration, "policy": search.policy, "candidates": len(G)}
        write_json(stats_out, stats)
        return stats
    from nat2.surrogate import load_surrogate

    predictor, stored = load_surrogate(surrogate)
    if stored.encoding != pol.encoding or stored.model != search.surrogate:
        raise Nat2Error(f"{surrogate} holds a {stored.model} surrogate on {stored.encoding} features but params ask "
                        f"for {search.surrogate} on {pol.encoding}; rerun fit_surrogate")
    if stored.features.shape[1] != space.n_features(pol.encoding):
        raise Nat2Error(f"{surrogate} was fitted on {stored.features.shape[1]} features, this search space has "
                        f"{space.n_features(pol.encoding)}; rerun fit_surrogate")

    def predict(G: np.ndarray) -> np.ndarray:
        return predictor.predict(space.features(G, pol.encoding))

    def costs(G: np.ndarray) -> np.ndarray:
        return cost_matrix(space, model, search.objectives, G)

    res = inner_search(space, predict, costs, len(search.objectives), pop_size=search.pop_size,
                       generations=search.generations, crossover_prob=search.crossover_prob,
                       mutation_eta=search.mutation_eta, repair=pol.repair, seed=seed, on_evaluate=on_evaluate)
    pool = unique_new(space, res.X, known)
    pool_pred = predict(pool) if len(pool) else np.zeros(0)
    F_arch = normalise(arc.objective_matrix(df, search.objectives), search.objectives, max_costs(space, model))
    front = F_arch[non_dominated(F_arch)][:, 1:]
    chosen = select_candidates(costs(pool) if len(pool) else np.zeros((0, len(search.objectives) - 1)), pool_pred,
                               front, search.candidates)
    G = pool[chosen]
    write_genomes(out, space, G, ["candidate"] * len(G), pool_pred[chosen])
    stats = {"iteration": iteration, "policy": search.policy, "pool": len(pool), "candidates": len(G),
             "predicted_error_min": float(pool_pred[chosen].min()) if len(G) else None}
    write_json(stats_out, stats)
    return stats
