"""What every surrogate shares: the :class:`Surrogate` protocol, input checks, and seeds derived from one seed.

Every model takes one explicit ``seed`` and derives the seeds of its sub-models from it (:func:`derive_seeds`, on
a sub-stream per use), so the same data, seed and thread count give bit-identical predictions; nothing in
:mod:`nat2.surrogate` touches a global random state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import KFold

__all__ = [
    "MIN_SAMPLES",
    "STREAM_CV",
    "STREAM_ENSEMBLE",
    "STREAM_SWITCHING",
    "Array",
    "Factory",
    "Surrogate",
    "check_count",
    "check_x",
    "check_xy",
    "derive_seeds",
    "kfold",
]

MIN_SAMPLES = 5
"""Fewest samples :func:`~nat2.surrogate.fit_surrogate` accepts: below it no cross-validated τ means anything."""

# Sub-streams of one seed, so that e.g. an ensemble's folds and the report's cross-validation never share a split.
STREAM_ENSEMBLE, STREAM_SWITCHING, STREAM_CV = 1, 2, 3

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


def check_x(X: npt.ArrayLike) -> Array:
    """Features as a finite float64 ``[n, d]`` array (ValueError otherwise)."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"surrogate features must be a 2-D array [n, d], got shape {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ValueError("surrogate features contain NaN or infinite values")
    return arr


def check_xy(X: npt.ArrayLike, y: npt.ArrayLike, min_samples: int = 2) -> tuple[Array, Array]:
    """Features and targets checked together: one finite target per row, at least ``min_samples`` rows."""
    x_arr = check_x(X)
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


def check_count(what: str, value: int, least: int) -> int:
    """``value`` as an int after checking it is an integer (not a bool) ``>= least``."""
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
    check_count("seed", seed, 0)
    state = np.random.SeedSequence([int(seed), int(stream)]).generate_state(n, dtype=np.uint32)
    return [int(s >> 1) for s in state]


def kfold(n_samples: int, folds: int, seed: int) -> list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """Shuffled k-fold splits; ``folds`` shrinks to ``n_samples`` so tiny archives still split (leave-one-out)."""
    k = min(folds, n_samples)
    return list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros((n_samples, 1))))
