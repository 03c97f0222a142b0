"""Choosing architectures by their objective values: fronts, survival, high trade-off points and spread.

Every choice the search makes among evaluated (or predicted) architectures goes through here: which members an
archive keeps (:func:`survive`), which subnets leave the search (:func:`high_tradeoff`) and which inner-search
results become candidates (:func:`select_candidates`). The multi-objective machinery is pymoo 0.6.2's
(non-dominated sorting, crowding distance, NSGA-III niching, Riesz-energy directions, trade-off neighbourhoods);
this module fixes what pymoo leaves random or global:

* :class:`ArchiveSurvival` breaks every tie deterministically for 1–2 objectives and seeds NSGA-III explicitly;
* pymoo's global ``warnings`` filters set inside NSGA-III and ``HighTradeoffPoints`` are contained.

Pure numpy + pymoo: no torch, no file formats.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
from pymoo.algorithms.moo.nsga3 import ReferenceDirectionSurvival
from pymoo.core.decision_making import NeighborFinder
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.survival import Survival
from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from pymoo.util.ref_dirs import RieszEnergyReferenceDirectionFactory

__all__ = [
    "TRADEOFF_EPSILON",
    "ArchiveSurvival",
    "as_objectives",
    "fronts",
    "choose_slots",
    "high_tradeoff",
    "non_dominated",
    "reference_directions",
    "select_candidates",
    "survive",
]

#: neighbourhood radius of the trade-off measure on the [0, 1]-normalised front (pymoo / MSuNAS value)
TRADEOFF_EPSILON = 0.125


def as_objectives(F: npt.ArrayLike, what: str, *, min_obj: int = 1) -> npt.NDArray[np.float64]:
    """``F`` as a finite float64 ``[n, m]`` matrix with ``m >= min_obj``; ``what`` names the caller in the error.

    Raises:
        ValueError: on another shape or a NaN / infinite value (a programming error upstream).
    """
    arr = np.asarray(F, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < min_obj:
        raise ValueError(f"{what}: expected F of shape [n, m] with m >= {min_obj}, got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: F contains NaN or infinite values")
    return arr


# -- non-dominated sorting --------------------------------------------------------------------------------------------


def fronts(F: npt.ArrayLike) -> list[npt.NDArray[np.int64]]:
    """Non-dominated fronts of ``F`` (minimisation): a list of index arrays, best first, ascending within each.

    Identical rows do not dominate each other, so duplicates share a front.
    """
    F = as_objectives(F, "fronts")
    if len(F) == 0:
        return []
    return [np.sort(np.asarray(f, dtype=np.int64)) for f in NonDominatedSorting().do(F)]


def non_dominated(F: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Indices of the first front of ``F`` (ascending); duplicates of a non-dominated row are all included."""
    F = as_objectives(F, "non_dominated")
    if len(F) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.asarray(NonDominatedSorting().do(F, only_non_dominated_front=True), dtype=np.int64))


def _crowding(F: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """NSGA-II crowding distance (pymoo's ``"cd"``, the one ``RankAndCrowding`` uses by default)."""
    return np.asarray(get_crowding_function("cd").do(F, n_remove=0), dtype=np.float64)


def _rank_crowding_order(F: npt.NDArray[np.float64], candidates: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``candidates`` sorted by (front of F, crowding within that front descending, index): best first."""
    out = []
    chosen = set(candidates.tolist())
    for front in fronts(F):
        cd = _crowding(F[front])
        keep = np.array([i in chosen for i in front.tolist()], dtype=bool)
        front, cd = front[keep], cd[keep]
        out.append(front[np.lexsort((front, -cd))])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


# -- survival ---------------------------------------------------------------------------------------------------------


def reference_directions(n_obj: int, n: int, seed: int) -> npt.NDArray[np.float64]:
    """``n`` Riesz-energy reference directions in ``n_obj`` dimensions, generated from ``seed`` alone.

    pymoo 0.6.2's ``get_reference_directions("energy", ..., seed=s)`` drops ``s`` and always uses seed 1, so the
    factory is called with an explicit ``random_state``; NSGA-III's inner search and its survival both use this.
    """
    return RieszEnergyReferenceDirectionFactory(n_obj, n).do(random_state=np.random.default_rng(seed))


class ArchiveSurvival(Survival):
    """The NSGA-II/III survival NAT2 uses for its archive, as a pymoo ``Survival`` (method.md §3.5 step 7, §4).

    * 1 objective: the ``n_survive`` smallest values (stable, so ties go to the lower index).
    * 2 objectives (NSGA-II): whole fronts in rank order while they fit; the splitting front is cut by pymoo's
      crowding distance (boundary points infinite), with pymoo's random tie-break replaced by (crowding
      descending, index ascending). On tie-free data this is exactly pymoo's ``RankAndCrowding``; with
      duplicates the incumbent (earlier row) wins.
    * ≥ 3 objectives (NSGA-III): pymoo's ``ReferenceDirectionSurvival`` (hyperplane normalisation and niching)
      with ``max(n_survive, m)`` Riesz-energy directions from ``seed``; niching ties are broken by the
      ``random_state`` pymoo passes to :meth:`do`.

    The directions are built per call because their count follows ``n_survive``; ``seed`` fixes them, so the
    operator holds no state between calls.

    Args:
        seed: seeds the reference directions (≥ 3 objectives; unused otherwise).
    """

    def __init__(self, seed: int) -> None:
        super().__init__(filter_infeasible=True)
        self.seed = seed

    def _do(self, problem: Any, pop: Population, *args: Any, n_survive: int | None = None,
            random_state: np.random.Generator | None = None, **kwargs: Any) -> Population:
        F = pop.get("F").astype(np.float64, copy=False)
        n = len(F) if n_survive is None else int(n_survive)
        m = F.shape[1]
        if m == 1:
            chosen = np.argsort(F[:, 0], kind="stable")[:n]
        elif m == 2:
            chosen = _rank_and_crowding(F, n)
        else:
            rds = ReferenceDirectionSurvival(reference_directions(m, max(n, m), self.seed))
            with warnings.catch_warnings():  # pymoo calls warnings.simplefilter("ignore") inside the normalisation
                chosen = rds.do(problem, pop, n_survive=n, random_state=random_state, return_indices=True)
        return pop[np.asarray(chosen, dtype=np.int64)]


def _rank_and_crowding(F: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.int64]:
    """Select like pymoo's ``RankAndCrowding``, with its random tie-break replaced by (crowding desc, index asc)."""
    survivors: list[npt.NDArray[np.int64]] = []
    taken = 0
    for front in NonDominatedSorting().do(F, n_stop_if_ranked=n):
        front = np.sort(np.asarray(front, dtype=np.int64))
        if taken + len(front) <= n:
            survivors.append(front)
            taken += len(front)
            continue
        cd = np.asarray(get_crowding_function("cd").do(F[front], n_remove=taken + len(front) - n))
        survivors.append(front[np.lexsort((front, -cd))][: n - taken])
        break
    return np.concatenate(survivors)


def survive(F: npt.ArrayLike, n: int, *, seed: int) -> npt.NDArray[np.int64]:
    """Indices of the ``n`` survivors of ``F`` by :class:`ArchiveSurvival`.

    Used for the fixed-size archive update (archive ∪ candidates → archive size), the pre-processing cut and the
    top-N selection. Survivors are returned in ascending row order (a subset, not a ranking), so the caller's row
    order is preserved. For 1–2 objectives there is no randomness (``seed`` is unused); for ≥ 3 objectives
    ``seed`` fixes both the reference directions and the niching tie-breaks
    (``numpy.random.default_rng(seed)``), so identical ``F`` and ``seed`` give identical survivors. Duplicate
    rows are allowed in every case.

    Args:
        F: ``[N, m]`` finite objective values, all minimised.
        n: number of survivors; ``n >= N`` returns every index.
        seed: seeds the reference directions and the niching tie-breaks (≥ 3 objectives).

    Returns:
        int64 indices into ``F``, ascending, ``min(n, N)`` of them, distinct.

    Raises:
        ValueError: on a malformed ``F`` or a negative ``n``.
    """
    F = as_objectives(F, "survive")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"survive: n must be a non-negative integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"survive: seed must be a non-negative integer, got {seed!r}")
    N, m = F.shape
    if n >= N:
        return np.arange(N, dtype=np.int64)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    chosen = ArchiveSurvival(int(seed)).do(Problem(n_var=1, n_obj=m), Population.new("F", F), n_survive=int(n),
                                           random_state=np.random.default_rng(int(seed)), return_indices=True)
    return np.sort(np.asarray(chosen, dtype=np.int64))


# -- decision making ----------------------------------------------------------------------------------------------


def high_tradeoff(F: npt.ArrayLike, k: int) -> npt.NDArray[np.int64]:
    """The ``k`` architectures with the highest trade-off value, best first (method.md §3.6, MSuNAS top-K).

    On the non-dominated front (normalised to [0, 1] per objective by its own min/max, identical rows counted
    once), each point's trade-off is, as in pymoo's ``HighTradeoffPoints``, the minimum over its neighbours
    (within :data:`TRADEOFF_EPSILON`, at least ``min(2m, f-1)`` nearest) of sacrifice/gain, where sacrifice
    (gain) is the summed worsening (improvement) moving from the point to the neighbour. A large value means
    leaving the point costs much more than it gains. pymoo returns only statistical outliers of this value; NAT
    reports a fixed number, so here the top ``k`` are taken.

    When the front has fewer than ``k`` distinct points, the rest is filled by rank and crowding (remaining front
    duplicates, then the next fronts, most isolated first), so the result always has ``min(k, len(F))``
    distinct indices. Ties go to the lower index.

    Args:
        F: ``[N, m]`` finite objectives (m >= 2), all minimised.
        k: number of points wanted.

    Returns:
        int64 indices into ``F``: highest trade-off first, then the fill order.

    Raises:
        ValueError: on a malformed ``F``, fewer than 2 objectives or a negative ``k``.
    """
    F = as_objectives(F, "high_tradeoff", min_obj=2)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"high_tradeoff: k must be a non-negative integer, got {k!r}")
    k = min(int(k), len(F))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    front = non_dominated(F)
    _, first = np.unique(F[front], axis=0, return_index=True)
    distinct = front[np.sort(first)]
    mu = _tradeoff(F[distinct])
    chosen = distinct[np.lexsort((distinct, -np.nan_to_num(mu, nan=-np.inf)))][:k]
    if len(chosen) < k:
        rest = np.setdiff1d(np.arange(len(F)), chosen)
        chosen = np.concatenate([chosen, _rank_crowding_order(F, rest)[: k - len(chosen)]])
    return chosen.astype(np.int64)


def _tradeoff(front: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per-point trade-off value of pymoo's ``HighTradeoffPoints`` on a duplicate-free front; NaN for a lone point."""
    lo, hi = front.min(axis=0), front.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    N = (front - lo) / span
    finder = NeighborFinder(N, epsilon=TRADEOFF_EPSILON, n_min_neigbors="auto", consider_2d=False)
    mu = np.full(len(N), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(len(N)):
            diff = N[np.asarray(finder.find(i), dtype=np.int64)] - N[i]
            ratio = np.maximum(0.0, diff).sum(axis=1) / np.maximum(0.0, -diff).sum(axis=1)
            ratio = ratio[~np.isnan(ratio)]  # the point itself (0/0)
            if ratio.size:
                mu[i] = ratio.min()
    return mu


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


def choose_slots(F: npt.ArrayLike, top1: npt.ArrayLike, params: npt.ArrayLike, k: int, accurate: int = 0,
                 max_params: int = 0) -> tuple[npt.NDArray[np.int64], list[str]]:
    """The ``k`` archive members that leave the search: ``accurate`` most accurate ones, then by trade-off.

    High trade-off points sit at the front's knees, which on a small-image front are its cheap corner, so a run
    whose slots are chosen by trade-off alone never ships its accurate networks. The first ``accurate`` slots are
    therefore the members with the highest validation top-1 among those with at most ``max_params`` parameters
    (0 = no cap; fewer params, then the lower index, break ties); when none fits the cap, the one with the fewest
    parameters stands in. The remaining slots follow :func:`high_tradeoff`'s order, skipping chosen members.

    Returns:
        ``(indices, reasons)``: int64 indices into ``F``, and ``"accurate"`` or ``"tradeoff"`` for each.
    """
    F = as_objectives(F, "choose_slots", min_obj=2)
    top1, params = np.asarray(top1, dtype=np.float64), np.asarray(params, dtype=np.int64)
    k = min(int(k), len(F))
    accurate = min(int(accurate), k)
    fits = np.flatnonzero(params <= max_params) if max_params else np.arange(len(F))
    if len(fits) == 0:
        fits = np.asarray([int(np.lexsort((np.arange(len(F)), params))[0])])
    order = fits[np.lexsort((fits, params[fits], -top1[fits]))]
    chosen = [int(i) for i in order[:accurate]]
    reasons = ["accurate"] * len(chosen)
    for i in high_tradeoff(F, len(F)):
        if len(chosen) == k:
            break
        if int(i) not in chosen:
            chosen.append(int(i))
            reasons.append("tradeoff")
    return np.asarray(chosen, dtype=np.int64), reasons
