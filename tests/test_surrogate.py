"""Surrogate models on a synthetic, NAS-like error landscape over the ee_dense genome space."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nat2.space import SearchSpace
from nat2.surrogate import (
    DEFAULT_CANDIDATES,
    MIN_SAMPLES,
    SURROGATES,
    AdaptiveSwitching,
    KFoldEnsemble,
    Surrogate,
    derive_seeds,
    fit_surrogate,
    make_surrogate,
    rank_metrics,
)

SPACE = SearchSpace("ee_dense", (24, 28, 32), (1.0,))
N_TRAIN = 300
# Keep the slow models light: the point here is the plumbing, not their best accuracy.
FAST = {"e2epp": {"n_estimators": 50}}


def hidden_error(space: SearchSpace, genomes: np.ndarray) -> np.ndarray:
    """A smooth error: saturating in the capacity of the layers that run, lower at higher resolution and exit."""
    errors = []
    for arch, genome in zip(space.decode_many(genomes), genomes, strict=True):
        capacity = sum(
            (1.0 + 0.2 * (i // 4)) * (arch.expand_ratios[i] / 6) ** 1.5 * (0.5 + 0.5 * arch.kernel_sizes[i] / 7)
            for i in range(4 * arch.exit)
            if arch.kernel_sizes[i]
        )
        errors.append(0.1 + 0.3 * np.exp(-capacity / 6) + 0.05 * np.exp(-arch.exit) - 0.02 * genome[0]
                      + 0.01 * np.sin(capacity))
    return np.array(errors)


@pytest.fixture(scope="module")
def problem() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    genomes = SPACE.sample(rng, 400)
    return genomes, hidden_error(SPACE, genomes) + rng.normal(0.0, 0.01, len(genomes))


def split(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


@pytest.mark.parametrize("encoding", ["integer", "one_hot"])
@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_every_model_fits_predicts_and_ranks(problem, name, encoding):
    genomes, y = problem
    X_train, y_train, X_test, y_test = split(SPACE.features(genomes, encoding), y)
    model = make_surrogate(name, seed=0, folds=3 if name == "as" else 10, params=FAST.get(name))
    assert isinstance(model, Surrogate) and model.name == name
    assert model.fit(X_train, y_train) is model
    pred = model.predict(X_test)
    assert pred.shape == (len(y_test),) and pred.dtype == np.float64 and np.isfinite(pred).all()
    assert rank_metrics(y_test, pred)["kendall_tau"] > 0.5


def test_lgb_ensemble_beats_the_best_single_gene(problem):
    genomes, y = problem
    X_train, y_train, X_test, y_test = split(SPACE.features(genomes), y)
    model = make_surrogate("lgb", seed=0).fit(X_train, y_train)
    assert isinstance(model, KFoldEnsemble) and len(model.members_) == 10
    tau = rank_metrics(y_test, model.predict(X_test))["kendall_tau"]
    single = [abs(rank_metrics(y_test, col)["kendall_tau"]) for col in X_test.T if np.ptp(col) > 0]
    assert tau >= 0.5
    assert tau > max(single) + 0.05


def test_fit_surrogate_reports_out_of_fold_metrics(problem):
    genomes, y = problem
    X, y = SPACE.features(genomes)[:N_TRAIN], y[:N_TRAIN]
    result = fit_surrogate("lgb", X, y, seed=0, folds=5)
    report = result.report
    json.dumps(report, allow_nan=False)
    assert report["model"] == "lgb" and report["ensemble"] is True
    assert report["winner"] is None and report["candidates"] is None
    assert report["folds"] == 5 and report["n"] == N_TRAIN and report["seed"] == 0
    assert result.oof.shape == (N_TRAIN,)
    assert report["kendall_tau"] == pytest.approx(rank_metrics(y, result.oof)["kendall_tau"])
    assert report["kendall_tau"] > 0.5 and 0 < report["rmse"] < np.std(y)
    assert len(result.model.members_) == 5
    plain = fit_surrogate("cart", X, y, seed=0, folds=5, ensemble=False).report
    assert plain["ensemble"] is False


def test_adaptive_switching_picks_a_winner_and_lists_every_candidate(problem):
    genomes, y = problem
    X, y = SPACE.features(genomes)[:150], y[:150]
    result = fit_surrogate("as", X, y, seed=0, folds=3)
    report = result.report
    json.dumps(report, allow_nan=False)
    assert isinstance(result.model, AdaptiveSwitching)
    assert list(report["candidates"]) == list(DEFAULT_CANDIDATES)
    assert report["winner"] in DEFAULT_CANDIDATES
    scores = {name: c["score"] for name, c in report["candidates"].items()}
    assert scores[report["winner"]] == max(scores.values())
    for c in report["candidates"].values():
        assert c["score"] == pytest.approx(c["tau_mean"] - c["tau_std"]) and -1 <= c["tau_mean"] <= 1
    assert report["kendall_tau"] > 0.5

    chosen = make_surrogate("as", seed=0, folds=3, params={"candidates": ["cart", "rbf"]}).fit(X, y)
    assert list(chosen.scores_) == ["cart", "rbf"] and chosen.winner_ in ("cart", "rbf")
    assert chosen.model_.name == chosen.winner_


@pytest.mark.parametrize(("name", "folds"), [("lgb", 10), ("as", 3)])
def test_same_seed_gives_bit_identical_predictions(problem, name, folds):
    genomes, y = problem
    X_train, y_train, X_test, _ = split(SPACE.features(genomes), y)
    first, second, other = (make_surrogate(name, seed=s, folds=folds).fit(X_train, y_train) for s in (7, 7, 8))
    assert np.array_equal(first.predict(X_test), second.predict(X_test))
    assert not np.array_equal(first.predict(X_test), other.predict(X_test))
    if name == "as":
        assert first.winner_ == second.winner_ and first.scores_ == second.scores_


def test_fit_surrogate_is_deterministic(problem):
    genomes, y = problem
    X, y = SPACE.features(genomes)[:120], y[:120]
    a, b = (fit_surrogate("lgb", X, y, seed=1, folds=4) for _ in range(2))
    assert a.report == b.report and np.array_equal(a.oof, b.oof)
    assert np.array_equal(a.model.predict(X), b.model.predict(X))


def test_small_archives(problem):
    genomes, y = problem
    X = SPACE.features(genomes)
    report = fit_surrogate("lgb", X[:7], y[:7], seed=0, folds=10).report
    assert report["folds"] == 7 and report["n"] == 7
    with pytest.raises(ValueError, match=f"at least {MIN_SAMPLES}"):
        fit_surrogate("lgb", X[:MIN_SAMPLES - 1], y[:MIN_SAMPLES - 1], seed=0)


def test_bad_inputs_are_rejected(problem):
    genomes, y = problem
    X = SPACE.features(genomes)[:20]
    with pytest.raises(ValueError, match="unknown surrogate"):
        make_surrogate("xgb", seed=0)
    with pytest.raises(ValueError, match="bad params"):
        make_surrogate("lgb", seed=0, params={"num_leaves": 7})
    with pytest.raises(ValueError, match="candidates"):
        make_surrogate("as", seed=0, params={"candidates": ["lgb", "as"]})
    with pytest.raises(ValueError, match="one value per feature row"):
        fit_surrogate("cart", X, y[:19], seed=0)
    with pytest.raises(ValueError, match="NaN"):
        fit_surrogate("cart", np.where(X == X[0, 0], np.nan, X), y[:20], seed=0)
    with pytest.raises(ValueError, match="2-D"):
        make_surrogate("cart", seed=0).fit(X, y[:20]).predict(X[0])
    with pytest.raises(TypeError):
        SURROGATES["mine"] = SURROGATES["lgb"]  # the registry is read-only


def test_rank_metrics_by_hand():
    metrics = rank_metrics([0.1, 0.2, 0.3, 0.4], [0.1, 0.3, 0.2, 0.4])
    # 5 concordant and 1 discordant pair; rank differences (0, 1, 1, 0); errors (0, .1, .1, 0).
    assert metrics["kendall_tau"] == pytest.approx(4 / 6)
    assert metrics["spearman"] == pytest.approx(1 - 6 * 2 / (4 * 15))
    assert metrics["pearson"] == pytest.approx(0.8)
    assert metrics["rmse"] == pytest.approx(np.sqrt(0.02 / 4))
    flat = rank_metrics([0.1, 0.2, 0.3], [0.2, 0.2, 0.2])
    assert np.isnan(flat["kendall_tau"]) and flat["rmse"] == pytest.approx(np.sqrt(0.02 / 3))
    with pytest.raises(ValueError):
        rank_metrics([0.1, 0.2], [0.1])


def test_derived_seeds_are_stable_and_separate():
    assert derive_seeds(5, 3) == derive_seeds(5, 3)
    assert derive_seeds(5, 3)[:2] == derive_seeds(5, 2)
    assert derive_seeds(5, 3) != derive_seeds(5, 3, stream=1) != derive_seeds(6, 3)
    assert all(0 <= s < 2**31 for s in derive_seeds(2**32 - 1, 50))


def test_min_fittable_archive_is_the_real_minimum() -> None:
    """The validator's smallest archive fits every surrogate, one fewer does not (where the fold arithmetic binds)."""
    from nat2.config import NESTED_CV_SURROGATES, min_fittable_archive
    from nat2.surrogate import MIN_SAMPLES, SURROGATES, fit_surrogate

    assert set(NESTED_CV_SURROGATES) == {n for n, s in SURROGATES.items() if s.ensemble or s.nested}
    rng = np.random.default_rng(0)
    for name in SURROGATES:
        for folds in (2, 3, 10):
            n = min_fittable_archive(name, folds)
            X, y = rng.integers(0, 9, (n, 23)).astype(float), rng.random(n)
            fit_surrogate(name, X, y, seed=0, folds=folds)
            if n - 1 >= MIN_SAMPLES:
                with pytest.raises(ValueError):
                    fit_surrogate(name, X[:-1], y[:-1], seed=0, folds=folds)
