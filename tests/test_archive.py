"""nat2.archive: file format and validation, objectives, survival, trade-off points and hypervolume."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.mcdm.high_tradeoff import HighTradeoffPoints
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding

from nat2 import archive as A
from nat2 import indicators as ind
from nat2 import selection as sel
from nat2.errors import Nat2Error
from nat2.space import SearchSpace

SPACE = SearchSpace("ee_dense", (24, 28, 32), (1.0,))


def records(n: int = 12, seed: int = 0, space: SearchSpace = SPACE) -> list[dict]:
    rng = np.random.default_rng(seed)
    G = space.sample(rng, 4 * n)
    _, first = np.unique(G, axis=0, return_index=True)
    G = G[np.sort(first)][:n]
    ids = space.arch_ids(G)
    out = []
    for i, (g, arch_id) in enumerate(zip(G, ids, strict=True)):
        top1 = float(np.round(rng.uniform(50, 95), 2))
        out.append({
            "id": arch_id,
            "genome": g,
            "resolution": space.resolutions[g[0]],
            "width": space.width_mults[g[1]],
            "exit": int(g[space.exit_gene]) + 1 if space.exit_gene is not None else None,
            "top1": top1,
            "error": 1.0 - top1 / 100.0,
            "params": int(rng.integers(100_000, 3_000_000)),
            "macs": int(rng.integers(1_000_000, 90_000_000)),
            "latency": float(rng.uniform(1, 5)) if i % 3 else None,
            "predicted_error": float(rng.uniform(0, 0.5)) if i % 2 else None,
            "iteration": 0,
            "origin": "init",
            "checkpoint_hash": "0123abcd",
            "seed": 7,
        })
    return out


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


# -- format ----------------------------------------------------------------------------------------------------------


def test_schema_order_and_tag():
    assert A.ARCHIVE_COLUMNS == ("id", "genome", "resolution", "width", "exit", "top1", "error", "params", "macs",
                                 "latency", "predicted_error", "iteration", "origin", "checkpoint_hash", "seed")
    assert A.ARCHIVE_SCHEMA.metadata == {b"nat2": b"archive/1"}
    assert set(A.NULLABLE_COLUMNS) == {"exit", "latency", "predicted_error"}


def test_round_trip_and_byte_identical(tmp_path: Path):
    table = A.make_archive(records())
    assert table.schema.equals(A.ARCHIVE_SCHEMA, check_metadata=True)
    p1, p2, p3 = tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "sub" / "c.parquet"
    A.write_archive(p1, table)
    df = A.read_archive(p1)
    assert list(df.columns) == list(A.ARCHIVE_COLUMNS)
    assert str(df["exit"].dtype) == "Int32"
    assert df["latency"].isna().sum() == 4 and df["predicted_error"].isna().sum() == 6
    assert A.make_archive(df).equals(table)
    for got, want in zip(df["genome"], records(), strict=True):
        assert got.dtype == np.int16 and np.array_equal(got, want["genome"])
    A.write_archive(p2, table)
    A.write_archive(p3, A.make_archive(df))          # rewrite of what was read
    A.write_archive(p1, df)                           # overwrite from a DataFrame
    data = p1.read_bytes()
    assert data == p2.read_bytes() == p3.read_bytes()
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".")] == []  # no temp files left


def test_empty_archive_round_trip(tmp_path: Path):
    A.write_archive(tmp_path / "e.parquet", A.make_archive([]))
    df = A.read_archive(tmp_path / "e.parquet")
    assert len(df) == 0 and list(df.columns) == list(A.ARCHIVE_COLUMNS)


def test_make_archive_fills_nullable_and_derives_error():
    space = SearchSpace("se_base", (24, 28, 32), (1.0,))
    recs = [{k: v for k, v in r.items() if k not in ("error", "latency", "predicted_error", "exit")}
            for r in records(5, space=space)]
    table = A.make_archive(recs)
    assert table.column("exit").null_count == 5 and table.column("latency").null_count == 5
    np.testing.assert_allclose(table.column("error").to_numpy(), 1 - table.column("top1").to_numpy() / 100)
    A.check_genomes(table.to_pandas(), space)


@pytest.mark.parametrize(("change", "match"), [
    (lambda r: r.append(dict(r[0])), "repeats id"),
    (lambda r: r[1].update(error=0.5), "error != 1 - top1/100"),
    (lambda r: r[2].update(params="12"), "'params' must hold integers"),
    (lambda r: r[2].update(macs=True), "'macs' must hold integers"),
    (lambda r: r[2].update(top1=120.0, error=-0.2), "top1 outside"),
    (lambda r: r[3].pop("iteration"), "'iteration' has 1 null"),
    (lambda r: r[3].update(genome=r[3]["genome"][:5]), "genome length"),
    (lambda r: r[3].update(genome=[1.5] * 23), "must hold integers"),
    (lambda r: r[3].update(id="XYZ"), "12 lowercase hex"),
    (lambda r: r[0].update(exit=9), "exit outside"),
    (lambda r: r[0].update(exit=None), "mixes a null and a non-null exit"),
    (lambda r: r[0].update(latency=-1.0), "latency"),
    (lambda r: r[0].update(origin=""), "empty origin"),
    (lambda r: r[0].update(bogus=1), "unknown column"),
])
def test_make_archive_rejects(change, match):
    recs = records(6)
    change(recs)
    with pytest.raises(ValueError, match=match):
        A.make_archive(recs)


def test_make_archive_missing_required_column():
    df = pd.DataFrame(records(3)).drop(columns=["macs"])
    with pytest.raises(ValueError, match="missing column 'macs'"):
        A.make_archive(df)


def test_write_refuses_foreign_table(tmp_path: Path):
    table = A.make_archive(records(3)).replace_schema_metadata(None)
    with pytest.raises(ValueError, match="format tag"):
        A.write_archive(tmp_path / "x.parquet", table)
    assert not (tmp_path / "x.parquet").exists()


# -- read errors: one line, naming the file ------------------------------------------------------------------------


def test_read_missing_file(tmp_path: Path):
    p = tmp_path / "iter_2.parquet"
    with pytest.raises(Nat2Error) as exc:
        A.read_archive(p)
    msg = one_line(exc)
    assert str(p) in msg and "does not exist" in msg and "rerun" in msg


@pytest.mark.parametrize("kind", ["random", "truncated", "directory"])
def test_read_corrupt_file(tmp_path: Path, kind: str):
    p = tmp_path / "a.parquet"
    if kind == "random":
        p.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "truncated":
        A.write_archive(p, A.make_archive(records()))
        p.write_bytes(p.read_bytes()[:-40])
    else:
        p.mkdir()
    with pytest.raises(Nat2Error) as exc:
        A.read_archive(p)
    msg = one_line(exc)
    assert str(p) in msg and "not a nat2 archive" in msg


def _schema_variants() -> dict[str, tuple[pa.Table, str]]:
    t = A.make_archive(records(4))
    meta = t.schema.metadata
    wrong_type = t.set_column(t.schema.get_field_index("macs"), pa.field("macs", pa.string(), nullable=False),
                              pa.array([str(v) for v in t.column("macs").to_pylist()]))
    as_float = t.set_column(t.schema.get_field_index("params"), pa.field("params", pa.float64(), nullable=False),
                            t.column("params").cast(pa.float64()))
    return {
        "missing": (t.drop_columns(["macs"]).replace_schema_metadata(meta), "missing column 'macs'"),
        "extra": (t.append_column("notes", pa.array(["x"] * 4)).replace_schema_metadata(meta),
                  "unexpected column 'notes'"),
        "wrong_type": (wrong_type.replace_schema_metadata(meta), "column 'macs' has type string, expected int64"),
        "float_params": (as_float.replace_schema_metadata(meta), "column 'params' has type double"),
        "order": (t.select(["genome", "id", *A.ARCHIVE_COLUMNS[2:]]).replace_schema_metadata(meta), "order"),
        "no_tag": (t.replace_schema_metadata(None), "format tag"),
        "old_tag": (t.replace_schema_metadata({"nat2": "archive/0"}), "'archive/0'"),
        "pandas": (pa.Table.from_pandas(t.to_pandas(), preserve_index=False), "column 'id' has type"),
    }


@pytest.mark.parametrize("case", list(_schema_variants()))
def test_read_wrong_schema(tmp_path: Path, case: str):
    table, match = _schema_variants()[case]
    p = tmp_path / "iter_2.parquet"
    pq.write_table(table, p)
    with pytest.raises(Nat2Error) as exc:
        A.read_archive(p)
    msg = one_line(exc)
    assert msg.startswith(f"{p} is not a nat2 archive (") and match in msg and "rerun the stage" in msg


def test_read_invalid_content(tmp_path: Path):
    t = A.make_archive(records(4))
    i = t.schema.get_field_index("error")
    bad = t.set_column(i, t.schema.field(i), pa.array([0.9, 0.1, 0.2, 0.3]))  # disagrees with top1
    p = tmp_path / "bad.parquet"
    pq.write_table(bad, p)
    with pytest.raises(Nat2Error, match="error != 1 - top1/100") as exc:
        A.read_archive(p)
    assert str(p) in one_line(exc)


# -- genomes ---------------------------------------------------------------------------------------------------------


def test_check_genomes():
    df = pd.DataFrame(records(8))
    A.check_genomes(df, SPACE)
    rng = np.random.default_rng(0)
    assert SPACE.is_canonical(SPACE.repair(rng.uniform(-5, 70, size=(4, SPACE.n_var)))).all()

    short = df.copy()
    short.at[2, "genome"] = short.at[2, "genome"][:-1]
    with pytest.raises(Nat2Error, match="row 2 has a genome of length 22") as exc:
        A.check_genomes(short, SPACE, source="iter_1.parquet")
    assert one_line(exc).startswith("iter_1.parquet:")

    other = SearchSpace("se_dense", (24, 28, 32), (1.0,))  # 22 genes: archive of another variant
    with pytest.raises(Nat2Error, match="length 23"):
        A.check_genomes(df, other)

    g = np.array(df.at[3, "genome"]).copy()
    off = SPACE.layer_offset
    g[off + 2], g[off + 3] = 0, 1                    # stage 0: a zero before a non-zero code
    assert not SPACE.is_canonical(g)
    noncanon = df.copy()
    noncanon.at[3, "genome"] = g
    with pytest.raises(Nat2Error, match="row 3 has a non-canonical genome") as exc:
        A.check_genomes(noncanon, SPACE)
    one_line(exc)

    wrong_id = df.copy()
    wrong_id.at[1, "id"] = "0" * 12
    with pytest.raises(Nat2Error, match="row 1 has id"):
        A.check_genomes(wrong_id, SPACE)
    wrong_res = df.copy()
    wrong_res.at[0, "resolution"] = 99
    with pytest.raises(Nat2Error, match="row 0 has resolution 99"):
        A.check_genomes(wrong_res, SPACE)


def test_dedupe_and_merge():
    df = A.make_archive(records(6)).to_pandas()
    new = df.iloc[[4, 5]].copy()
    new["origin"] = "candidate"
    extra = A.make_archive(records(8, seed=1)).to_pandas().iloc[:2]
    merged = A.merge(df.iloc[:5], pd.concat([new, extra], ignore_index=True))
    assert merged["id"].tolist() == [*df["id"].tolist()[:5], df.at[5, "id"], *extra["id"]]
    assert merged.loc[4, "origin"] == "init"                          # the incumbent row wins
    assert A.dedupe(pd.concat([df, df], ignore_index=True)).equals(df)


# -- objectives, NDS, survival ---------------------------------------------------------------------------------------


def test_objective_matrix():
    df = A.make_archive(records(6)).to_pandas()
    F = A.objective_matrix(df, ["error", "macs"])
    assert F.dtype == np.float64 and F.shape == (6, 2)
    np.testing.assert_array_equal(F[:, 1], df["macs"].to_numpy())
    with pytest.raises(Nat2Error, match="'latency' is missing") as exc:
        A.objective_matrix(df, ["error", "latency"])
    one_line(exc)
    with pytest.raises(ValueError, match="objective names"):
        A.objective_matrix(df, ["error", "flops"])


def test_non_dominated_sorting_hand_made():
    F = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [2, 2], [6, 6], [4, 4.5], [1, 6]], dtype=float)
    assert sel.non_dominated(F).tolist() == [0, 1, 2, 4]
    assert [f.tolist() for f in sel.fronts(F)] == [[0, 1, 2, 4], [3, 7], [6], [5]]
    assert sel.non_dominated(np.zeros((0, 2))).tolist() == [] and sel.fronts(np.zeros((0, 2))) == []


def _pymoo_rank_and_crowding(F: np.ndarray, n: int, seed: int) -> np.ndarray:
    pop = Population.new("F", F)
    idx = RankAndCrowding().do(Problem(n_var=1, n_obj=F.shape[1]), pop, n_survive=n,
                               random_state=np.random.default_rng(seed), return_indices=True)
    return np.sort(np.asarray(idx))


@pytest.mark.parametrize(("N", "n", "seed"), [(60, 30, 0), (120, 50, 1), (40, 37, 2), (325, 300, 3)])
def test_survive_two_objectives_equals_pymoo(N: int, n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.random(N)
    F = np.column_stack([x + 0.3 * rng.random(N), 1 - x + 0.3 * rng.random(N)])  # several fronts, no ties
    got = sel.survive(F, n, seed=0)
    assert got.dtype == np.int64 and len(got) == n == len(np.unique(got))
    assert np.array_equal(got, np.sort(got))
    np.testing.assert_array_equal(got, _pymoo_rank_and_crowding(F, n, seed=11))
    np.testing.assert_array_equal(got, sel.survive(F, n, seed=99))  # no randomness for 2 objectives


def test_survive_duplicates_and_edges():
    rng = np.random.default_rng(5)
    base = rng.random((20, 2))
    F = np.vstack([base, base[:10], np.tile(base[:1], (5, 1))])
    got = sel.survive(F, 20, seed=0)
    assert len(got) == 20 == len(np.unique(got))
    np.testing.assert_array_equal(got, sel.survive(F, 20, seed=0))
    front = sel.non_dominated(F)
    assert set(sel.survive(F, len(front), seed=0)) == set(front)
    # identical rows: the earlier (incumbent) row wins
    same = np.ones((6, 2))
    assert sel.survive(same, 3, seed=0).tolist() == [0, 1, 2]
    assert sel.survive(F, 0, seed=0).tolist() == []
    assert sel.survive(F, 1000, seed=0).tolist() == list(range(len(F)))
    assert sel.survive(np.array([[3.0], [1.0], [2.0], [1.0]]), 2, seed=0).tolist() == [1, 3]
    with pytest.raises(ValueError):
        sel.survive(F, -1, seed=0)
    with pytest.raises(ValueError):
        sel.survive(np.array([[np.nan, 1.0]]), 1, seed=0)


def test_survive_three_objectives_nsga3():
    rng = np.random.default_rng(3)
    w = rng.dirichlet(np.ones(3), size=30)
    F = np.vstack([w, w[:15] + 0.2, rng.random((10, 3)) + 1.0, w[:5]])  # a front, worse copies, duplicates
    filters = list(warnings.filters)
    a = sel.survive(F, 20, seed=42)
    assert list(warnings.filters) == filters  # pymoo's simplefilter("ignore") did not leak
    b = sel.survive(F, 20, seed=42)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 20 == len(np.unique(a)) and np.array_equal(a, np.sort(a))
    assert set(a) <= set(sel.non_dominated(F))      # 35 non-dominated rows (with duplicates) > 20
    c = sel.survive(F, 40, seed=1)                  # the whole first front fits, the rest is niched from front 2
    assert set(sel.non_dominated(F)) <= set(c) and len(c) == 40
    assert len(sel.survive(np.ones((8, 3)), 3, seed=0)) == 3  # all duplicates
    assert len(sel.survive(F, 2, seed=0)) == 2               # fewer survivors than objectives


# -- high trade-off points ---------------------------------------------------------------------------------------------


def _knee_front() -> np.ndarray:
    x = np.linspace(0, 1, 21)
    y = np.where(x < 0.3, 1 - x / 0.3 * 0.9, 0.1 * (1 - (x - 0.3) / 0.7))
    return np.column_stack([x, y])


def test_high_tradeoff_agrees_with_pymoo():
    F = _knee_front()  # already spans [0, 1] in both objectives
    filters = list(warnings.filters)
    S = HighTradeoffPoints().do(F)
    warnings.filters[:] = filters
    assert S is not None and len(S) >= 1
    got = sel.high_tradeoff(F, 4)
    assert list(warnings.filters) == filters
    assert set(got[: len(S)]) == set(S.tolist())
    assert len(got) == 4 == len(set(got.tolist()))
    # scale invariance: the front is normalised internally
    np.testing.assert_array_equal(sel.high_tradeoff(F * [3e6, 1.0] + [1e5, 0.0], 4), got)


def test_high_tradeoff_fill_and_edges():
    F = _knee_front()
    dominated = F[[6, 6, 6]] + [[0.05, 0.05], [0.1, 0.02], [0.02, 0.1]]
    G = np.vstack([F[[0, 6, 20]], dominated, F[[6]]])    # 3 distinct front points, 3 dominated, 1 duplicate
    got = sel.high_tradeoff(G, 6)
    assert len(got) == 6 == len(set(got.tolist()))
    assert set(got[:3]) == {0, 1, 2} and got[3] == 6           # front first, then its duplicate, then rank 2
    assert set(got[4:]) <= {3, 4, 5}
    np.testing.assert_array_equal(sel.high_tradeoff(G, 6), got)
    assert len(sel.high_tradeoff(G, 100)) == len(G)
    assert sel.high_tradeoff(G, 0).tolist() == []
    assert sel.high_tradeoff(np.array([[1.0, 2.0]]), 3).tolist() == [0]
    with pytest.raises(ValueError):
        sel.high_tradeoff(np.array([[1.0], [2.0]]), 1)


# -- hypervolume -------------------------------------------------------------------------------------------------------


def test_hypervolume_hand_computed():
    F = np.array([[0.2, 0.6], [0.5, 0.3]])
    # union of [0.2,1]x[0.6,1] (0.32) and [0.5,1]x[0.3,1] (0.35), overlap [0.5,1]x[0.6,1] (0.2)
    assert ind.hypervolume(F, [1.0, 1.0]) == pytest.approx(0.47)
    assert ind.hypervolume(F, 1.0) == pytest.approx(0.47)
    with_dominated = np.vstack([F, [[0.6, 0.7], [0.5, 0.3]], [[1.2, 0.1]], [[1.0, 0.05]]])
    assert ind.hypervolume(with_dominated, 1.0) == pytest.approx(0.47)   # dominated / beyond-ref points add 0
    assert ind.hypervolume(np.array([[1.5, 1.5]]), 1.0) == 0.0
    assert ind.hypervolume(np.zeros((0, 2)), 1.0) == 0.0
    assert ind.hypervolume(np.array([[0.5, 0.5, 0.5]]), 1.05) == pytest.approx(0.55 ** 3)


def test_fixed_normalisation_makes_hv_comparable():
    names = ["error", "params", "macs"]
    max_costs = {"params": 4e6, "macs": 1e8}
    front = np.array([[0.30, 1e6, 2e7], [0.20, 2e6, 5e7], [0.15, 3e6, 8e7]])
    # another run's archive: the same front plus a dominated, very large network
    other = np.vstack([front, [[0.40, 3.9e6, 9.9e7]]])
    Fn = ind.normalise(front, names, max_costs)
    np.testing.assert_allclose(Fn[:, 0], front[:, 0])
    np.testing.assert_allclose(Fn[:, 1:], front[:, 1:] / [4e6, 1e8])
    hv1 = ind.hypervolume(Fn, 1.05)
    hv2 = ind.hypervolume(ind.normalise(other, names, max_costs), 1.05)
    assert hv1 == hv2 > 0
    # the reference code's per-run reference point (1.01 x the archive's max) gives different values
    def per_run(F: np.ndarray) -> float:
        ref = 1.01 * F.max(axis=0)
        return ind.hypervolume(F / ref, 1.0)
    assert per_run(front) != pytest.approx(per_run(other))
    with pytest.raises(ValueError, match="max_costs"):
        ind.normalise(front, names, {"params": 4e6})
    with pytest.raises(ValueError, match="max_costs"):
        ind.normalise(front, names, {"params": 4e6, "macs": 0.0})


def test_no_torch_import():
    import subprocess
    import sys

    code = "import sys, nat2.archive; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
