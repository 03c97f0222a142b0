"""Error predictors (surrogates) that guide the NAT2 search, and how well they rank architectures.

Each search iteration fits a predictor of top-1 error on the whole archive and lets the inner NSGA-II/III search on
its predictions (method.md §3.5 step 1). Only the *order* of the predictions matters to the search, so every model
is judged by Kendall τ of out-of-fold predictions, as in the thesis's predictor study (method.md §4.3).

Models, keyed by short name in :data:`SURROGATES`:

* ``lgb``: LightGBM with a Huber loss, fitted as a k-fold ensemble (the NAT2 default and the study's winner);
* ``rbf``: cubic RBF with a linear tail (MSuNAS's default, pySOT style);
* ``gp``: Gaussian process with a DotProduct + White kernel;
* ``mlp``: a scaled multi-layer perceptron with early stopping;
* ``cart``: one decision tree;
* ``e2epp``: a bag of decision trees, each on a random feature subset;
* ``as``: MSuNAS adaptive switching, which picks one of the above by cross-validated τ.

Every model takes one explicit ``seed`` and derives the seeds of its sub-models from it, so the same data, seed and
thread count give bit-identical predictions; nothing here touches a global random state. Features are built by the
caller (``SearchSpace.features``), targets are errors in [0, 1].
"""

from __future__ import annotations

import functools
import inspect
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from lightgbm import LGBMRegressor
from scipy.interpolate import RBFInterpolator
from scipy.linalg import orth
from scipy.stats import kendalltau, pearsonr, spearmanr
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import BaggingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import DotProduct, WhiteKernel
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import KFold
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor
from threadpoolctl import threadpool_limits

__all__ = [
    "DEFAULT_CANDIDATES",
    "MIN_SAMPLES",
    "SURROGATE_FORMAT",
    "StoredSurrogate",
    "load_surrogate",
    "save_surrogate",
    "SURROGATES",
    "AdaptiveSwitching",
    "FitResult",
    "KFoldEnsemble",
    "MLPSurrogate",
    "RBFSurrogate",
    "SklearnSurrogate",
    "Surrogate",
    "SurrogateSpec",
    "derive_seeds",
    "fit_surrogate",
    "make_surrogate",
    "rank_metrics",
]

MIN_SAMPLES = 5
"""Fewest samples :func:`fit_surrogate` accepts: below it no cross-validated τ means anything."""

DEFAULT_CANDIDATES = ("rbf", "cart", "mlp", "gp", "lgb")
"""Models adaptive switching chooses from: MSuNAS's rbf/cart/mlp/gp plus NAT2's lgb."""

# Sub-streams of one seed, so that e.g. an ensemble's folds and the report's cross-validation never share a split.
_STREAM_ENSEMBLE, _STREAM_SWITCHING, _STREAM_CV = 1, 2, 3

Array = npt.NDArray[np.float64]


@runtime_checkable
class Surrogate(Protocol):
    """What the search needs from a predictor: fit on the archive, then predict errors for a batch of candidates."""

    name: str

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> Surrogate:
        """Fit on features ``[n, d]`` and errors ``[n]``; returns ``self``."""
        ...

    def predict(self, X: npt.ArrayLike) -> Array:
        """Predicted errors ``[m]`` for features ``[m, d]``."""
        ...


Factory = Callable[[int], Surrogate]
"""Builds a fresh, unfitted surrogate from a seed (how ensembles and cross-validation make their members)."""


# -- inputs and seeds --------------------------------------------------------------------------------------------------


def _check_x(X: npt.ArrayLike) -> Array:
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"surrogate features must be a 2-D array [n, d], got shape {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ValueError("surrogate features contain NaN or infinite values")
    return arr


def _check_xy(X: npt.ArrayLike, y: npt.ArrayLike, min_samples: int = 2) -> tuple[Array, Array]:
    x_arr = _check_x(X)
    y_arr = np.asarray(y, dtype=np.float64)
    if y_arr.ndim != 1 or len(y_arr) != len(x_arr):
        raise ValueError(f"surrogate targets must be 1-D with one value per feature row ({len(x_arr)}), "
                         f"got shape {list(y_arr.shape)}")
    if not np.isfinite(y_arr).all():
        raise ValueError("surrogate targets contain NaN or infinite values")
    if len(y_arr) < min_samples:
        raise ValueError(f"a surrogate needs at least {min_samples} evaluated architectures to fit and "
                         f"cross-validate, got {len(y_arr)}")
    return x_arr, y_arr


def _check_count(what: str, value: int, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{what} must be an integer >= {least}, got {value!r}")
    return int(value)


def derive_seeds(seed: int, n: int, stream: int = 0) -> list[int]:
    """``n`` independent seeds from one seed and a sub-stream id.

    ``SeedSequence`` hashes ``(seed, stream)``, so neighbouring seeds or streams give unrelated children. Values
    are 31-bit because LightGBM stores its seed in a C ``int``.

    Args:
        seed: the caller's seed, >= 0.
        n: number of seeds wanted.
        stream: which sub-stream (different uses of one seed must use different streams).

    Returns:
        ``n`` integers in ``[0, 2**31)``.
    """
    _check_count("seed", seed, 0)
    state = np.random.SeedSequence([int(seed), int(stream)]).generate_state(n, dtype=np.uint32)
    return [int(s >> 1) for s in state]


def _kfold(n_samples: int, folds: int, seed: int) -> list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """Shuffled k-fold splits; ``folds`` shrinks to ``n_samples`` so tiny archives still split (leave-one-out)."""
    k = min(folds, n_samples)
    return list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros((n_samples, 1))))


# -- metrics -----------------------------------------------------------------------------------------------------------


def rank_metrics(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> dict[str, float]:
    """How well predictions order and fit true errors (method.md §3.5 step 5).

    Kendall τ (tau-b, as scipy and the reference compute it) is the headline number because the search only ranks
    candidates. Correlations are NaN when either side has fewer than two distinct values: a constant predictor
    carries no ranking information, and scipy would only warn.

    Args:
        y_true: measured errors ``[n]``.
        y_pred: predicted errors ``[n]``.

    Returns:
        ``{"kendall_tau", "spearman", "pearson", "rmse"}`` as Python floats.

    Raises:
        ValueError: on mismatched or empty inputs.
    """
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if len(t) != len(p) or len(t) == 0:
        raise ValueError(f"rank_metrics: expected two equally long non-empty vectors, got {len(t)} and {len(p)}")
    nan = float("nan")
    varied = np.ptp(t) > 0 and np.ptp(p) > 0
    return {
        "kendall_tau": float(kendalltau(t, p).statistic) if varied else nan,
        "spearman": float(spearmanr(t, p).statistic) if varied else nan,
        "pearson": float(pearsonr(t, p).statistic) if varied else nan,
        "rmse": float(root_mean_squared_error(t, p)),
    }


def _tau(y_true: Array, y_pred: Array) -> float:
    """Kendall τ of one fold, 0 when undefined (a constant prediction ranks nothing, so it earns no credit)."""
    tau = rank_metrics(y_true, y_pred)["kendall_tau"]
    return 0.0 if np.isnan(tau) else tau


# -- single models -----------------------------------------------------------------------------------------------------


class SklearnSurrogate:
    """Any scikit-learn-API regressor (LightGBM's included) as a :class:`Surrogate`.

    Fitting and predicting run under ``threadpool_limits(threads)`` so BLAS/OpenMP inside scikit-learn stays within
    the run's thread budget (and results do not depend on the machine's core count). Convergence warnings are
    silenced: cross-validation fits hundreds of models per iteration, and their quality is measured by τ anyway.

    Args:
        name: registry name reported for this model.
        estimator: an unfitted regressor with ``fit``/``predict``.
        threads: CPU threads it may use.
    """

    def __init__(self, name: str, estimator: Any, threads: int = 1) -> None:
        self.name = name
        self.estimator = estimator
        self.threads = _check_count("threads", threads, 1)

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> SklearnSurrogate:
        """Fit the wrapped estimator; returns ``self``."""
        x_arr, y_arr = _check_xy(X, y)
        with warnings.catch_warnings(), threadpool_limits(limits=self.threads):
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.estimator.fit(x_arr, y_arr)
        return self

    def predict(self, X: npt.ArrayLike) -> Array:
        """Predicted errors as a 1-D float64 array."""
        with threadpool_limits(limits=self.threads):
            return np.asarray(self.estimator.predict(_check_x(X)), dtype=np.float64).ravel()


class MLPSurrogate(SklearnSurrogate):
    """A multi-layer perceptron on standardised inputs and targets, with early stopping on a held-out tenth.

    Genes span 0..63 and errors a few hundredths, neither of which suits Adam's defaults, hence the scaling on both
    sides. Early stopping scores R² on its validation split, which needs at least two rows, so archives under
    :attr:`MIN_EARLY_STOP` samples (only seen inside cross-validation of tiny archives) train for ``max_iter``.

    Args:
        seed: seeds the weights, the batches and the early-stopping split.
        threads: CPU threads BLAS may use.
        hidden: hidden layer widths.
        max_iter: most training epochs.
    """

    name = "mlp"
    MIN_EARLY_STOP = 20

    def __init__(self, seed: int, threads: int = 1, hidden: Sequence[int] = (100, 100), max_iter: int = 500) -> None:
        net = MLPRegressor(hidden_layer_sizes=tuple(hidden), early_stopping=True, validation_fraction=0.1,
                           max_iter=max_iter, random_state=seed)
        scaled = TransformedTargetRegressor(regressor=make_pipeline(StandardScaler(), net),
                                            transformer=StandardScaler())
        super().__init__(self.name, scaled, threads)

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> MLPSurrogate:
        """Fit, with early stopping only when the validation split can hold two rows; returns ``self``."""
        stop = len(np.asarray(y)) >= self.MIN_EARLY_STOP
        self.estimator.set_params(regressor__mlpregressor__early_stopping=stop)
        super().fit(X, y)
        return self


class RBFSurrogate:
    """Cubic radial-basis interpolant with a linear polynomial tail (MSuNAS's pySOT ``RBFInterpolant``).

    A linear tail needs a full-rank ``[1, X]`` matrix, which genome features never give: one-hot blocks sum to one
    and fixed genes (a single width) are constant. The points are therefore expressed in an orthonormal basis of
    their own centred span. That rotation keeps every pairwise distance, so the RBF part is unchanged, and it makes
    the tail exactly the linear model the data can support.

    Args:
        smoothing: added to the kernel diagonal; > 0 tolerates duplicate genomes (pySOT's ``eta`` is 1e-6).
        threads: CPU threads the linear solve may use.
    """

    name = "rbf"

    def __init__(self, smoothing: float = 1e-6, threads: int = 1) -> None:
        if not smoothing >= 0:
            raise ValueError(f"rbf smoothing must be >= 0, got {smoothing!r}")
        self.smoothing = float(smoothing)
        self.threads = _check_count("threads", threads, 1)

    def _project(self, X: Array) -> Array:
        return (X - self.center_) @ self.basis_

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> RBFSurrogate:
        """Interpolate (or, with smoothing, nearly interpolate) the archive; returns ``self``."""
        x_arr, y_arr = _check_xy(X, y)
        self.center_ = x_arr.mean(axis=0)
        self.basis_ = orth((x_arr - self.center_).T)
        with threadpool_limits(limits=self.threads):
            self.rbf_ = RBFInterpolator(self._project(x_arr), y_arr, kernel="cubic", degree=1,
                                        smoothing=self.smoothing)
        return self

    def predict(self, X: npt.ArrayLike) -> Array:
        """Interpolated errors; directions the archive never varied in are ignored."""
        x_arr = _check_x(X)
        if x_arr.shape[1] != len(self.center_):
            raise ValueError(f"rbf: fitted on {len(self.center_)} features, got {x_arr.shape[1]}")
        with threadpool_limits(limits=self.threads):
            return np.asarray(self.rbf_(self._project(x_arr)), dtype=np.float64)


# -- composites --------------------------------------------------------------------------------------------------------


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
        self.folds = _check_count("folds", folds, 2)
        self.seed = _check_count("seed", seed, 0)

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> KFoldEnsemble:
        """Fit one member per fold; returns ``self``."""
        x_arr, y_arr = _check_xy(X, y)
        split_seed, *member_seeds = derive_seeds(self.seed, self.folds + 1, _STREAM_ENSEMBLE)
        splits = _kfold(len(y_arr), self.folds, split_seed)
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
        self.folds = _check_count("folds", folds, 2)
        self.seed = _check_count("seed", seed, 0)

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> AdaptiveSwitching:
        """Score every candidate, then refit the winner on all data; returns ``self``."""
        x_arr, y_arr = _check_xy(X, y)
        split_seed, model_seed = derive_seeds(self.seed, 2, _STREAM_SWITCHING)
        splits = _kfold(len(y_arr), self.folds, split_seed)
        self.scores_: dict[str, dict[str, Any]] = {}
        for name, make in self.candidates.items():
            taus = [_tau(y_arr[test], make(model_seed).fit(x_arr[train], y_arr[train]).predict(x_arr[test]))
                    for train, test in splits]
            mean, std = float(np.mean(taus)), float(np.std(taus))
            self.scores_[name] = {"tau_mean": mean, "tau_std": std, "score": mean - std, "fold_taus": taus}
        self.winner_ = max(self.scores_, key=lambda name: self.scores_[name]["score"])
        self.model_ = self.candidates[self.winner_](model_seed).fit(x_arr, y_arr)
        return self

    def predict(self, X: npt.ArrayLike) -> Array:
        """The winner's predictions."""
        return self.model_.predict(X)


# -- registry ----------------------------------------------------------------------------------------------------------


def _lgb(seed: int, threads: int) -> Surrogate:
    # Huber loss and otherwise LightGBM defaults, as the reference; deterministic + row-wise for bit-reproducibility.
    return SklearnSurrogate("lgb", LGBMRegressor(objective="huber", deterministic=True, force_row_wise=True,
                                                 random_state=seed, n_jobs=threads, verbose=-1), threads)


def _rbf(seed: int, threads: int, smoothing: float = 1e-6) -> Surrogate:
    del seed  # the interpolant is deterministic
    return RBFSurrogate(smoothing=smoothing, threads=threads)


def _gp(seed: int, threads: int) -> Surrogate:
    # A linear-kernel GP is Bayesian linear regression with a fitted noise level; normalize_y since errors sit
    # in a narrow band far from 0.
    gp = GaussianProcessRegressor(kernel=DotProduct() + WhiteKernel(), normalize_y=True, random_state=seed)
    return SklearnSurrogate("gp", gp, threads)


def _mlp(seed: int, threads: int, hidden: Sequence[int] = (100, 100), max_iter: int = 500) -> Surrogate:
    return MLPSurrogate(seed, threads, hidden=hidden, max_iter=max_iter)


def _cart(seed: int, threads: int) -> Surrogate:
    return SklearnSurrogate("cart", DecisionTreeRegressor(random_state=seed), threads)


def _e2epp(seed: int, threads: int, n_estimators: int = 1000, max_features: float = 0.5) -> Surrogate:
    # e2epp: many unpruned trees, each on a bootstrap of the rows and a random half of the genes.
    bag = BaggingRegressor(DecisionTreeRegressor(), n_estimators=n_estimators, max_features=max_features,
                           bootstrap=True, bootstrap_features=False, random_state=seed, n_jobs=threads)
    return SklearnSurrogate("e2epp", bag, threads)


def _as(seed: int, threads: int, folds: int, candidates: Sequence[str] = DEFAULT_CANDIDATES) -> Surrogate:
    names = list(candidates)
    unknown = [c for c in names if c not in SURROGATES or SURROGATES[c].nested]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"adaptive switching candidates must be distinct names among "
                         f"{sorted(n for n, s in SURROGATES.items() if not s.nested)}, got {names}")

    # partials of module-level functions (not closures) keep fitted models picklable: stages save them to disk
    return AdaptiveSwitching({c: functools.partial(_make_single, c, threads) for c in names}, folds=folds,
                             seed=seed)


def _make_single(name: str, threads: int, seed: int) -> Surrogate:
    return make_surrogate(name, seed=seed, threads=threads, ensemble=False)


def _build(name: str, threads: int, kwargs: Mapping[str, Any], seed: int) -> Surrogate:
    return SURROGATES[name].build(seed, threads, **kwargs)


@dataclass(frozen=True)
class SurrogateSpec:
    """One registry entry.

    Attributes:
        build: ``build(seed, threads, **params)`` (plus ``folds`` when ``nested``) -> an unfitted model.
        ensemble: whether the model is fitted as a :class:`KFoldEnsemble` unless the caller says otherwise.
        nested: the model runs its own cross-validation, so it takes ``folds`` and cannot be a switching candidate.
    """

    build: Callable[..., Surrogate]
    ensemble: bool = False
    nested: bool = False


SURROGATES: Mapping[str, SurrogateSpec] = MappingProxyType({
    "lgb": SurrogateSpec(_lgb, ensemble=True),
    "rbf": SurrogateSpec(_rbf),
    "gp": SurrogateSpec(_gp),
    "mlp": SurrogateSpec(_mlp),
    "cart": SurrogateSpec(_cart),
    "e2epp": SurrogateSpec(_e2epp),
    "as": SurrogateSpec(_as, nested=True),
})
"""Every surrogate by short name (read-only: the set of models is fixed by this module)."""


def make_surrogate(
    name: str,
    *,
    seed: int,
    threads: int = 1,
    folds: int = 10,
    ensemble: bool | None = None,
    params: Mapping[str, Any] | None = None,
) -> Surrogate:
    """An unfitted surrogate by registry name.

    Args:
        name: a key of :data:`SURROGATES`.
        seed: the only source of randomness of the model and all its sub-models.
        threads: CPU threads it may use.
        folds: k of the k-fold ensemble and of adaptive switching's model selection.
        ensemble: fit as a :class:`KFoldEnsemble`; ``None`` takes the model's default (only ``lgb`` is).
        params: model hyper-parameters (e.g. ``{"smoothing": 1e-3}`` for rbf, ``{"candidates": [...]}`` for as).

    Returns:
        A model following :class:`Surrogate`.

    Raises:
        ValueError: on an unknown name, an unknown hyper-parameter or a bad count.
    """
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; known: {sorted(SURROGATES)}")
    spec = SURROGATES[name]
    seed = _check_count("seed", seed, 0)
    threads = _check_count("threads", threads, 1)
    folds = _check_count("folds", folds, 2)
    kwargs = dict(params or {})
    if "folds" in kwargs:
        raise ValueError(f"surrogate {name!r}: pass folds as the folds argument, not in params")
    if spec.nested:
        kwargs["folds"] = folds
    try:  # members are built lazily, so check the hyper-parameter names now, where the caller can act on it
        inspect.signature(spec.build).bind(seed, threads, **kwargs)
    except TypeError as exc:
        raise ValueError(f"surrogate {name!r}: bad params {sorted(params or {})}: {exc}") from None

    single = functools.partial(_build, name, threads, kwargs)
    if spec.ensemble if ensemble is None else ensemble:
        return KFoldEnsemble(single, name, folds=folds, seed=seed)
    return single(seed)


# -- fitting with a report ---------------------------------------------------------------------------------------------


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
        name: a key of :data:`SURROGATES`.
        X: features ``[n, d]`` (integer genomes or one-hot, built by the caller).
        y: top-1 errors ``[n]``.
        seed: the only source of randomness; the returned model is ``make_surrogate(name, seed=seed, ...)`` fitted.
        threads: CPU threads each fit may use.
        folds: k of the cross-validation (and of the ensemble / switching inside it); at most ``n``.
        ensemble: see :func:`make_surrogate`.
        params: see :func:`make_surrogate`.

    Returns:
        The fitted model, and a report ``{"model", "ensemble", "winner", "candidates", "kendall_tau", "spearman",
        "pearson", "rmse", "folds", "n", "seed"}``: ``winner``/``candidates`` (each candidate's τ mean, std and
        score on all data) are ``None`` except for ``as``; undefined correlations are ``None``.

    Raises:
        ValueError: on fewer than :data:`MIN_SAMPLES` samples, bad shapes or non-finite values, or an unknown name.
    """
    x_arr, y_arr = _check_xy(X, y, MIN_SAMPLES)

    def make(s: int) -> Surrogate:
        return make_surrogate(name, seed=s, threads=threads, folds=folds, ensemble=ensemble, params=params)

    model = make(seed).fit(x_arr, y_arr)
    split_seed, *fold_seeds = derive_seeds(seed, folds + 1, _STREAM_CV)
    splits = _kfold(len(y_arr), folds, split_seed)
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


# -- storage (no pickle) -----------------------------------------------------------------------------------------------

#: tag of the surrogate file format; bump when its fields change so old files are refused clearly
SURROGATE_FORMAT = "nat2-surrogate/1"


@dataclass(frozen=True)
class StoredSurrogate:
    """A surrogate file's recipe and data: enough to rebuild the fitted model exactly.

    A fitted model is a function of (registry name, seed, threads, folds, features, targets) and nothing else,
    so the file stores those as plain JSON and :func:`load_surrogate` refits; a pickle would run whatever code a
    tampered file names. The training-set predictions are stored too, and the refit must reproduce them, so a
    library upgrade that changes the model is caught instead of silently predicting differently.
    """

    model: str
    seed: int
    threads: int
    folds: int
    encoding: str
    features: Array
    targets: Array
    predictions: Array

    def payload(self) -> dict[str, Any]:
        """The file's JSON content, without its digest."""
        return {"format": SURROGATE_FORMAT, "model": self.model, "seed": self.seed, "threads": self.threads,
                "folds": self.folds, "encoding": self.encoding, "features": self.features.tolist(),
                "targets": self.targets.tolist(), "predictions": self.predictions.tolist()}


def _digest(payload: Mapping[str, Any]) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def save_surrogate(path: str | os.PathLike[str], result: FitResult, X: npt.ArrayLike, y: npt.ArrayLike, *,
                   encoding: str, threads: int, folds: int) -> StoredSurrogate:
    """Write a fitted surrogate (see :class:`StoredSurrogate`) as JSON with a sha256 digest, atomically."""
    from nat2.io import write_json

    x_arr, y_arr = _check_xy(X, y, MIN_SAMPLES)
    stored = StoredSurrogate(result.report["model"], int(result.report["seed"]), int(threads), int(folds), encoding,
                             x_arr, y_arr, np.asarray(result.model.predict(x_arr), dtype=np.float64))
    payload = stored.payload()
    write_json(path, {**payload, "digest": _digest(payload)})
    return stored


def load_surrogate(path: str | os.PathLike[str]) -> tuple[Surrogate, StoredSurrogate]:
    """Read a surrogate file and rebuild its fitted model (checked against the stored predictions).

    Raises:
        Nat2Error: one line naming the file and the fix when it is missing, not JSON, of another format, damaged
            (digest), incomplete, or when the refit no longer reproduces the stored predictions.
    """
    import json
    from pathlib import Path

    from nat2.errors import Nat2Error

    p = Path(path)
    fix = "rerun fit_surrogate"
    try:
        data = json.loads(p.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise Nat2Error(f"surrogate file {p} not found; {fix}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise Nat2Error(f"surrogate file {p} is not a nat2 surrogate (unreadable JSON: {type(exc).__name__}); "
                        f"{fix}") from None
    if not isinstance(data, dict) or data.get("format") != SURROGATE_FORMAT:
        raise Nat2Error(f"{p} is not a {SURROGATE_FORMAT} surrogate file; {fix}")
    digest = data.pop("digest", None)
    if digest != _digest(data):
        raise Nat2Error(f"surrogate file {p} fails its digest check (edited or damaged); {fix}")
    try:
        stored = StoredSurrogate(str(data["model"]), int(data["seed"]), int(data["threads"]), int(data["folds"]),
                                 str(data["encoding"]), _check_x(data["features"]),
                                 np.asarray(data["targets"], dtype=np.float64),
                                 np.asarray(data["predictions"], dtype=np.float64))
        model = make_surrogate(stored.model, seed=stored.seed, threads=stored.threads, folds=stored.folds)
        model.fit(stored.features, stored.targets)
    except (KeyError, TypeError, ValueError) as exc:
        raise Nat2Error(f"surrogate file {p} holds no usable model ({type(exc).__name__}: {exc}); {fix}") from None
    again = model.predict(stored.features)
    if again.shape != stored.predictions.shape or not np.allclose(again, stored.predictions, rtol=0, atol=1e-9):
        raise Nat2Error(f"surrogate file {p}: refitting does not reproduce its predictions (another library version "
                        f"or thread count?); {fix}")
    return model, stored
