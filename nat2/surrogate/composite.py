"""Predictors made of other predictors: NAT2's k-fold ensemble and MSuNAS's adaptive switching.

Both build their members from a :data:`~nat2.surrogate.base.Factory` (a seed in, an unfitted model out), so they
work with any registered model and draw every member's seed from their own (:func:`derive_seeds`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from nat2.surrogate.base import (
    STREAM_ENSEMBLE,
    STREAM_SWITCHING,
    Array,
    Factory,
    check_count,
    check_xy,
    derive_seeds,
    kfold,
)
from nat2.surrogate.metrics import fold_tau

__all__ = ["AdaptiveSwitching", "KFoldEnsemble"]


class KFoldEnsemble:
    """Mean of ``k`` models, each fitted on all folds but one: NAT2's default recipe (method.md §3.5 step 1).

    Averaging models that each miss a different tenth of the archive smooths the jumps of tree models, which is
    why the thesis fits every predictor this way.

    Args:
        make: builds one unfitted member from its seed.
        name: name reported for the ensemble (the member model's name).
        folds: members; reduced to the sample count on tiny archives.
        seed: seeds the shuffle and, through :func:`derive_seeds`, every member.
    """

    def __init__(self, make: Factory, name: str, *, folds: int = 10, seed: int = 0) -> None:
        self.make = make
        self.name = name
        self.folds = check_count("folds", folds, 2)
        self.seed = check_count("seed", seed, 0)

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> KFoldEnsemble:
        """Fit one member per fold; returns ``self``."""
        x_arr, y_arr = check_xy(X, y)
        split_seed, *member_seeds = derive_seeds(self.seed, self.folds + 1, STREAM_ENSEMBLE)
        splits = kfold(len(y_arr), self.folds, split_seed)
        self.members_ = [self.make(s).fit(x_arr[train], y_arr[train])
                         for s, (train, _) in zip(member_seeds, splits, strict=False)]
        return self

    def predict(self, X: npt.ArrayLike) -> Array:
        """Mean of the members' predictions."""
        return np.mean([m.predict(X) for m in self.members_], axis=0)


class AdaptiveSwitching:
    """MSuNAS adaptive switching: keep the candidate whose cross-validated Kendall τ is best in the worst case.

    Each candidate is scored on the same shuffled k folds by ``mean(τ) − std(τ)`` over folds, which prefers a
    model that ranks reliably over one that is sometimes excellent; the winner is then refitted on all data. Ties
    go to the earlier candidate. Candidates are plain (non-ensemble) models, as in MSuNAS.

    Args:
        candidates: name -> factory of an unfitted candidate, in tie-break order.
        folds: cross-validation folds; reduced to the sample count on tiny archives.
        seed: seeds the split and every candidate fit.

    Attributes:
        winner_: name of the chosen candidate.
        scores_: per candidate ``{"tau_mean", "tau_std", "score", "fold_taus"}``.
    """

    name = "as"

    def __init__(self, candidates: Mapping[str, Factory], *, folds: int = 10, seed: int = 0) -> None:
        if not candidates:
            raise ValueError("adaptive switching needs at least one candidate model")
        self.candidates = dict(candidates)
        self.folds = check_count("folds", folds, 2)
        self.seed = check_count("seed", seed, 0)

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> AdaptiveSwitching:
        """Score every candidate, then refit the winner on all data; returns ``self``."""
        x_arr, y_arr = check_xy(X, y)
        split_seed, model_seed = derive_seeds(self.seed, 2, STREAM_SWITCHING)
        splits = kfold(len(y_arr), self.folds, split_seed)
        self.scores_: dict[str, dict[str, Any]] = {}
        for name, make in self.candidates.items():
            taus = [fold_tau(y_arr[test], make(model_seed).fit(x_arr[train], y_arr[train]).predict(x_arr[test]))
                    for train, test in splits]
            mean, std = float(np.mean(taus)), float(np.std(taus))
            self.scores_[name] = {"tau_mean": mean, "tau_std": std, "score": mean - std, "fold_taus": taus}
        self.winner_ = max(self.scores_, key=lambda name: self.scores_[name]["score"])
        self.model_ = self.candidates[self.winner_](model_seed).fit(x_arr, y_arr)
        return self

    def predict(self, X: npt.ArrayLike) -> Array:
        """The winner's predictions."""
        return self.model_.predict(X)
