"""The search loop on a tiny super-net: determinism, repair, NAT / NAT2 / random policies, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import SYNTHETIC, train_chain, write_params

from nat2 import archive as arc
from nat2 import indicators as ind
from nat2 import selection as sel
from nat2.config import load_params
from nat2.context import RunContext
from nat2.genome_list import read_genomes
from nat2.search.propose import propose_candidates
from nat2.space import SearchSpace
from nat2.stages import (
    adapt_supernet,
    assemble_supernet,
    evaluate,
    fit_surrogate,
    init_archive,
    sample_initial,
    search,
    update_archive,
)

SEARCH = {**SYNTHETIC, "search.iterations": {"1": "0", "2": "1"}, "search.final": "2", "search.archive_size": 12,
          "search.candidates": 3, "search.preprocess_mult": 2, "search.pop_size": 20, "search.generations": 4,
          "search.top_n": 6, "search.surrogate_folds": 3, "search.shards": [0, 1], "search.adapt.epochs": 0}


@pytest.fixture(scope="module")
def supernet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A split and a trained tiny super-net file (full + kernel phases on synthetic data)."""
    d = tmp_path_factory.mktemp("search")
    params = write_params(d / "train.yaml", SEARCH)
    split, _ = train_chain(d, params, ["full", "kernel"])
    sn = d / "supernet.pt"
    assert assemble_supernet.main(["--params", str(params), "--phase-ckpt", str(d / "kernel.pt"), "--out",
                                   str(sn)]) == 0
    return split, sn, d / "full.pt"


def run_search(root: Path, params: Path, split: Path, sn: Path, full: Path, iterations: int = 2) -> Path:
    """The pipeline's search stages, in order, into ``root``."""
    base = ["--params", str(params)]
    cache = ["--cache-dir", str(root / "cache")]
    s0 = root / "iter_0"
    assert sample_initial.main([*base, "--out", str(s0 / "design.parquet")]) == 0
    for shard in (0, 1):
        assert evaluate.main([*base, *cache, "--genomes", str(s0 / "design.parquet"), "--supernet", str(sn),
                              "--split", str(split), "--shard", str(shard),
                              "--out", str(s0 / "evals" / f"shard_{shard}.parquet")]) == 0
    assert init_archive.main([*base, "--evals", str(s0 / "evals"), "--supernet", str(sn), "--split", str(split),
                              "--out", str(s0 / "archive.parquet"), "--out-supernet", str(s0 / "supernet.pt"),
                              "--stats", str(s0 / "stats.json")]) == 0
    for i in range(1, iterations + 1):
        prev, cur = root / f"iter_{i - 1}", root / f"iter_{i}"
        it = ["--iteration", str(i)]
        assert fit_surrogate.main([*base, *it, "--archive", str(prev / "archive.parquet"), "--out",
                                   str(cur / "surrogate.model.json"), "--report", str(cur / "surrogate.json")]) == 0
        assert search.main([*base, *it, "--archive", str(prev / "archive.parquet"), "--surrogate",
                            str(cur / "surrogate.model.json"), "--split", str(split), "--out",
                            str(cur / "candidates.parquet"), "--stats", str(cur / "search.json")]) == 0
        assert update_archive.main([*base, *cache, *it, "--archive", str(prev / "archive.parquet"), "--candidates",
                                    str(cur / "candidates.parquet"), "--supernet", str(prev / "supernet.pt"),
                                    "--split", str(split), "--out", str(cur / "updated.parquet"), "--stats",
                                    str(cur / "update.json")]) == 0
        assert adapt_supernet.main([*base, *cache, *it, "--archive", str(cur / "updated.parquet"), "--supernet",
                                    str(prev / "supernet.pt"), "--split", str(split), "--full", str(full),
                                    "--out-supernet", str(cur / "supernet.pt"), "--out-archive",
                                    str(cur / "archive.parquet"), "--stats", str(cur / "adapt.json"),
                                    "--partial-root", str(root / "partial")]) == 0
    return root


@pytest.fixture(scope="module")
def policy_runs(supernet: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    split, sn, full = supernet
    runs = {}
    for policy in ("nat", "nat2", "random"):
        d = tmp_path_factory.mktemp(policy)
        params = write_params(d / "params.yaml", {**SEARCH, "search.policy": policy})
        runs[policy] = run_search(d / "run", params, split, sn, full)
    return runs


def ids(path: Path) -> list[str]:
    return list(arc.read_archive(path)["id"])


def test_nat_appends_and_keeps_the_bounds(policy_runs: dict[str, Path]) -> None:
    run = policy_runs["nat"]
    space = SearchSpace.from_config(load_params(run.parent / "params.yaml").supernet)
    final = arc.read_archive(run / "iter_2" / "archive.parquet")
    assert len(final) == SEARCH["search.archive_size"] + 2 * SEARCH["search.candidates"]
    assert {space.arch_id(space.min_genome()), space.arch_id(space.max_genome())} <= set(final["id"])
    assert len(arc.read_archive(run / "iter_0" / "archive.parquet")) == SEARCH["search.archive_size"]


def test_nat2_keeps_a_fixed_size_by_rank_and_crowding(policy_runs: dict[str, Path]) -> None:
    import json

    from pymoo.core.population import Population
    from pymoo.core.problem import Problem
    from pymoo.operators.survival.rank_and_crowding import RankAndCrowding

    run = policy_runs["nat2"]
    space = SearchSpace.from_config(load_params(run.parent / "params.yaml").supernet)
    for i in (1, 2):
        prev = arc.read_archive(run / f"iter_{i - 1}" / "archive.parquet")
        updated = arc.read_archive(run / f"iter_{i}" / "updated.parquet")
        cand = read_genomes(run / f"iter_{i}" / "candidates.parquet", space)
        assert not set(cand["id"]) & set(prev["id"]), "a candidate was already in the archive"
        assert len(updated) == SEARCH["search.archive_size"]
        evaluated = pd.DataFrame(json.loads((run / f"iter_{i}" / "update.json").read_text())["candidates"])
        assert list(evaluated["id"]) == list(cand["id"])
        union = pd.concat([prev[["id", "error", "macs"]], evaluated[["id", "error", "macs"]]], ignore_index=True)
        F = union[["error", "macs"]].to_numpy(dtype=float)
        # pymoo breaks crowding ties at random: our deterministic choice must be one of its outcomes
        outcomes = []
        for seed in range(30):
            pop = Population.new(F=F, index=np.arange(len(F)))
            survivors = RankAndCrowding().do(Problem(n_var=1, n_obj=2), pop, n_survive=SEARCH["search.archive_size"],
                                             random_state=np.random.default_rng(seed))
            outcomes.append({union["id"][int(k)] for k in survivors.get("index")})
        assert set(updated["id"]) in outcomes


def test_random_search_evaluates_as_many_candidates(policy_runs: dict[str, Path]) -> None:
    import json

    counts = {p: [json.loads((r / f"iter_{i}" / "update.json").read_text())["evaluated"] for i in (1, 2)]
              for p, r in policy_runs.items()}
    assert counts["random"] == counts["nat"] == counts["nat2"] == [SEARCH["search.candidates"]] * 2


def test_search_is_deterministic(supernet: tuple[Path, Path, Path], tmp_path: Path) -> None:
    split, sn, full = supernet
    overrides = {**SEARCH, "search.adapt.epochs": 1, "search.iterations": {"1": "0"}, "search.final": "1"}
    params = write_params(tmp_path / "params.yaml", overrides)
    a = run_search(tmp_path / "a", params, split, sn, full, iterations=1)
    b = run_search(tmp_path / "b", params, split, sn, full, iterations=1)
    for name in ("iter_0/archive.parquet", "iter_1/candidates.parquet", "iter_1/updated.parquet",
                 "iter_1/archive.parquet", "iter_1/surrogate.json", "iter_1/adapt.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    adapted = arc.read_archive(a / "iter_1" / "archive.parquet")
    assert adapted["checkpoint_hash"].nunique() == 1
    assert adapted["checkpoint_hash"][0] != arc.read_archive(a / "iter_1" / "updated.parquet")["checkpoint_hash"][0]


def test_every_genome_the_surrogate_scores_is_canonical(policy_runs: dict[str, Path],
                                                        supernet: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run = policy_runs["nat2"]
    params = load_params(run.parent / "params.yaml", overrides={"search.generations": 15})
    space = SearchSpace.from_config(params.supernet)
    seen = {"n": 0, "bad": 0}

    def record(G: np.ndarray) -> None:
        seen["n"] += len(G)
        seen["bad"] += int((~space.is_canonical(G)).sum())

    propose_candidates(params.search, space, RunContext.from_params(params, supernet[0]), 1,
                       run / "iter_0" / "archive.parquet", run / "iter_1" / "surrogate.model.json",
                       tmp_path / "c.parquet", tmp_path / "s.json", on_evaluate=record)
    assert seen["n"] >= 15 * params.search.pop_size // 2 and seen["bad"] == 0


def test_bad_inputs_fail_with_one_line(policy_runs: dict[str, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    run = policy_runs["nat2"]
    params = str(run.parent / "params.yaml")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 garbage")
    capsys.readouterr()
    assert fit_surrogate.main(["--params", params, "--iteration", "1", "--archive", str(bad), "--out",
                               str(tmp_path / "m.pkl"), "--report", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.parquet" in err
    assert not (tmp_path / "m.pkl").exists()
    # an archive of another search space (genome length 22 vs 23)
    other = write_params(tmp_path / "se.yaml", {**SEARCH, "supernet.variant": "se_dense"})
    assert fit_surrogate.main(["--params", str(other), "--iteration", "1", "--archive",
                               str(run / "iter_0" / "archive.parquet"), "--out", str(tmp_path / "m.pkl"),
                               "--report", str(tmp_path / "r.json")]) == 2
    assert "genome" in capsys.readouterr().err
    # a super-net file of another variant
    assert update_archive.main(["--params", str(other), "--iteration", "1", "--archive",
                                str(run / "iter_0" / "archive.parquet"), "--candidates",
                                str(run / "iter_1" / "candidates.parquet"), "--supernet",
                                str(run / "iter_0" / "supernet.pt"), "--split", str(tmp_path / "none.parquet"),
                                "--out", str(tmp_path / "u.parquet"), "--stats", str(tmp_path / "u.json")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "u.parquet").exists()


def _hv_sweep(points: np.ndarray, ref: float) -> float:
    """2-D hypervolume by a sweep over error (independent of pymoo/moocore): horizontal slabs of the staircase."""
    hv, y_prev = 0.0, ref
    for x, y in sorted(map(tuple, points)):
        if x < ref and y < y_prev:
            hv += (ref - x) * (y_prev - y)
            y_prev = y
    return hv


def test_hypervolume_is_recorded_on_a_fixed_scale(policy_runs: dict[str, Path]) -> None:
    import json

    from nat2.costs import CostModel

    for run in policy_runs.values():
        params = load_params(run.parent / "params.yaml")
        space = SearchSpace.from_config(params.supernet)
        max_macs = float(CostModel(space, 10)(space.max_genome()[None])["macs"][0])
        ref = params.search.hv_ref
        stats = [json.loads((run / "iter_0" / "stats.json").read_text())]
        stats += [json.loads((run / f"iter_{i}" / "update.json").read_text()) for i in (1, 2)]
        assert all("hv" not in s for s in stats)  # the reference point is the report's (search.hv_ref)
        archives = [run / "iter_0" / "archive.parquet"] + [run / f"iter_{i}" / "updated.parquet" for i in (1, 2)]
        for path in archives:
            df = arc.read_archive(path)
            hv = ind.archive_stats(df, params.search.objectives, {"macs": max_macs}, ref)["hv"]
            points = np.column_stack([1.0 - df["top1"].to_numpy() / 100.0, df["macs"].to_numpy() / max_macs])
            assert hv == pytest.approx(_hv_sweep(points, ref), rel=1e-12, abs=1e-15)
            assert 0.0 < hv < ref**2


def test_hypervolume_sweep_on_a_hand_made_front() -> None:
    """The reference sweep itself, on points whose area is worked out by hand."""
    pts = np.array([[0.2, 0.6], [0.4, 0.3], [0.7, 0.1], [0.5, 0.5], [1.2, 0.0]])  # (0.5, 0.5) dominated; 1.2 > ref
    # slabs: (1 - 0.2)(1 - 0.6) + (1 - 0.4)(0.6 - 0.3) + (1 - 0.7)(0.3 - 0.1) = 0.32 + 0.18 + 0.06
    assert _hv_sweep(pts, 1.0) == pytest.approx(0.56)
    assert ind.hypervolume(pts, 1.0) == pytest.approx(0.56)


def test_extract_writes_fixed_slots_that_load_and_match(policy_runs: dict[str, Path],
                                                       supernet: tuple[Path, Path, Path], tmp_path: Path) -> None:
    import json

    import torch
    from test_supernet import hook_count

    import nat2
    from nat2.costs import CostModel
    from nat2.stages import extract

    run = policy_runs["nat2"]
    params_file = run.parent / "params.yaml"
    out = tmp_path / "extract"
    args = ["--params", str(params_file), "--archive", str(run / "iter_2" / "archive.parquet"), "--supernet",
            str(run / "iter_2" / "supernet.pt"), "--split", str(supernet[0]), "--out", str(out)]
    assert extract.main(args) == 0
    params = load_params(params_file)
    slots = sorted(out.glob("slot_*"))
    assert [s.name for s in slots] == [f"slot_{k}" for k in params.postprocess.slots]
    cards = [json.loads((s / "card.json").read_text()) for s in slots]
    assert len({c["id"] for c in cards}) == len(cards)
    archive = arc.read_archive(run / "iter_2" / "archive.parquet")
    front = arc.read_archive(out / "front.parquet")
    F = arc.objective_matrix(archive, params.search.objectives)
    assert set(front["id"]) == set(archive["id"].iloc[sel.non_dominated(F)])
    space = SearchSpace.from_config(params.supernet)
    model = CostModel(space, cards[0]["num_classes"])
    for slot, card in zip(slots, cards, strict=True):
        module = nat2.load_subnet(slot)
        assert not module.training
        costs = model(np.asarray(card["genome"])[None])
        assert (card["params"], card["macs"]) == (int(costs["params"][0]), int(costs["macs"][0]))
        assert hook_count(module, card["resolution"]) == (card["params"], card["macs"])
        x = torch.randn(2, 3, card["resolution"], card["resolution"])
        with torch.no_grad():
            assert torch.isfinite(module(x)).all()
    # rerunning gives the same bytes (weights recalibrated deterministically)
    again = tmp_path / "again"
    assert extract.main([*args[:-1], str(again)]) == 0
    for name in ("slot_0/weights.pt", "slot_0/card.json", "front.parquet"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    # too many slots for the archive: one line, nothing written
    # (now refused when the params are validated, before any stage runs)
    import yaml
    from helpers import params_dict

    many = tmp_path / "many.yaml"
    many.write_text(yaml.safe_dump(params_dict(overrides={**SEARCH, "postprocess.slots": list(range(64))})))
    bad = tmp_path / "bad"
    assert extract.main(["--params", str(many), *args[2:-1], str(bad)]) == 2
    assert not bad.exists()


@pytest.mark.parametrize("n_obj", [2, 3])
def test_inner_search_repeats_for_a_seed_and_differs_across_seeds(n_obj: int) -> None:
    """NSGA-II and NSGA-III (with its reference directions) depend on the seed only, not on global RNG state."""
    from nat2.costs import CostModel
    from nat2.search.inner import inner_search

    space = SearchSpace("ee_dense", (24, 28, 32), (1.0,))
    model = CostModel(space, 10)
    mx = model(space.max_genome()[None])

    def costs(G: np.ndarray) -> np.ndarray:
        c = model(G)
        cols = [c["macs"] / mx["macs"][0], c["params"] / mx["params"][0]][:n_obj - 1]
        return np.column_stack(cols)

    def predict(G: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.log1p(model(G)["macs"] / 1e5))

    def run(seed: int, global_seed: int) -> np.ndarray:
        np.random.seed(global_seed)  # a different global state must not matter
        return inner_search(space, predict, costs, n_obj, pop_size=24, generations=4, crossover_prob=0.9,
                            mutation_eta=1.0, repair="fill", seed=seed).X

    a, b, c = run(7, 0), run(7, 1), run(8, 0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_reference_directions_follow_the_seed() -> None:
    """pymoo's get_reference_directions(seed=) uses seed 1 whatever it is given; ours use the seed."""
    from nat2.selection import reference_directions

    a, b, c = reference_directions(3, 24, 7), reference_directions(3, 24, 7), reference_directions(3, 24, 8)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (24, 3) and np.allclose(a.sum(axis=1), 1.0)
    assert not np.allclose(a, c)


def test_three_objective_search_runs_nsga3_end_to_end(supernet: tuple[Path, Path, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """error + params + macs: NSGA-III inner search, NSGA-III survival, 3-D hypervolume, on the tiny chain."""
    import json

    import nat2.search.inner as S

    built = []

    class SpyNSGA3(S.NSGA3):
        def __init__(self, *args: object, **kwargs: object) -> None:
            built.append(kwargs["ref_dirs"].shape)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(S, "NSGA3", SpyNSGA3)
    split, sn, full = supernet
    names = ["error", "params", "macs"]
    params = write_params(tmp_path / "params.yaml", {**SEARCH, "search.objectives": names})
    run = run_search(tmp_path / "run", params, split, sn, full)
    assert built == [(SEARCH["search.pop_size"], 3)] * 2  # one inner NSGA-III per iteration
    p = load_params(params)
    space = SearchSpace.from_config(p.supernet)
    from nat2.costs import CostModel

    mx = CostModel(space, 10)(space.max_genome()[None])
    max_costs = {"params": float(mx["params"][0]), "macs": float(mx["macs"][0])}
    for i in (1, 2):
        prev = arc.read_archive(run / f"iter_{i - 1}" / "archive.parquet")
        updated = arc.read_archive(run / f"iter_{i}" / "updated.parquet")
        assert len(updated) == SEARCH["search.archive_size"]
        stats = json.loads((run / f"iter_{i}" / "update.json").read_text())
        new = pd.DataFrame(stats["candidates"])
        assert len(new) == SEARCH["search.candidates"]
        assert not set(new["id"]) & set(prev["id"])
        Fn = ind.normalise(arc.objective_matrix(updated, names), names, max_costs)
        hv = ind.archive_stats(updated, names, max_costs, p.search.hv_ref)["hv"]
        assert "hv" not in stats and hv == pytest.approx(ind.hypervolume(Fn, p.search.hv_ref), rel=1e-12)
        assert 0.0 < hv < p.search.hv_ref ** 3
