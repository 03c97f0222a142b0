"""Iteration step 1: fit the accuracy predictor on the archive (method.md §3.5 step 1).

Features follow the policy's encoding (NAT2: integer, NAT: one-hot); the model file is JSON with its training data
and predictions (never a pickle) and the report holds the cross-validated rank correlations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nat2.config import SearchConfig
from nat2.io import write_json
from nat2.search.inputs import check_iteration, read_search_archive, step_seed
from nat2.search.policy import resolve_policy
from nat2.space import SearchSpace

__all__ = ["fit_surrogate_step"]


def fit_surrogate_step(search: SearchConfig, space: SearchSpace, iteration: int, archive: Path, model_out: Path,
                       report_out: Path, *, seed: int, threads: int) -> dict[str, Any]:
    """Fit the accuracy predictor on an archive; write the model file (JSON, no pickle) and its CV report."""
    from nat2.surrogate import fit_surrogate, save_surrogate

    check_iteration(search, iteration)
    pol = resolve_policy(search)
    df = read_search_archive(archive, space)
    X = space.features(np.stack(df["genome"].to_numpy()).astype(np.int64), pol.encoding)
    result = fit_surrogate(search.surrogate, X, df["error"].to_numpy(dtype=np.float64),
                           seed=step_seed(seed, "fit_surrogate", iteration), threads=threads,
                           folds=search.surrogate_folds)
    save_surrogate(model_out, result, X, df["error"].to_numpy(dtype=np.float64), encoding=pol.encoding,
                   threads=threads, folds=search.surrogate_folds)
    report = {"iteration": iteration, "encoding": pol.encoding, **result.report}
    write_json(report_out, report)
    return report
