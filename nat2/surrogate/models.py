"""The single predictors: one class per model, each built from ``(seed, threads, **hyper-parameters)``.

That constructor signature is the whole contract with the rest of :mod:`nat2.surrogate`: the registry
(:data:`~nat2.surrogate.SURROGATES`) maps a name to the class, ensembles and cross-validation build members from a
seed, and storage (:mod:`nat2.surrogate.storage`) refits from the name and seed. Adding a predictor is one class
here plus one registry line.

Targets are errors in [0, 1]; features are built by the caller (``SearchSpace.features``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from lightgbm import LGBMRegressor
from scipy.interpolate import RBFInterpolator
from scipy.linalg import orth
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import BaggingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import DotProduct, WhiteKernel
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor
from threadpoolctl import threadpool_limits

from nat2.surrogate.base import Array, check_count, check_x, check_xy

__all__ = [
    "CARTSurrogate",
    "E2EPPSurrogate",
    "GPSurrogate",
    "LightGBMSurrogate",
    "MLPSurrogate",
    "RBFSurrogate",
    "SklearnSurrogate",
]


class SklearnSurrogate:
    """Any scikit-learn-API regressor (LightGBM's included) as a :class:`~nat2.surrogate.Surrogate`.

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
        self.threads = check_count("threads", threads, 1)

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> SklearnSurrogate:
        """Fit the wrapped estimator; returns ``self``."""
        x_arr, y_arr = check_xy(X, y)
        with warnings.catch_warnings(), threadpool_limits(limits=self.threads):
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.estimator.fit(x_arr, y_arr)
        return self

    def predict(self, X: npt.ArrayLike) -> Array:
        """Predicted errors as a 1-D float64 array."""
        with threadpool_limits(limits=self.threads):
            return np.asarray(self.estimator.predict(check_x(X)), dtype=np.float64).ravel()


class LightGBMSurrogate(SklearnSurrogate):
    """LightGBM with a Huber loss and otherwise LightGBM's defaults, as the reference (``lgb``, NAT2's default).

    ``deterministic`` and row-wise histograms make it bit-reproducible for a seed and thread count.
    """

    name = "lgb"

    def __init__(self, seed: int, threads: int = 1) -> None:
        lgb = LGBMRegressor(objective="huber", deterministic=True, force_row_wise=True, random_state=seed,
                            n_jobs=threads, verbose=-1)
        super().__init__(self.name, lgb, threads)


class GPSurrogate(SklearnSurrogate):
    """Gaussian process with a DotProduct + White kernel (``gp``).

    A linear-kernel GP is Bayesian linear regression with a fitted noise level; ``normalize_y`` because errors sit
    in a narrow band far from 0.
    """

    name = "gp"

    def __init__(self, seed: int, threads: int = 1) -> None:
        gp = GaussianProcessRegressor(kernel=DotProduct() + WhiteKernel(), normalize_y=True, random_state=seed)
        super().__init__(self.name, gp, threads)


class CARTSurrogate(SklearnSurrogate):
    """One decision tree (``cart``)."""

    name = "cart"

    def __init__(self, seed: int, threads: int = 1) -> None:
        super().__init__(self.name, DecisionTreeRegressor(random_state=seed), threads)


class E2EPPSurrogate(SklearnSurrogate):
    """e2epp-style bag (``e2epp``): many unpruned trees, each on a bootstrap of the rows and a random half of the genes.

    Args:
        seed: seeds the bootstraps and feature subsets.
        threads: CPU threads (trees are fitted in parallel).
        n_estimators: number of trees.
        max_features: fraction of the genes each tree sees.
    """

    name = "e2epp"

    def __init__(self, seed: int, threads: int = 1, n_estimators: int = 1000, max_features: float = 0.5) -> None:
        bag = BaggingRegressor(DecisionTreeRegressor(), n_estimators=n_estimators, max_features=max_features,
                               bootstrap=True, bootstrap_features=False, random_state=seed, n_jobs=threads)
        super().__init__(self.name, bag, threads)


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
    """Cubic radial-basis interpolant with a linear polynomial tail (``rbf``, MSuNAS's pySOT ``RBFInterpolant``).

    A linear tail needs a full-rank ``[1, X]`` matrix, which genome features never give: one-hot blocks sum to one
    and fixed genes (a single width) are constant. The points are therefore expressed in an orthonormal basis of
    their own centred span. That rotation keeps every pairwise distance, so the RBF part is unchanged, and it makes
    the tail exactly the linear model the data can support.

    Args:
        seed: unused (the interpolant is deterministic); taken so every model is built the same way.
        threads: CPU threads the linear solve may use.
        smoothing: added to the kernel diagonal; > 0 tolerates duplicate genomes (pySOT's ``eta`` is 1e-6).
    """

    name = "rbf"

    def __init__(self, seed: int, threads: int = 1, smoothing: float = 1e-6) -> None:
        del seed
        if not smoothing >= 0:
            raise ValueError(f"rbf smoothing must be >= 0, got {smoothing!r}")
        self.smoothing = float(smoothing)
        self.threads = check_count("threads", threads, 1)

    def _project(self, X: Array) -> Array:
        return (X - self.center_) @ self.basis_

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> RBFSurrogate:
        """Interpolate (or, with smoothing, nearly interpolate) the archive; returns ``self``."""
        x_arr, y_arr = check_xy(X, y)
        self.center_ = x_arr.mean(axis=0)
        self.basis_ = orth((x_arr - self.center_).T)
        with threadpool_limits(limits=self.threads):
            self.rbf_ = RBFInterpolator(self._project(x_arr), y_arr, kernel="cubic", degree=1,
                                        smoothing=self.smoothing)
        return self

    def predict(self, X: npt.ArrayLike) -> Array:
        """Interpolated errors; directions the archive never varied in are ignored."""
        x_arr = check_x(X)
        if x_arr.shape[1] != len(self.center_):
            raise ValueError(f"rbf: fitted on {len(self.center_)} features, got {x_arr.shape[1]}")
        with threadpool_limits(limits=self.threads):
            return np.asarray(self.rbf_(self._project(x_arr)), dtype=np.float64)
