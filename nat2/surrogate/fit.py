"""Fitting a surrogate together with the cross-validated evidence of how well it ranks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nat2.surrogate.base import MIN_SAMPLES, STREAM_CV, Array, Surrogate, check_xy, derive_seeds, kfold
from nat2.surrogate.composite import AdaptiveSwitching, KFoldEnsemble
from nat2.surrogate.metrics import rank_metrics
from nat2.surrogate.registry import make_surrogate

__all__ = ["FitResult", "fit_surrogate"]


@dataclass(frozen=True)
class FitResult:
    """A fitted surrogate and the cross-validated evidence of how well it ranks.

    Attributes:
        model: the surrogate fitted on all data.
        report: JSON-able summary (see :func:`fit_surrogate`).
        oof: out-of-fold predictions ``[n]`` the report's metrics were computed from (for predicted-vs-true plots).
    """

    model: Surrogate
    report: dict[str, Any]
    oof: Array


def _json_float(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def fit_surrogate(
    name: str,
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    seed: int,
    threads: int = 1,
    folds: int = 10,
    ensemble: bool | None = None,
    params: Mapping[str, Any] | None = None,
) -> FitResult:
    """Fit a surrogate on all data and cross-validate the very same recipe.

    The report's metrics come from out-of-fold predictions of the full recipe (for ``as``, model selection is
    redone inside every fold; for ensembles, each fold fits a whole ensemble), so they estimate how the fitted model
    will rank unseen candidates rather than how well it recalls its training set. That costs ``folds + 1`` fits of
    the recipe.

    Args:
        name: a key of :data:`~nat2.surrogate.SURROGATES`.
        X: features ``[n, d]`` (integer genomes or one-hot, built by the caller).
        y: top-1 errors ``[n]``.
        seed: the only source of randomness; the returned model is ``make_surrogate(name, seed=seed, ...)`` fitted.
        threads: CPU threads each fit may use.
        folds: k of the cross-validation (and of the ensemble / switching inside it); at most ``n``.
        ensemble: see :func:`~nat2.surrogate.make_surrogate`.
        params: see :func:`~nat2.surrogate.make_surrogate`.

    Returns:
        The fitted model, and a report ``{"model", "ensemble", "winner", "candidates", "kendall_tau", "spearman",
        "pearson", "rmse", "folds", "n", "seed"}``: ``winner``/``candidates`` (each candidate's τ mean, std and
        score on all data) are ``None`` except for ``as``; undefined correlations are ``None``.

    Raises:
        ValueError: on fewer than :data:`MIN_SAMPLES` samples, bad shapes or non-finite values, or an unknown name.
    """
    x_arr, y_arr = check_xy(X, y, MIN_SAMPLES)

    def make(s: int) -> Surrogate:
        return make_surrogate(name, seed=s, threads=threads, folds=folds, ensemble=ensemble, params=params)

    model = make(seed).fit(x_arr, y_arr)
    split_seed, *fold_seeds = derive_seeds(seed, folds + 1, STREAM_CV)
    splits = kfold(len(y_arr), folds, split_seed)
    oof = np.empty_like(y_arr)
    for s, (train, test) in zip(fold_seeds, splits, strict=False):
        oof[test] = make(s).fit(x_arr[train], y_arr[train]).predict(x_arr[test])
    metrics = rank_metrics(y_arr, oof)
    switching = model if isinstance(model, AdaptiveSwitching) else None
    report: dict[str, Any] = {
        "model": name,
        "ensemble": isinstance(model, KFoldEnsemble),
        "winner": switching.winner_ if switching else None,
        "candidates": ({c: {k: v for k, v in score.items() if k != "fold_taus"} for c, score in
                        switching.scores_.items()} if switching else None),
        **{k: _json_float(v) for k, v in metrics.items()},
        "folds": len(splits),
        "n": len(y_arr),
        "seed": int(seed),
    }
    return FitResult(model=model, report=report, oof=oof)
