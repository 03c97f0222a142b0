"""Adaptation's gene distribution: only active genes count, sampled marginals and depths follow the archive."""

from __future__ import annotations

import numpy as np
import pytest

from nat2.search.adapt import adaptation_sampler
from nat2.search.distribution import gene_distribution, sample_from_distribution
from nat2.space import SearchSpace
from nat2.space.macro import MAX_DEPTH, N_STAGES

SPACE = SearchSpace("ee_dense", (24, 28, 32), (1.0, 1.2))


def _stage_codes(space: SearchSpace, G: np.ndarray, stage: int) -> np.ndarray:
    start = space.layer_offset + stage * MAX_DEPTH
    return G[:, start:start + MAX_DEPTH]


def _depths(space: SearchSpace, G: np.ndarray, stage: int) -> np.ndarray:
    return (_stage_codes(space, G, stage) > 0).sum(axis=1)


def _archive(rng: np.random.Generator, n: int = 400) -> np.ndarray:
    """Three quarters exit before stage 5 (stage 5 then holds filler); exit-5 rows have stage-5 depth 2/3/4."""
    G = rng.integers(SPACE.lower_bound(), SPACE.upper_bound() + 1, size=(n, SPACE.n_var))
    depth = rng.integers(2, MAX_DEPTH + 1, size=(n, N_STAGES, 1))
    layers = G[:, SPACE.layer_offset:].reshape(n, N_STAGES, MAX_DEPTH)
    layers[...] = np.where(np.arange(MAX_DEPTH)[None, None, :] < depth, np.maximum(layers, 1), 0)
    G[:, SPACE.layer_offset:] = layers.reshape(n, -1)
    G[:, SPACE.exit_gene] = np.where(np.arange(n) % 4 == 0, 4, rng.integers(0, 4, size=n))
    return SPACE.repair(G, "fill")


def test_active_genes_skip_exit_filler_and_trailing_layers() -> None:
    g = SPACE.max_genome()
    g[SPACE.exit_gene] = 1  # exit 2
    off = SPACE.layer_offset
    g[off:off + 2 * MAX_DEPTH] = [9, 9, 9, 0, 9, 9, 0, 0]  # stage depths 3 and 2
    g = SPACE.repair(g)
    active = SPACE.active_genes(g)
    assert active[:SPACE.layer_offset].all()
    layers = active[SPACE.layer_offset:].reshape(N_STAGES, MAX_DEPTH)
    # stage 0 has depth 3: layers 1-3 decide, layer 4 too (it decides depth 4 vs 3); stage 1 depth 2: layer 4
    # follows a zero, so only layers 1-3 are active; stages 2.. are not run with exit 2
    assert layers[0].tolist() == [True, True, True, True]
    assert layers[1].tolist() == [True, True, True, False]
    assert not layers[2:].any()


def test_gene_distribution_counts_only_active_genes() -> None:
    G = _archive(np.random.default_rng(0))
    dists = gene_distribution(SPACE, G, smoothing=0.0)
    lb = SPACE.lower_bound()
    active = SPACE.active_genes(G)
    for g in range(SPACE.n_var):
        vals = G[active[:, g], g] - lb[g]
        expected = np.bincount(vals, minlength=len(dists[g])) / len(vals)
        np.testing.assert_allclose(dists[g], expected, atol=1e-12)
    # stage 5's first layer: counted over the exit-5 rows only, so it is near uniform over 9 codes, not the
    # filler's code 1 (the old count gave P(code 1) ~ 0.75 here)
    first = SPACE.layer_offset + 4 * MAX_DEPTH
    assert dists[first][0] < 0.25


def test_sampled_marginals_equal_active_gene_frequencies() -> None:
    G = _archive(np.random.default_rng(1))
    dists = gene_distribution(SPACE, G, smoothing=0.5)
    n = 20000
    S = sample_from_distribution(SPACE, dists, n, np.random.default_rng(2))
    assert SPACE.is_canonical(S).all()
    active = SPACE.active_genes(S)
    lb = SPACE.lower_bound()
    for g in range(SPACE.n_var):
        vals = S[active[:, g], g] - lb[g]
        m = len(vals)
        assert m > 500
        freq = np.bincount(vals, minlength=len(dists[g])) / m
        sigma = np.sqrt(dists[g] * (1 - dists[g]) / m)
        assert np.all(np.abs(freq - dists[g]) <= 5 * sigma + 1e-3), f"gene {SPACE.gene_names()[g]}"


def test_stage_depth_is_not_biased_by_exits() -> None:
    G = _archive(np.random.default_rng(3))
    exit5 = G[:, SPACE.exit_gene] == N_STAGES - 1
    target = np.bincount(_depths(SPACE, G[exit5], 4), minlength=5)[2:] / exit5.sum()
    S = sample_from_distribution(SPACE, gene_distribution(SPACE, G, 0.0), 30000, np.random.default_rng(4))
    s5 = S[S[:, SPACE.exit_gene] == N_STAGES - 1]
    got = np.bincount(_depths(SPACE, s5, 4), minlength=5)[2:] / len(s5)
    sigma = np.sqrt(target * (1 - target) / len(s5))
    assert np.all(np.abs(got - target) <= 5 * sigma), (got, target)
    # and the exit itself keeps its archive frequency
    assert abs(len(s5) / len(S) - exit5.mean()) < 5 * np.sqrt(0.25 * 0.75 / len(S))


def test_adaptation_sampler_draws_the_width_from_the_distribution() -> None:
    G = _archive(np.random.default_rng(5))
    G[:, 1] = np.where(np.arange(len(G)) % 5 == 0, 0, 1)  # 20 % width 1.0, 80 % width 1.2
    dists = gene_distribution(SPACE, G, 0.0)
    narrow, wide = adaptation_sampler(SPACE, dists), adaptation_sampler(SPACE, dists)
    draws = 4000
    n_narrow = 0
    for k in range(draws):
        a = narrow(np.random.default_rng(k), 1.0, 28)
        b = wide(np.random.default_rng(k), 1.2, 28)
        assert (a is None) != (b is None), "each draw belongs to exactly one width's super-net"
        arch = a if a is not None else b
        assert arch.resolution == 28
        n_narrow += a is not None
    assert n_narrow / draws == pytest.approx(0.2, abs=5 * np.sqrt(0.16 / draws))
