"""nat2.latency: the LUT's blocks, the vectorised model against hand sums, the file format, the timer, the stage."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import BASE_PARAMS, write_params

from nat2.config import load_params
from nat2.costs import CostModel
from nat2.errors import Nat2Error
from nat2.indicators import cost_matrix, max_costs
from nat2.latency import KINDS, LUT_SCHEMA, LatencyModel, dense_adds, read_lut, timing, write_lut
from nat2.latency import profile as profile_mod
from nat2.latency.lut import LUT_FORMAT, META_KEYS
from nat2.latency.profile import SUBNET_COLUMNS, fit_overhead, profile_space, space_blocks, validation_stats
from nat2.latency.timing import Timing, make_timer, time_items
from nat2.space import N_STAGES, Arch, SearchSpace, Variant, layer_code
from nat2.supernet._static import stage_forward

# -- a hand-made LUT ---------------------------------------------------------------------------------------------------


def hand_latency(kind: str, width_mult: float, resolution: int, stage: int, position: int, kernel: int,
                 expand: int, exit: int, **_: Any) -> float:
    """Block latencies chosen by hand (exact in binary floating point; the smallest (w, r) adds nothing).

    stem 100; layer k·e·(stage+1), +5 at a stage's first (strided) position; dense addition 2·(stage+1);
    head 50 + 10·exit; every block + (resolution - 24) + 1000·(width_mult - 1) rounded to a whole number.
    """
    extra = (resolution - 24) + round(1000 * (width_mult - 1.0))
    if kind == "stem":
        return 100.0 + extra
    if kind == "layer":
        return kernel * expand * (stage + 1) + (5.0 if position == 0 else 0.0) + extra
    if kind == "dense":
        return 2.0 * (stage + 1) + extra
    if kind == "head":
        return 50.0 + 10 * exit + extra
    raise AssertionError(kind)


def hand_table(space: SearchSpace) -> pd.DataFrame:
    rows = []
    for b in space_blocks(space):
        d = asdict(b)
        v = hand_latency(**d)
        rows.append({**d, "latency_ms": v, "p25_ms": v - 0.25, "p75_ms": v + 0.25, "repeats": 10})
    return pd.DataFrame(rows)


def hand_meta(space: SearchSpace, num_classes: int = 10, **kw: Any) -> dict[str, Any]:
    meta = {"format": LUT_FORMAT, "backend": "torch", "device": "cpu", "device_name": "hand CPU",
            "torch": torch.__version__, "onnxruntime": None, "threads": 2, "batch_size": 1, "channels_last": True,
            "variant": space.variant.name, "stem_stride": space.variant.stem_stride,
            "width_mults": list(space.width_mults),
            "resolutions": list(space.resolutions), "num_classes": num_classes, "call_overhead_ms": 0.0,
            "rounds": 5, "warmup": 5, "scale": 1.0, "offset_ms": 0.0,
            "validation": {"n": 3, "kendall_tau": 1.0, "mape": 2.5, "max_ape": 4.0}}
    meta.update(kw)
    assert set(meta) == set(META_KEYS)
    return meta


def hand_model(space: SearchSpace, **kw: Any) -> LatencyModel:
    return LatencyModel(space, 10, hand_table(space), hand_meta(space, **kw))


def reference_sum(space: SearchSpace, arch: Arch, exits: str = "single", overhead: float = 0.0) -> float:
    """The LUT sum of one network, block by block from the decoded architecture (no vectorisation)."""
    w, r = arch.width_mult, arch.resolution

    def lat(kind: str, **kw: Any) -> float:
        base = {"stage": -1, "position": -1, "kernel": 0, "expand": 0, "exit": 0}
        return max(hand_latency(kind, w, r, **{**base, **kw}) - overhead, 0.0)

    total = lat("stem")
    for s, j, i in arch.active_layers():
        total += lat("layer", stage=s, position=min(j, 1), kernel=arch.kernel_sizes[i],
                     expand=arch.expand_ratios[i])
    if space.variant.dense:
        total += sum(dense_adds(arch.depths[s]) * lat("dense", stage=s) for s in range(arch.stages_run))
    last = arch.stages_run
    heads = range(1, last + 1) if exits == "all" and space.variant.early_exit else (last,)
    return total + sum(lat("head", exit=x) for x in heads)


TINY = SearchSpace("ee_dense", (24,), (1.0,))


def ee_genome(exit_: int, stages: list[list[int]]) -> np.ndarray:
    """An ee_dense genome at r 24, w 1.0: the given stages' codes, the stages beyond the exit (1, 1, 0, 0)."""
    layers = [*stages, *[[1, 1, 0, 0]] * (N_STAGES - len(stages))]
    g = np.array([0, 0, exit_ - 1, *np.concatenate(layers)], dtype=np.int64)
    assert TINY.is_canonical(g)
    return g


K3E3, K5E4, K7E6 = (layer_code(k, e, 4, False) for k, e in ((3, 3), (5, 4), (7, 6)))

# (genome, LUT sum with one exit head, LUT sum with every head up to the exit), added up by hand from the
# docstring of hand_latency: k3e3 = 9·(s+1), k5e4 = 20·(s+1), k7e6 = 42·(s+1), +5 at position 0; dense 2·(s+1).
HAND_SET = [
    # A: exit 1, stage 0 = k3e3 ×2: stem 100 + (9+5) + 9 + head 60
    (ee_genome(1, [[K3E3, K3E3, 0, 0]]), 183.0, 183.0),
    # B: exit 1, stage 0 = k7e6 ×4: 100 + (42+5) + 3·42 + 3 dense adds · 2 + 60
    (ee_genome(1, [[K7E6] * 4]), 339.0, 339.0),
    # C: exit 2, stages 0-1 = k3e3 ×2: 100 + (9+5) + 9 + (18+5) + 18 + head 70 (all heads: + 60)
    (ee_genome(2, [[K3E3, K3E3, 0, 0], [K3E3, K3E3, 0, 0]]), 234.0, 294.0),
    # D: exit 2, stage 0 = k3e3 ×3 (1 add · 2), stage 1 = k5e4 ×4 (3 adds · 4): 100 + 14 + 9 + 9 + 2
    #    + (40+5) + 3·40 + 12 + 70
    (ee_genome(2, [[K3E3, K3E3, K3E3, 0], [K5E4] * 4]), 381.0, 441.0),
    # E: exit 5, every stage k3e3 ×2: 100 + Σ_s (18·(s+1) + 5) + head 100 (all heads: 60+70+80+90+100)
    (ee_genome(5, []), 100.0 + 18 * 15 + 25 + 100, 100.0 + 18 * 15 + 25 + 400),
]


# -- dense additions and the blocks of a space -------------------------------------------------------------------------


class _Counted:
    """A stand-in tensor that counts the additions stage_forward makes."""

    adds = 0

    def __add__(self, other: object) -> _Counted:
        _Counted.adds += 1
        return self


@pytest.mark.parametrize(("depth", "expected"), [(2, 0), (3, 1), (4, 3)])
def test_dense_adds_count_stage_forward_additions(depth: int, expected: int) -> None:
    calls = []

    def layer(h: object) -> _Counted:
        calls.append(h)
        return _Counted()

    for dense, want in ((True, expected), (False, 0)):
        _Counted.adds, calls[:] = 0, []
        stage_forward(_Counted(), [layer] * depth, dense)  # type: ignore[list-item, arg-type]
        assert _Counted.adds == want and len(calls) == depth
    assert dense_adds(depth) == expected


def test_space_blocks_counts_and_shapes() -> None:
    blocks = space_blocks(TINY)
    kinds = pd.Series([b.kind for b in blocks]).value_counts().to_dict()
    assert kinds == {"stem": 1, "layer": 5 * 2 * 9, "dense": 5, "head": 5}
    assert set(kinds) == set(KINDS) and len(set(blocks)) == len(blocks) == 101
    stem = blocks[0]
    assert (stem.kind, stem.in_channels, stem.out_channels, stem.in_side, stem.out_side) == ("stem", 3, 16, 24, 12)
    first = next(b for b in blocks if b.kind == "layer" and b.stage == 0 and b.position == 0)
    other = next(b for b in blocks if b.kind == "layer" and b.stage == 0 and b.position == 1)
    assert (first.in_channels, first.out_channels, first.in_side, first.out_side) == (16, 24, 12, 6)
    assert (other.in_channels, other.out_channels, other.in_side, other.out_side) == (24, 24, 6, 6)
    assert {(b.kernel, b.expand, b.branch) for b in blocks if b.kind == "layer"} == {
        (k, e, 4) for k in (3, 5, 7) for e in (3, 4, 6)}
    assert sorted(b.exit for b in blocks if b.kind == "head") == [1, 2, 3, 4, 5]

    base = space_blocks(SearchSpace("se_base", (24,), (1.0,)))
    assert [b.kind for b in base].count("dense") == 0
    assert [(b.kind, b.exit) for b in base if b.kind == "head"] == [("head", 5)]
    assert len(base) == 1 + 90 + 1

    # parallel: 4 masks with the MBConv branch × 9 (kernel, expand) + 3 masks without it (one entry each)
    par = space_blocks(SearchSpace("ee_dense_parallel", (24,), (1.0,)))
    assert [b.kind for b in par].count("layer") == 5 * 2 * (4 * 9 + 3) == 390

    two = space_blocks(SearchSpace("ee_dense", (24, 32), (1.0, 1.2)))
    assert len(two) == 4 * 101
    assert {(b.width_mult, b.resolution) for b in two} == {(1.0, 24), (1.0, 32), (1.2, 24), (1.2, 32)}


# -- the model against hand sums ---------------------------------------------------------------------------------------


def test_lut_sum_of_hand_picked_genomes_and_ranking() -> None:
    m = hand_model(TINY)
    X = np.stack([g for g, _, _ in HAND_SET])
    single = np.array([s for _, s, _ in HAND_SET])
    every = np.array([a for _, _, a in HAND_SET])
    assert m.lut_sum(X).tolist() == single.tolist() == [183.0, 339.0, 234.0, 381.0, 495.0]
    assert m.lut_sum(X, exits="all").tolist() == every.tolist()
    assert m(X).tolist() == single.tolist()  # scale 1, offset 0
    # the model ranks the hand-made set in the order of its hand-computed latency: A < C < B < D < E
    assert np.argsort(m(X)).tolist() == np.argsort(single).tolist() == [0, 2, 1, 3, 4]
    assert float(m.lut_sum(X[1])[0]) == 339.0  # one genome -> an array of one
    with pytest.raises(ValueError, match="exits"):
        m.lut_sum(X, exits="some")
    bad = X[0].copy()
    bad[TINY.layer_offset + 2:TINY.layer_offset + 4] = [0, 1]  # stage 0 (1, 1, 0, 1): a gap is not canonical
    with pytest.raises(ValueError, match="not canonical"):
        m(bad)


def test_scale_offset_and_call_overhead() -> None:
    X = np.stack([g for g, _, _ in HAND_SET])
    single = np.array([s for _, s, _ in HAND_SET])
    m = hand_model(TINY, scale=2.0, offset_ms=0.5)
    assert (m.scale, m.offset_ms) == (2.0, 0.5)
    assert m(X).tolist() == (2.0 * single + 0.5).tolist()
    assert m(X, exits="all")[4] == 2.0 * (100 + 270 + 25 + 400) + 0.5
    # a per-call overhead is taken off every block: A runs 4 blocks, B 6 blocks and 3 dense additions
    m = hand_model(TINY, call_overhead_ms=1.0)
    assert m.lut_sum(X[:2]).tolist() == [183.0 - 4, 339.0 - 6 - 3]
    # blocks faster than the overhead count as 0, never negative
    m = hand_model(TINY, call_overhead_ms=1e6)
    assert m.lut_sum(X).tolist() == [0.0] * 5


@pytest.mark.parametrize("variant", ["ee_dense", "se_base", "ee_dense_parallel", "se_dense"])
def test_vectorised_sum_equals_block_by_block_reference(variant: str) -> None:
    space = SearchSpace(variant, (24, 32), (1.0, 1.2))
    m = hand_model(space, scale=1.5, offset_ms=-2.0)
    X = np.vstack([space.sample(np.random.default_rng(3), 60, "uniform_depth"), space.min_genome(),
                   space.max_genome()])
    archs = space.decode_many(X)
    for exits in ("single", "all"):
        ref = np.array([reference_sum(space, a, exits) for a in archs])
        np.testing.assert_allclose(m.lut_sum(X, exits), ref, rtol=0, atol=1e-9)
        np.testing.assert_allclose(m(X, exits), 1.5 * ref - 2.0, rtol=0, atol=1e-9)
    lo, hi = m(space.min_genome())[0], m(space.max_genome())[0]
    assert (m(X) >= lo).all() and (m(X) <= hi).all() and lo < hi


# -- the file and the coverage checks ----------------------------------------------------------------------------------


def test_write_read_round_trip(tmp_path: Path) -> None:
    space = SearchSpace("ee_dense", (24, 32), (1.0, 1.2))
    table = hand_table(space)
    meta = hand_meta(space, scale=1.25, offset_ms=0.75)
    f = tmp_path / "lut.parquet"
    write_lut(f, table, meta)
    back, meta_back = read_lut(f)
    assert back.columns.tolist() == LUT_SCHEMA.names and len(back) == len(table) == 404
    pd.testing.assert_frame_equal(back, table[LUT_SCHEMA.names], check_dtype=False)
    assert back["resolution"].dtype == np.int32 and back["latency_ms"].dtype == np.float64
    assert meta_back == meta
    for key in ("device", "device_name", "torch", "threads", "backend"):
        assert meta_back[key] == meta[key]
    X = space.sample(np.random.default_rng(0), 50)
    loaded = LatencyModel.load(f, space, 10)
    assert loaded(X).tolist() == LatencyModel(space, 10, table, meta)(X).tolist()
    assert [p.name for p in tmp_path.iterdir()] == ["lut.parquet"]  # written atomically, no temporaries left
    with pytest.raises(ValueError, match="metadata lacks"):
        write_lut(tmp_path / "x.parquet", table, {k: v for k, v in meta.items() if k != "device_name"})
    with pytest.raises(ValueError, match="unknown columns"):
        write_lut(tmp_path / "x.parquet", table.assign(extra=1), meta)


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


def test_read_lut_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(Nat2Error) as exc:
        read_lut(tmp_path / "absent.parquet")
    assert "not found" in _one_line(exc) and "profile_latency" in _one_line(exc)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(Nat2Error) as exc:
        read_lut(junk)
    assert "not a readable Parquet file" in _one_line(exc)
    other = tmp_path / "other.parquet"
    pd.DataFrame({"kind": ["stem"], "latency_ms": [1.0]}).to_parquet(other)
    with pytest.raises(Nat2Error) as exc:
        read_lut(other)
    assert "is not a nat2 latency look-up table" in _one_line(exc)
    future = tmp_path / "future.parquet"
    write_lut(future, hand_table(TINY), hand_meta(TINY, format=LUT_FORMAT + 1))
    with pytest.raises(Nat2Error) as exc:
        read_lut(future)
    assert f"LUT format {LUT_FORMAT + 1}" in _one_line(exc)
    with pytest.raises(Nat2Error):
        LatencyModel.load(junk, TINY, 10)


def test_coverage_errors_are_one_line() -> None:
    table, meta = hand_table(TINY), hand_meta(TINY)
    with pytest.raises(Nat2Error) as exc:
        LatencyModel(TINY, 10, table, {**meta, "variant": "se_base"})
    assert "measured for variant se_base, the space is ee_dense" in _one_line(exc)
    with pytest.raises(Nat2Error) as exc:
        LatencyModel(SearchSpace(Variant.from_name("ee_dense", 1), TINY.resolutions, TINY.width_mults), 10, table,
                     meta)
    assert "measured with stem stride 2, the space has 1" in _one_line(exc)
    with pytest.raises(Nat2Error) as exc:
        LatencyModel(TINY, 100, table, meta)
    assert "measured with 10 classes, the data has 100" in _one_line(exc)
    wider = SearchSpace("ee_dense", (24, 32), (1.0,))
    with pytest.raises(Nat2Error) as exc:
        LatencyModel(wider, 10, table, meta)
    assert "no measurements for supernet.resolutions [32]" in _one_line(exc)
    with pytest.raises(Nat2Error) as exc:
        LatencyModel(SearchSpace("ee_dense", (24,), (1.0, 1.2)), 10, table, meta)
    assert "supernet.width_mults [1.2]" in _one_line(exc)
    gap = table[~((table["kind"] == "layer") & (table["stage"] == 3) & (table["kernel"] == 5)
                  & (table["expand"] == 4) & (table["position"] == 1))]
    assert len(gap) == len(table) - 1
    with pytest.raises(Nat2Error) as exc:
        LatencyModel(TINY, 10, gap, meta)
    msg = _one_line(exc)
    # (the count is of look-ups: positions 1-3 of stage 3 all use the one missing row)
    assert re.search(r"lacks \d+ block\(s\) of this space, e\.g\. layer \(w=1\.0, r=24, stage=3, position=1, k=5, "
                     r"e=4, branch=4, exit=0\); rerun profile_latency", msg), msg
    with pytest.raises(Nat2Error) as exc:
        LatencyModel(TINY, 10, table[~((table["kind"] == "head") & (table["exit"] == 3))], meta)
    assert ("lacks 1 block(s) of this space, e.g. head (w=1.0, r=24, stage=-1, position=-1, k=0, e=0, branch=0, "
            "exit=3)") in _one_line(exc)
    # a LUT of a larger space covers a smaller one
    big = SearchSpace("ee_dense", (24, 32), (1.0, 1.2))
    m = LatencyModel(TINY, 10, hand_table(big), hand_meta(big))
    X = np.stack([g for g, _, _ in HAND_SET])
    assert m(X).tolist() == hand_model(TINY)(X).tolist()


# -- costs and indicators ----------------------------------------------------------------------------------------------


def test_cost_model_and_indicators_with_latency() -> None:
    space = SearchSpace("ee_dense", (24, 32), (1.0, 1.2))
    lat = hand_model(space, scale=1.5, offset_ms=0.25)
    cm = CostModel(space, 10, latency=lat)
    X = space.sample(np.random.default_rng(1), 40)
    out = cm(X)
    assert set(out) == {"params", "macs", "latency"}
    assert out["latency"].dtype == np.float64 and out["latency"].tolist() == lat(X).tolist()
    assert cm(X, exits="all")["latency"].tolist() == lat(X, exits="all").tolist()
    plain = CostModel(space, 10)(X)
    assert out["macs"].tolist() == plain["macs"].tolist() and "latency" not in plain
    one = cm(X[0])
    assert one["latency"].shape == () and float(one["latency"]) == float(lat(X[0])[0])
    with pytest.raises(ValueError, match="another space"):
        CostModel(SearchSpace("ee_dense", (24,), (1.0,)), 10, latency=lat)
    with pytest.raises(ValueError, match="another space"):
        CostModel(space, 100, latency=lat)

    mx = max_costs(space, cm)
    assert mx["latency"] == float(lat(space.max_genome())[0])
    assert mx["latency"] == 1.5 * reference_sum(space, space.max_arch()) + 0.25
    assert mx["macs"] == float(CostModel(space, 10)(space.max_genome())["macs"])
    F = cost_matrix(space, cm, ("error", "macs", "latency"), X)
    assert F.shape == (40, 2)
    np.testing.assert_allclose(F[:, 1], lat(X) / mx["latency"], rtol=1e-15)
    np.testing.assert_allclose(F[:, 0], out["macs"] / mx["macs"], rtol=1e-15)
    assert (F[:, 1] > 0).all() and (F[:, 1] <= 1).all()
    assert cost_matrix(space, cm, ("error", "latency"), space.max_genome()[None]).tolist() == [[1.0]]
    with pytest.raises(Nat2Error, match="look-up table"):
        cost_matrix(space, CostModel(space, 10), ("error", "macs", "latency"), X)


# -- the overhead fit, the validation statistics, the timer ------------------------------------------------------------


def test_fit_overhead_and_validation_stats() -> None:
    lut = np.array([1.0, 2.0, 4.0, 8.0])
    scale, offset = fit_overhead(lut, 1.5 * lut + 0.25)
    assert scale == pytest.approx(1.5, abs=1e-12) and offset == pytest.approx(0.25, abs=1e-12)
    # a slope <= 0 keeps the sum and fits the offset alone: median(measured - lut) = median(4, 2, 0)
    assert fit_overhead(np.array([1.0, 2.0, 3.0]), np.array([5.0, 4.0, 3.0])) == (1.0, 2.0)
    assert fit_overhead(np.array([2.0, 2.0, 2.0]), np.array([3.0, 3.0, 3.0]))[0] > 0  # degenerate: finite

    s = validation_stats(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 4.0, 9.0, 16.0]))  # monotone map
    assert s["n"] == 4 and s["kendall_tau"] == pytest.approx(1.0)
    assert s["mape"] == pytest.approx((0 + 50 + 200 / 3 + 75) / 4)
    s = validation_stats(np.array([110.0, 90.0, 60.0]), np.array([100.0, 100.0, 50.0]))
    assert s["mape"] == pytest.approx(40 / 3) and s["max_ape"] == pytest.approx(20.0)
    s = validation_stats(np.array([3.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0]))
    assert s["kendall_tau"] == pytest.approx(-1.0) and s["mape"] == pytest.approx((200 + 0 + 200 / 3) / 3)
    assert np.isnan(validation_stats(np.array([1.0]), np.array([1.0]))["kendall_tau"])


class _FakeClock:
    """A nanosecond clock that only moves when a fake runner (or sync) says so."""

    def __init__(self) -> None:
        self.now = 0

    def perf_counter_ns(self) -> int:
        return self.now


def test_time_items_counts_calls_and_takes_min_of_round_medians(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _FakeClock()
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter_ns=clock.perf_counter_ns))
    warmup, repeats, rounds = 2, 3, 3
    ms = 1_000_000
    # per runner, the cost (ns) of each call in its own order: per round, warm-ups (huge: never timed), then repeats
    costs = {
        "a": [[50 * ms] * warmup + c for c in ([3 * ms, 1 * ms, 2 * ms], [9 * ms, 7 * ms, 8 * ms],
                                               [4 * ms, 6 * ms, 5 * ms])],
        "b": [[50 * ms] * warmup + c for c in ([10 * ms, 30 * ms, 20 * ms], [12 * ms, 11 * ms, 40 * ms],
                                               [15 * ms, 16 * ms, 14 * ms])],
    }
    calls = {"a": 0, "b": 0}

    def runner(name: str) -> Any:
        seq = [c for rnd in costs[name] for c in rnd]

        def run() -> None:
            clock.now += seq[calls[name]]
            calls[name] += 1

        return run

    syncs, progress = [], []

    def sync() -> None:
        syncs.append(1)
        clock.now += 1000  # 1 µs, inside the timed interval

    out = time_items([runner("a"), runner("b")], warmup=warmup, repeats=repeats, rounds=rounds,
                     rng=np.random.default_rng(0), sync=sync, progress=progress.append)
    assert calls == {"a": rounds * (warmup + repeats), "b": rounds * (warmup + repeats)} == {"a": 15, "b": 15}
    assert len(syncs) == 2 * rounds * (1 + repeats) and progress == [1, 2, 3]
    assert all(isinstance(t, Timing) and t.repeats == rounds * repeats == 9 for t in out)
    # a: round medians 2, 8, 5 ms -> 2; b: 20, 12, 15 -> 12 (+ the 1 µs sync of each timed call)
    assert out[0].latency_ms == pytest.approx(2.001) and out[1].latency_ms == pytest.approx(12.001)
    a_all = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9]) + 0.001
    assert (out[0].p25_ms, out[0].p75_ms) == pytest.approx((np.percentile(a_all, 25), np.percentile(a_all, 75)))

    calls.update(a=0, b=0)
    clock.now = 0
    out = time_items([runner("a")], warmup=warmup, repeats=repeats, rounds=1, rng=np.random.default_rng(0))
    assert calls["a"] == warmup + repeats and out[0].latency_ms == 2.0 and out[0].repeats == 3


def test_time_items_real_clock_and_make_timer() -> None:
    n = [0]

    def run() -> None:
        n[0] += 1

    (t,) = time_items([run], warmup=1, repeats=4, rounds=2, rng=np.random.default_rng(0))
    assert n[0] == 2 * (1 + 4) and t.repeats == 8 and 0 <= t.p25_ms <= t.latency_ms <= t.p75_ms + 1e-9
    timer = make_timer("torch", torch.device("cpu"), torch.contiguous_format, 1, 2, 0, 3, 1)
    assert (timer.backend, timer.batch_size, timer.repeats, timer.call_overhead()) == ("torch", 2, 3, 0.0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    out = timer.prepare(conv, (3, 8, 8))()
    assert tuple(out.shape) == (2, 4, 8, 8)
    (t,) = timer.time([timer.prepare(conv, (3, 8, 8))], np.random.default_rng(0))
    assert t.repeats == 3 and t.latency_ms > 0
    with pytest.raises(Nat2Error, match=r"latency\.backend 'tflite'"):
        make_timer("tflite", torch.device("cpu"), torch.contiguous_format, 1, 1, 0, 1, 1)


def test_onnxruntime_timer_runs_on_cpu_and_measures_its_call_overhead() -> None:
    pytest.importorskip("onnxruntime")
    timer = make_timer("onnxruntime", torch.device("cuda"), torch.channels_last, 1, 1, 1, 3, 1)
    assert (timer.backend, timer.device.type, timer.memory_format) == ("onnxruntime", "cpu", torch.contiguous_format)
    overhead = timer.call_overhead()
    assert overhead > 0 and timer.call_overhead() == overhead  # measured once
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    run = timer.prepare(conv, (3, 8, 8))
    (y,) = run()
    assert y.shape == (1, 4, 8, 8)
    (t,) = timer.time([run], np.random.default_rng(0))
    assert t.repeats == 3 and t.latency_ms > 0


# -- measuring a tiny space end to end ---------------------------------------------------------------------------------


def test_profile_space_end_to_end(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    space = SearchSpace("ee_dense", (8,), (1.0,))
    sampled: list[np.ndarray] = []
    real_sample = profile_mod.sample_subnets

    def spy(*args: Any) -> np.ndarray:
        sampled.append(real_sample(*args))
        return sampled[-1]

    monkeypatch.setattr(profile_mod, "sample_subnets", spy)
    timer = make_timer("torch", torch.device("cpu"), torch.contiguous_format, 1, 1, 1, 2, 1)
    said: list[str] = []
    prof = profile_space(space, 10, timer, fit_subnets=3, validate_subnets=3, seed=0, threads=1,
                         progress=said.append)
    blocks = space_blocks(space)
    t = prof.table
    assert len(t) == len(blocks) == 101
    assert t[[c for c in t.columns if c not in ("latency_ms", "p25_ms", "p75_ms", "repeats")]].to_dict(
        "records") == [asdict(b) for b in blocks]
    assert (t["latency_ms"] > 0).all() and (t["repeats"] == 2).all()
    assert set(prof.meta) == set(META_KEYS)
    assert (prof.meta["backend"], prof.meta["device"], prof.meta["threads"], prof.meta["num_classes"],
            prof.meta["resolutions"], prof.meta["width_mults"]) == ("torch", "cpu", 1, 10, [8], [1.0])
    assert prof.meta["torch"] == torch.__version__ and prof.meta["device_name"]
    sub = prof.subnets
    assert sub.columns.tolist() == list(SUBNET_COLUMNS) and len(sub) == 6
    assert sub["role"].tolist() == ["fit"] * 3 + ["validate"] * 3
    assert (sub["measured_ms"] > 0).all() and sub["resolution"].eq(8).all() and sub["id"].is_unique
    s = prof.stats
    assert s["n"] == 3 and s["blocks"] == 101 and -1 <= s["kendall_tau"] <= 1 and s["mape"] >= 0
    assert s["lut_s"] > 0 and s["per_arch_us"] > 0 and s["fit"]["n"] == 3
    assert (prof.meta["scale"], prof.meta["offset_ms"]) == (s["scale"], s["offset_ms"])
    assert prof.meta["validation"] == {k: s[k] for k in ("n", "kendall_tau", "mape", "max_ape")}
    assert any("latency LUT: round 1/1 over 101 blocks" in m for m in said)

    (genomes,) = sampled
    assert space.arch_ids(genomes) == sub["id"].tolist()
    assert sub["exit"].tolist() == (genomes[:, space.exit_gene] + 1).tolist()
    again = LatencyModel(space, 10, prof.table, prof.meta)
    assert again(genomes).tolist() == sub["predicted_ms"].tolist()
    assert again.lut_sum(genomes).tolist() == sub["lut_sum_ms"].tolist()
    f = tmp_path / "lut.parquet"
    write_lut(f, prof.table, prof.meta)
    assert LatencyModel.load(f, space, 10)(genomes).tolist() == sub["predicted_ms"].tolist()


# -- the stage and params ----------------------------------------------------------------------------------------------

STAGE = {
    "runtime.device": "cpu",
    "data.dataset": "synthetic",
    "data.val_size": 32,
    "data.train_size": 0,
    "data.test_size": 0,
    "data.calib_size": 32,
    "data.calib_batch_size": 32,
    "data.eval_batch_size": 32,
    "data.synthetic.train_images": 96,
    "data.synthetic.test_images": 32,
    "data.synthetic.image_size": 32,
    "supernet.resolutions": [8],
    "supernet.width_mults": [1.0],
    "latency.warmup": 0,
    "latency.repeats": 1,
    "latency.rounds": 1,
    "latency.fit_subnets": 2,
    "latency.validate_subnets": 2,
    "search.objectives": ["error", "macs", "latency"],
}


def test_profile_latency_stage_writes_its_four_files(tmp_path: Path) -> None:
    from nat2.stages import prepare_data, profile_latency

    params = write_params(tmp_path / "params.yaml", STAGE)
    assert load_params(params).search.objectives == ("error", "macs", "latency")
    split = tmp_path / "split.parquet"
    assert prepare_data.main(["--params", str(params), "--out", str(split)]) == 0
    out = tmp_path / "latency"
    argv = ["--params", str(params), "--split", str(split), "--out", str(out / "lut.parquet"), "--subnets",
            str(out / "subnets.csv"), "--stats", str(out / "latency.json")]
    assert profile_latency.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["latency.json", "lut.manifest.json", "lut.parquet",
                                                      "subnets.csv"]
    table, meta = read_lut(out / "lut.parquet")
    assert len(table) == 101 and (meta["backend"], meta["device"], meta["resolutions"]) == ("torch", "cpu", [8])
    space = SearchSpace("ee_dense", (8,), (1.0,))
    model = LatencyModel.load(out / "lut.parquet", space, meta["num_classes"])
    subnets = pd.read_csv(out / "subnets.csv")
    assert subnets.columns.tolist() == list(SUBNET_COLUMNS) and subnets["role"].tolist() == ["fit"] * 2 + [
        "validate"] * 2
    # the CSV keeps 6 significant digits
    np.testing.assert_allclose(subnets["predicted_ms"], model.scale * subnets["lut_sum_ms"] + model.offset_ms,
                               rtol=1e-4)
    assert (subnets["measured_ms"] > 0).all() and subnets["resolution"].eq(8).all()
    stats = json.loads((out / "latency.json").read_text())
    assert stats["n"] == 2 and {"kendall_tau", "mape", "max_ape", "scale", "offset_ms", "lut_s"} <= set(stats)
    assert (stats["backend"], stats["threads"], stats["device_name"]) == ("torch", 2, meta["device_name"])
    manifest = json.loads((out / "lut.manifest.json").read_text())
    assert manifest["stage"] == "profile_latency" and manifest["device"] == "cpu"
    for key in ("device_name", "torch", "threads", "backend"):
        assert manifest[key] == meta[key]
    assert manifest["threads"] == 2 and "split" in manifest["inputs"]


def test_latency_objectives_validate() -> None:
    for objectives in (["error", "latency"], ["error", "macs", "latency"], ["error", "params", "latency"]):
        p = load_params(BASE_PARAMS, overrides={"search.objectives": objectives})
        assert p.search.objectives == tuple(objectives) and p.latency.backend == "torch"
