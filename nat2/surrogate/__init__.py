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

The package, by idea: :mod:`~nat2.surrogate.base` (the :class:`Surrogate` protocol, input checks, seeds),
:mod:`~nat2.surrogate.metrics` (rank metrics), :mod:`~nat2.surrogate.models` (one class per predictor),
:mod:`~nat2.surrogate.composite` (k-fold ensemble, adaptive switching), :mod:`~nat2.surrogate.registry`
(:data:`SURROGATES`, :func:`make_surrogate`), :mod:`~nat2.surrogate.fit` (:func:`fit_surrogate` with its
cross-validated report) and :mod:`~nat2.surrogate.storage` (pickle-free model files). Adding a predictor is one
class in ``models`` plus one line in ``SURROGATES``.

Every model takes one explicit ``seed`` and derives the seeds of its sub-models from it, so the same data, seed and
thread count give bit-identical predictions; nothing here touches a global random state. Features are built by the
caller (``SearchSpace.features``), targets are errors in [0, 1].
"""

from __future__ import annotations

from nat2.surrogate.base import MIN_SAMPLES, Surrogate, derive_seeds
from nat2.surrogate.composite import AdaptiveSwitching, KFoldEnsemble
from nat2.surrogate.fit import FitResult, fit_surrogate
from nat2.surrogate.metrics import rank_metrics
from nat2.surrogate.models import (
    CARTSurrogate,
    E2EPPSurrogate,
    GPSurrogate,
    LightGBMSurrogate,
    MLPSurrogate,
    RBFSurrogate,
    SklearnSurrogate,
)
from nat2.surrogate.registry import DEFAULT_CANDIDATES, SURROGATES, SurrogateSpec, make_surrogate
from nat2.surrogate.storage import SURROGATE_FORMAT, StoredSurrogate, load_surrogate, save_surrogate

__all__ = [
    "DEFAULT_CANDIDATES",
    "MIN_SAMPLES",
    "SURROGATES",
    "SURROGATE_FORMAT",
    "AdaptiveSwitching",
    "CARTSurrogate",
    "E2EPPSurrogate",
    "FitResult",
    "GPSurrogate",
    "KFoldEnsemble",
    "LightGBMSurrogate",
    "MLPSurrogate",
    "RBFSurrogate",
    "SklearnSurrogate",
    "StoredSurrogate",
    "Surrogate",
    "SurrogateSpec",
    "derive_seeds",
    "fit_surrogate",
    "load_surrogate",
    "make_surrogate",
    "rank_metrics",
    "save_surrogate",
]
