"""Quality indicators of a set of architectures: hypervolume on a fixed normalisation.

A hypervolume is only comparable between two archives when both were scaled the same way, so :func:`normalise`
uses a *fixed* scale (costs divided by the largest architecture's cost, error already in [0, 1]) and
:func:`hypervolume` a fixed reference point: the values then compare across iterations, runs, seeds and policies
(method.md §7.2 item 13). pymoo 0.6.2 computes the volume. :func:`archive_stats` is what every search step
records about its archive on that scale, :func:`max_costs` the scale itself and :func:`cost_matrix` the inner
search's cost objectives on it.

No torch here: search and reporting run without the deep-learning stack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pymoo.indicators.hv import HV

from nat2.archive import objective_matrix, objective_names
from nat2.costs import CostModel
from nat2.errors import Nat2Error
from nat2.selection import as_objectives, non_dominated
from nat2.space import SearchSpace

__all__ = ["archive_stats", "cost_matrix", "hypervolume", "max_costs", "normalise"]


def normalise(F: npt.ArrayLike, names: Sequence[str], max_costs: Mapping[str, float]) -> npt.NDArray[np.float64]:
    """Objectives on a fixed scale: ``error`` as is (a fraction), every cost divided by the largest network's cost.

    The scale depends only on the search space (the caller computes ``max_costs`` with the cost model on
    :meth:`SearchSpace.max_genome`; latency: the max network's predicted latency), never on which architectures an
    archive happens to hold, so hypervolumes of different iterations, runs, seeds and policies are comparable.

    Args:
        F: ``[n, len(names)]`` raw objectives (:func:`nat2.archive.objective_matrix`).
        names: the objective of each column.
        max_costs: ``{cost name: cost of the largest architecture}`` for every non-error objective in ``names``.

    Returns:
        A new float64 array of the same shape.

    Raises:
        ValueError: on a shape mismatch, unknown names, or a missing, non-finite or non-positive max cost.
    """
    names = objective_names(names)
    F = as_objectives(F, "normalise")
    if F.shape[1] != len(names):
        raise ValueError(f"normalise: F has {F.shape[1]} columns for {len(names)} objective names")
    out = F.copy()
    for j, name in enumerate(names):
        if name == "error":
            continue
        scale = max_costs.get(name)
        if scale is None or isinstance(scale, bool) or not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"normalise: max_costs[{name!r}] must be a positive number, got {scale!r}")
        out[:, j] = F[:, j] / float(scale)
    return out


def hypervolume(F_norm: npt.ArrayLike, ref_point: float | Sequence[float]) -> float:
    """Hypervolume dominated by the non-dominated points of ``F_norm`` up to a fixed reference point.

    Points that do not strictly dominate the reference point contribute nothing; dominated points never change
    the value. Computed by pymoo's ``HV`` (moocore backend) without further normalisation, so with
    :func:`normalise` and a constant reference (``search.hv_ref`` per objective) the value is comparable across
    iterations, runs, seeds and policies.

    Args:
        F_norm: ``[n, m]`` normalised objectives (:func:`normalise`), all minimised.
        ref_point: one value for every objective, or ``m`` values.

    Returns:
        The hypervolume (0.0 when no point dominates the reference point).

    Raises:
        ValueError: on a malformed ``F_norm`` or reference point.
    """
    F = as_objectives(F_norm, "hypervolume")
    ref = np.asarray(ref_point, dtype=np.float64)
    ref = np.full(F.shape[1], float(ref)) if ref.ndim == 0 else ref
    if ref.shape != (F.shape[1],) or not np.isfinite(ref).all():
        raise ValueError(f"hypervolume: ref_point must be a number or {F.shape[1]} finite numbers, got {ref_point!r}")
    F = F[(F < ref).all(axis=1)]
    if len(F) == 0:
        return 0.0
    return float(HV(ref_point=ref)(F[non_dominated(F)]))


# -- archive statistics on the fixed scale ----------------------------------------------------------------------------


def max_costs(space: SearchSpace, model: CostModel) -> dict[str, float]:
    """The largest architecture's costs: the fixed scale of :func:`normalise`.

    Latency (with a latency model) is the max architecture's *predicted* latency: a measurement would make the
    scale, and so every hypervolume, depend on the noise of one timing.
    """
    c = model(space.max_genome()[None])
    return {name: float(v[0]) for name, v in c.items()}


def cost_matrix(space: SearchSpace, model: CostModel, objectives: Sequence[str], G: np.ndarray) -> np.ndarray:
    """Cost objectives (every objective but error) of genomes ``G``, normalised by the max arch's costs.

    Params and MACs are exact counts; latency is the LUT model's prediction.

    Raises:
        Nat2Error: a latency objective without a latency model.
    """
    c = model(G)
    mx = max_costs(space, model)
    cols = []
    for name in objectives[1:]:
        if name not in c:
            raise Nat2Error("the latency objective needs the latency look-up table (profile_latency's "
                            "results/latency/lut.parquet, passed as --lut)")
        cols.append(c[name].astype(np.float64) / mx[name])
    return np.column_stack(cols)


def archive_stats(df: pd.DataFrame, objectives: Sequence[str], scale: Mapping[str, float],
                  hv_ref: float | None = None) -> dict[str, Any]:
    """Size, front size, best top-1 and (given ``hv_ref``) HV on the fixed normalisation.

    The search stages record these without HV: the reference point is a reporting choice (``search.hv_ref`` is
    read by the report alone), so editing it never reruns an evaluation or an adaptation.

    Args:
        df: an archive (:func:`nat2.archive.read_archive`).
        objectives: ``search.objectives``.
        scale: the max architecture's costs (:func:`max_costs`).
        hv_ref: ``search.hv_ref``, the reference point on every normalised objective (None: no HV).
    """
    F = normalise(objective_matrix(df, objectives), objectives, scale)
    front = non_dominated(F)
    hv = {} if hv_ref is None else {"hv": hypervolume(F, hv_ref)}
    return {**hv, "size": len(df), "front_size": len(front), "best_top1": float(df["top1"].max())}
