"""Tests of nat2.space: the macro constants, variants, Arch, and the canonical integer genome."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nat2.config import VARIANTS, SuperNetConfig
from nat2.space import (
    BRANCH_MASKS,
    N_LAYERS,
    Arch,
    SearchSpace,
    Variant,
    canonical_codes,
    exit_widths,
    layer_choice,
    layer_code,
    make_divisible,
    n_layer_codes,
    stage_widths,
    stem_width,
)

RES = (24, 28, 32)
WIDTHS = ((1.0,), (1.0, 1.2))
HYP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def space(variant: str, widths: tuple[float, ...] = (1.0, 1.2), res: tuple[int, ...] = RES) -> SearchSpace:
    return SearchSpace(Variant.from_name(variant), res, widths)


@st.composite
def raw_genomes(draw: st.DrawFn) -> tuple[SearchSpace, np.ndarray]:
    sp = space(draw(st.sampled_from(VARIANTS)), draw(st.sampled_from(WIDTHS)))
    values = draw(st.lists(st.integers(-3, sp.n_codes + 3), min_size=sp.n_var, max_size=sp.n_var))
    return sp, np.array(values)


def depths_of(sp: SearchSpace, X: np.ndarray) -> np.ndarray:
    return (X[:, sp.layer_offset:].reshape(-1, 5, 4) > 0).sum(axis=2)


# -- macro constants and variants -----------------------------------------------------------------------------------


def test_make_divisible_follows_ofa_rule():
    assert [make_divisible(v) for v in (16, 19.2, 18, 28.8, 30, 60, 84, 134.4, 1152, 1)] == [
        16, 24, 24, 32, 32, 64, 88, 136, 1152, 8]
    assert stem_width(1.2) == 24 and stage_widths(1.0) == (24, 40, 80, 112, 160)
    assert stage_widths(1.2) == (32, 48, 96, 136, 192)
    assert exit_widths(1.0, 5) == (960, 1280) and exit_widths(1.2, 5) == (1152, 1536)
    assert [exit_widths(1.0, x) for x in (1, 2, 3, 4)] == [(144, 192), (240, 320), (480, 640), (672, 896)]
    with pytest.raises(ValueError, match="exit"):
        exit_widths(1.0, 6)


def test_variant_flags():
    assert {v.name for v in map(Variant.from_name, VARIANTS)} == set(VARIANTS)
    v = Variant.from_name("ee_dense_parallel")
    assert (v.early_exit, v.dense, v.parallel) == (True, True, True)
    v = Variant.from_name("se_base")
    assert (v.early_exit, v.dense, v.parallel) == (False, False, False)
    assert Variant("se_parallel").parallel and not Variant("se_parallel").dense
    with pytest.raises(ValueError, match="unknown OFAv2 variant"):
        Variant.from_name("se_wide")


def test_layer_codes_match_reference_packing():
    assert n_layer_codes(False) == 9 and n_layer_codes(True) == 63
    assert layer_code(3, 3, 4, False) == 1 and layer_code(5, 3, 4, False) == 2 and layer_code(3, 4, 4, False) == 4
    assert layer_code(7, 6, 4, False) == 9 and layer_code(7, 6, 7, True) == 63 and layer_code(3, 3, 1, True) == 1
    for parallel in (False, True):
        for code in range(1, n_layer_codes(parallel) + 1):
            assert layer_code(*layer_choice(code, parallel), parallel) == code
    assert layer_choice(0, True) == (0, 0, 0)
    assert canonical_codes(True)[9] == 1 and canonical_codes(True)[18] == 10 and canonical_codes(True)[27] == 27
    assert canonical_codes(False) == tuple(range(10))
    with pytest.raises(ValueError, match="branch mask"):
        layer_code(3, 3, 2, False)
    with pytest.raises(ValueError, match="outside"):
        layer_choice(10, False)


# -- bounds, shapes, reference architectures ------------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "n_var", "n_codes"), [
    ("se_base", 22, 9), ("se_dense", 22, 9), ("ee_base", 23, 9), ("se_parallel", 22, 63),
    ("ee_dense_parallel", 23, 63)])
def test_bounds(variant, n_var, n_codes):
    sp = space(variant, (1.0, 1.2))
    lb, ub = sp.lower_bound(), sp.upper_bound()
    assert (sp.n_var, sp.n_codes) == (n_var, n_codes)
    assert lb.dtype == np.int64 and ub.dtype == np.int64 and lb.shape == ub.shape == (n_var,)
    head = [2, 1] + ([4] if sp.variant.early_exit else [])
    assert ub.tolist() == head + [n_codes] * 20
    assert lb.tolist() == [0] * len(head) + [1, 1, 0, 0] * 5
    assert space(variant, (1.0,)).upper_bound()[1] == 0
    lb[0] = 99  # a fresh array each call: callers cannot corrupt the space
    assert sp.lower_bound()[0] == 0


def test_from_config():
    cfg = SuperNetConfig(variant="ee_dense", width_mults=(1.0,), resolutions=(24, 28, 32), stem_stride=2,
                         init="scratch", dropout=0.1, bn_momentum=0.1, bn_eps=1e-5)
    sp = SearchSpace.from_config(cfg)
    assert sp == SearchSpace(Variant("ee_dense"), (24, 28, 32), (1.0,)) and sp.n_var == 23
    small = SearchSpace.from_config(dataclasses.replace(cfg, stem_stride=1))
    assert small.variant == Variant("ee_dense", 1) and small != sp  # the stride is part of the space
    with pytest.raises(ValueError, match="strictly increasing"):
        SearchSpace("se_base", (32, 24), (1.0,))
    with pytest.raises(ValueError, match="width_mults"):
        SearchSpace("se_base", (32,), ())


@pytest.mark.parametrize("variant", VARIANTS)
def test_min_and_max_arch(variant):
    sp = space(variant)
    lo, hi = sp.min_arch(), sp.max_arch()
    ee, par = sp.variant.early_exit, sp.variant.parallel
    assert (lo.resolution, lo.width_mult, lo.exit) == (24, 1.0, 1 if ee else None)
    assert lo.depths == (2,) * 5 and lo.kernel_sizes == (3, 3, 0, 0) * 5 and lo.expand_ratios == (3, 3, 0, 0) * 5
    assert lo.branches == ((1 if par else 4), (1 if par else 4), 0, 0) * 5
    assert (hi.resolution, hi.width_mult, hi.exit) == (32, 1.2, 5 if ee else None)
    assert hi.depths == (4,) * 5 and set(hi.kernel_sizes) == {7} and set(hi.expand_ratios) == {6}
    assert set(hi.branches) == {7 if par else 4}
    assert (sp.encode(lo) == sp.min_genome()).all() and (sp.encode(hi) == sp.max_genome()).all()
    assert sp.is_canonical(np.stack([sp.min_genome(), sp.max_genome()])).all()


# -- repair / canonical form ----------------------------------------------------------------------------------------


@HYP
@given(raw_genomes(), st.sampled_from(["fill", "push"]))
def test_genome_arch_genome_identity(case, mode):
    sp, raw = case
    g = sp.repair(raw, mode)
    assert g.dtype == np.int64 and g.shape == (sp.n_var,) and bool(sp.is_canonical(g))
    arch = sp.decode(g)
    assert (sp.encode(arch) == g).all()
    assert Arch.from_json(arch.to_json()) == arch
    assert Arch.from_ofa_dict(arch.to_ofa_dict(sp.variant.parallel), sp) == arch
    assert hash(arch) == hash(sp.decode(g.copy()))
    assert arch.stages_run == (arch.exit or 5)
    assert [i for _, _, i in arch.active_layers()] == [
        4 * s + j for s in range(arch.stages_run) for j in range(arch.depths[s])]


@HYP
@given(st.sampled_from(VARIANTS), st.sampled_from(WIDTHS), st.integers(0, 2**32 - 1), st.sampled_from(["fill", "push"]))
def test_repair_is_canonical_idempotent_and_rowwise(variant, widths, seed, mode):
    sp = space(variant, widths)
    rng = np.random.default_rng(seed)
    X = rng.uniform(-5, sp.n_codes + 5, size=(50, sp.n_var))
    R = sp.repair(X, mode)
    assert R.shape == X.shape and sp.is_canonical(R).all()
    assert (sp.repair(R, "fill") == R).all() and (sp.repair(R, "push") == R).all()
    assert (np.stack([sp.repair(x, mode) for x in X]) == R).all()
    assert not sp.is_canonical(X).any()  # fractional genes are never canonical


def g(*parts: list) -> list:
    """Concatenate genome pieces (head genes, then one list per stage)."""
    return [v for part in parts for v in part]


def test_push_vs_fill_examples():
    sp = space("se_base")
    x = g([1, 0], [2, 7, 0, 9], [4, 0, 5, 6], [3, 3, 3, 3], [9, 9, 0, 0], [-4, 12, 0, 2.6])
    # layer 2 of a stage is clipped to 1; the last stage rounds 2.6 to 3 and clips -4/12 to 1/9
    assert sp.repair(x, "push").tolist() == g([1, 0], [2, 7, 9, 0], [4, 1, 5, 6], [3, 3, 3, 3], [9, 9, 0, 0],
                                             [1, 9, 3, 0])
    assert sp.repair(x, "fill").tolist() == g([1, 0], [2, 7, 0, 0], [4, 1, 5, 6], [3, 3, 3, 3], [9, 9, 0, 0],
                                             [1, 9, 0, 0])
    ee = space("ee_base")  # nd_idx 1 = exit 2: stages 2..4 are not run and collapse to (1, 1, 0, 0)
    y = g([2, 1, 1], [5, 0, 7, 8], [9, 6, 0, 2], [3] * 12)
    assert ee.repair(y, "push").tolist() == g([2, 1, 1], [5, 1, 7, 8], [9, 6, 2, 0], [1, 1, 0, 0] * 3)
    assert ee.repair(y, "fill").tolist() == g([2, 1, 1], [5, 1, 7, 8], [9, 6, 0, 0], [1, 1, 0, 0] * 3)
    par = space("se_parallel")  # code 9: mask 1 (no MBConv), k7 e6 -> 1; 18: mask 2 -> 10; 27, 63 have MBConv
    z = g([0, 0], [9, 18, 27, 63], [1, 1, 0, 0] * 4)
    assert par.repair(z).tolist() == g([0, 0], [1, 10, 27, 63], [1, 1, 0, 0] * 4)


def test_decode_rejects_non_canonical_genomes():
    sp, ee, par = space("se_base"), space("ee_base"), space("se_parallel")
    ok = [0, 0] + [1, 1, 0, 0] * 5
    with pytest.raises(ValueError, match="zeros must trail"):
        sp.decode([0, 0] + [1, 1, 0, 2] + [1, 1, 0, 0] * 4)
    with pytest.raises(ValueError, match="outside"):
        sp.decode([3, 0] + [1, 1, 0, 0] * 5)
    with pytest.raises(ValueError, match="outside"):
        sp.decode([0, 0] + [1, 0, 0, 0] + [1, 1, 0, 0] * 4)
    with pytest.raises(ValueError, match="not an integer"):
        sp.decode([0, 0.5] + [1, 1, 0, 0] * 5)
    with pytest.raises(ValueError, match=r"expected shape \[22\]"):
        sp.decode([*ok, 0])
    with pytest.raises(ValueError, match="not run with exit 1"):
        ee.decode([0, 0, 0] + [1, 1, 0, 0] + [2, 1, 0, 0] + [1, 1, 0, 0] * 3)
    with pytest.raises(ValueError, match="canonical code is 1"):
        par.decode([0, 0] + [9, 1, 0, 0] + [1, 1, 0, 0] * 4)
    with pytest.raises(ValueError, match="use decode_many"):
        sp.decode(np.array([ok, ok]))
    assert sp.explain(ok) == "canonical"
    with pytest.raises(ValueError, match="expected shape"):
        sp.is_canonical(np.zeros((3, 23)))
    with pytest.raises(ValueError, match="NaN"):
        sp.repair([np.nan] * 22)
    with pytest.raises(ValueError, match="repair mode"):
        sp.repair(ok, "shift")
    assert not sp.is_canonical([np.nan, *ok[1:]])


def test_encode_rejects_foreign_architectures():
    sp, ee = space("se_base"), space("ee_base")
    arch = sp.max_arch()
    with pytest.raises(ValueError, match="resolution 40"):
        sp.encode(Arch(**{**arch.to_json(), "resolution": 40}))
    with pytest.raises(ValueError, match="need an exit"):
        ee.encode(arch)
    with pytest.raises(ValueError, match="branch mask 7"):
        sp.encode(space("se_parallel").max_arch())
    # an EE arch whose skipped stages are not minimal: encode refuses, canonicalize fixes
    loose = Arch(**{**ee.max_arch().to_json(), "exit": 2})
    with pytest.raises(ValueError, match="canonicalize"):
        ee.encode(loose)
    fixed = ee.canonicalize(loose)
    assert fixed.depths == (4, 4, 2, 2, 2) and fixed.kernel_sizes[8:] == (3, 3, 0, 0) * 3


def test_arch_validation():
    base = space("se_base").min_arch().to_json()
    with pytest.raises(ValueError, match="beyond the stage depth"):
        Arch(**{**base, "kernel_sizes": [3, 3, 3, 0] + [3, 3, 0, 0] * 4})
    with pytest.raises(ValueError, match="no MBConv branch"):
        Arch(**{**base, "branches": [2, 4, 0, 0] + [4, 4, 0, 0] * 4, "kernel_sizes": [5, 3, 0, 0] + [3, 3, 0, 0] * 4})
    with pytest.raises(ValueError, match="exit"):
        Arch(**{**base, "exit": 0})
    with pytest.raises(ValueError, match="depths"):
        Arch(**{**base, "depths": [2, 2, 2, 2]})
    with pytest.raises(ValueError, match="missing keys"):
        Arch.from_json({k: v for k, v in base.items() if k != "exit"})
    arch = Arch(**{**base, "depths": np.array([2, 2, 2, 2, 2]), "resolution": np.int64(24)})
    assert arch == Arch(**base) and isinstance(arch.resolution, int)


def test_ofa_dict_normalises_irrelevant_values():
    ee = space("ee_dense_parallel")
    d = {"r": 28, "w": 1.2, "nd": 2, "ks": [7] * 20, "e": [6] * 20, "nw": [1, 2, 4, 7] * 5, "d": [3, 4, 4, 4, 4]}
    arch = Arch.from_ofa_dict(d, ee)
    assert arch.exit == 2 and arch.depths == (3, 4, 2, 2, 2)
    assert arch.branches[:8] == (1, 2, 4, 0, 1, 2, 4, 7) and arch.branches[8:] == (1, 1, 0, 0) * 3
    assert arch.kernel_sizes[:8] == (3, 3, 7, 0, 3, 3, 7, 7)
    out = arch.to_ofa_dict(parallel=True)
    assert out["d"] == [3, 4, 2, 2, 2] and out["ks"][3] == 3 and out["nw"][3] == 4 and out["nd"] == 2
    assert "nw" not in space("se_base").max_arch().to_ofa_dict()
    with pytest.raises(ValueError, match=r"missing keys \['nd'\]"):
        Arch.from_ofa_dict({k: v for k, v in d.items() if k != "nd"}, ee)
    with pytest.raises(ValueError, match="width multiplier"):
        Arch.from_ofa_dict({**d, "w": 1.1}, ee)


# -- sampling -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "expected"), [
    ("arch_space", (1 / 3, 2 / 9, 4 / 9)), ("uniform", (0.01, 0.18, 0.81)), ("uniform_depth", (1 / 3,) * 3)])
def test_depth_frequencies(policy, expected):
    sp = space("se_base")
    X = sp.sample(np.random.default_rng(7), 30_000, policy)
    assert X.shape == (30_000, 22) and sp.is_canonical(X).all()
    d = depths_of(sp, X)
    freq = [(d == k).mean() for k in (2, 3, 4)]
    assert np.allclose(freq, expected, atol=0.01), freq
    for gene, n in ((0, 3), (1, 2)):  # resolution and width stay uniform
        assert np.allclose(np.bincount(X[:, gene], minlength=n) / len(X), 1 / n, atol=0.01)


@pytest.mark.parametrize("variant", VARIANTS)
def test_sampling_is_canonical_and_seeded(variant):
    sp = space(variant)
    for policy in ("uniform", "arch_space", "uniform_depth"):
        a = sp.sample(np.random.default_rng(3), 500, policy)
        assert sp.is_canonical(a).all() and a.dtype == np.int64
        assert (a == sp.sample(np.random.default_rng(3), 500, policy)).all()
        assert not (a == sp.sample(np.random.default_rng(4), 500, policy)).all()
    assert sp.sample(np.random.default_rng(0), 0).shape == (0, sp.n_var)
    with pytest.raises(ValueError, match="policy"):
        sp.sample(np.random.default_rng(0), 3, "grid")
    with pytest.raises(ValueError, match="Generator"):
        sp.sample(np.random.RandomState(0), 3)


# -- features and ids -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "width"), [
    ("se_base", 195), ("se_dense", 195), ("ee_base", 200), ("ee_dense", 200), ("se_parallel", 1275),
    ("se_dense_parallel", 1275), ("ee_parallel", 1280), ("ee_dense_parallel", 1280)])
def test_features(variant, width):
    sp = space(variant)
    X = sp.sample(np.random.default_rng(0), 64, "uniform")
    oh = sp.features(X, "one_hot")
    assert oh.shape == (64, width) == (64, sp.n_features("one_hot"))
    assert (oh.sum(axis=1) == sp.n_var).all() and set(np.unique(oh)) == {0.0, 1.0}
    assert (sp.features(X[0], "one_hot") == oh[0]).all()
    assert oh[:, 0].tolist() == (X[:, 0] == 0).tolist()  # first category of r_idx
    integer = sp.features(X)
    assert integer.dtype == np.float64 and (integer == X).all()
    with pytest.raises(ValueError, match="within the space's bounds"):
        sp.features(sp.upper_bound() + 1)
    with pytest.raises(ValueError, match="feature encoding"):
        sp.features(X, "one-hot")


def test_arch_ids_are_distinct_and_stable():
    sp = space("ee_base")
    X = sp.sample(np.random.default_rng(11), 100_000, "uniform")
    ids = sp.arch_ids(X)
    assert len(set(ids)) == len(np.unique(X, axis=0))
    assert all(len(i) == 12 for i in ids[:100]) and int(ids[0], 16) >= 0
    g = sp.min_genome()
    text = ",".join(str(v) for v in g.tolist())
    assert sp.arch_id(g) == hashlib.sha256(text.encode()).hexdigest()[:12]
    assert sp.arch_id(g) == sp.arch_id(g.astype(float))
    with pytest.raises(ValueError, match="not canonical"):
        sp.arch_id(np.r_[g[:3], [1, 1, 0, 3], g[7:]])


def test_branch_masks_order():
    assert BRANCH_MASKS == (1, 2, 4, 3, 5, 6, 7) and N_LAYERS == 20
