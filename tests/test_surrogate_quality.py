"""The predictor on real data: architectures of a super-net trained on Fashion-MNIST (benchmarks/make_eval_set.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from nat2 import archive as arc
from nat2.space import SearchSpace
from nat2.surrogate import fit_surrogate

DATA = Path(__file__).parent / "data" / "eval_set.parquet"


def test_lgb_ensemble_ranks_real_architectures_better_than_macs() -> None:
    df = arc.read_archive(DATA)
    assert len(df) >= 550
    space = SearchSpace("ee_dense", (24, 28, 32), (1.0,))
    arc.check_genomes(df, space)
    X = space.features(np.stack(df["genome"].to_numpy()).astype(np.int64), "integer")
    y = df["error"].to_numpy()
    model = fit_surrogate("lgb", X[:300], y[:300], seed=0, threads=2, folds=10).model
    tau_lgb = kendalltau(y[300:], model.predict(X[300:])).statistic
    tau_macs = kendalltau(y[300:], -df["macs"].to_numpy()[300:]).statistic
    assert len(y[300:]) >= 250
    assert tau_lgb >= tau_macs + 0.05, (tau_lgb, tau_macs)
