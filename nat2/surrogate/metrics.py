"""How well predictions rank architectures: the numbers every surrogate is judged by.

Only the *order* of the predictions matters to the search, so the headline metric is Kendall τ of out-of-fold
predictions, as in the thesis's predictor study (method.md §4.3).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.stats import kendalltau, pearsonr, spearmanr
from sklearn.metrics import root_mean_squared_error

from nat2.surrogate.base import Array

__all__ = ["fold_tau", "rank_metrics"]


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


def fold_tau(y_true: Array, y_pred: Array) -> float:
    """Kendall τ of one fold, 0 when undefined (a constant prediction ranks nothing, so it earns no credit)."""
    tau = rank_metrics(y_true, y_pred)["kendall_tau"]
    return 0.0 if np.isnan(tau) else tau
