"""The NAT / NAT2 loop as file-in, file-out steps (each pipeline stage calls one function here).

Iteration 0 (``init_archive``): sample the initial design, evaluate it (in shards), keep ``archive_size`` members
(NAT2 pre-processing: rank-and-crowding survival of an over-sampled design), add the min and max architectures.
Iteration i (continuing ``p`` in ``search.iterations``):

1. ``fit_surrogate``: fit the predictor on archive ``p`` (features per ``search.encoding``);
2. ``search``: inner NSGA-II/III on the predictor, then K new candidates spread along the front's cost axes
   (random search: K new uniform architectures);
3. ``update_archive``: evaluate the candidates on super-net ``p``, score the predictor on them, merge (NAT:
   append; NAT2: survival back to ``archive_size``);
4. ``adapt_supernet``: train the super-net on subnets drawn from the archive's top-N gene distribution, then
   re-evaluate every archive member on the new weights.

Every random choice derives from ``SeedSequence([seed, stage, iteration])``, so one iteration rerun alone gives the
same bytes.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nat2 import archive as arc
from nat2.checkpoint import load_supernet
from nat2.config import Params, to_dict
from nat2.costs import CostModel
from nat2.errors import Nat2Error
from nat2.evaluate import EvalCache, Evaluator, eval_context_key
from nat2.io import atomic_path, write_json
from nat2.search import (
    initial_genomes,
    inner_search,
    random_candidates,
    select_candidates,
    unique_new,
)
from nat2.seeds import numpy_rng
from nat2.space import SearchSpace

__all__ = [
    "archive_stats",
    "build_evaluator",
    "evaluate_shard",
    "fit_surrogate_step",
    "init_archive",
    "sample_initial",
    "search_step",
    "update_archive_step",
]

log = logging.getLogger(__name__)

CACHE_DIR = Path("results/.cache/evaluations")


def _space(params: Params) -> SearchSpace:
    return SearchSpace.from_config(params.supernet)


def _seed_int(params: Params, stage: str, iteration: int) -> int:
    return int(numpy_rng(params.seed, stage, iteration).integers(2**31 - 1))


def _max_costs(space: SearchSpace, model: CostModel) -> dict[str, float]:
    c = model(space.max_genome()[None])
    return {"params": float(c["params"][0]), "macs": float(c["macs"][0]), "latency": 1.0}


def read_search_archive(path: Path, space: SearchSpace, evaluated_on: str | None = None,
                        supernet: Path | None = None) -> pd.DataFrame:
    """An archive a search stage continues from: readable, of this space, not empty, measured on ``evaluated_on``.

    ``evaluated_on`` is the content hash of the super-net the stage was given (None: not checked). An archive's
    accuracies are only meaningful on the weights they were measured on: giving iteration 2's archive with the
    pre-adaptation super-net, or a super-net from another run, would mix numbers from two networks.
    """
    df = arc.read_archive(path)
    arc.check_genomes(df, space)
    if df.empty:
        raise Nat2Error(f"archive {path} holds no architecture; rerun the stage that writes it")
    if evaluated_on is not None:
        check_measured_on(df, path, evaluated_on, supernet)
    return df


def check_measured_on(df: pd.DataFrame, path: Path, evaluated_on: str, supernet: Path | None) -> None:
    """Refuse an archive (read from ``path``) whose records were measured on another super-net than ``supernet``."""
    other = sorted(set(df["checkpoint_hash"]) - {evaluated_on})
    if other:
        raise Nat2Error(f"archive {path} was evaluated on super-net {other[0]} but --supernet {supernet} is "
                        f"{evaluated_on}; pass the super-net of the same iteration (iter_<i>/supernet.pt)")


def check_iteration(params: Params, iteration: int) -> str:
    """``iteration`` as the key of ``search.iterations`` it must be (one line naming the chain otherwise)."""
    key = str(iteration)
    if key not in params.search.iterations:
        raise Nat2Error(f"--iteration {iteration} is not in the search.iterations chain "
                        f"{list(params.search.iteration_order)}; pick one of those")
    return key


def cost_matrix(space: SearchSpace, model: CostModel, objectives: tuple[str, ...], G: np.ndarray) -> np.ndarray:
    """Exact cost objectives (every objective but error) of genomes ``G``, normalised by the max arch's costs."""
    c = model(G)
    mx = _max_costs(space, model)
    cols = []
    for name in objectives[1:]:
        if name == "latency":
            raise Nat2Error("the latency objective needs measured latency, not available in the inner search yet; "
                            "use params or macs")
        cols.append(c[name].astype(np.float64) / mx[name])
    return np.column_stack(cols)


def archive_stats(df: pd.DataFrame, params: Params, space: SearchSpace, model: CostModel) -> dict[str, Any]:
    """HV on the fixed normalisation, front size, best top-1: comparable across iterations, runs and policies."""
    names = params.search.objectives
    F = arc.normalise(arc.objective_matrix(df, names), names, _max_costs(space, model))
    front = arc.non_dominated(F)
    return {"hv": arc.hypervolume(F, params.search.hv_ref), "size": len(df), "front_size": len(front),
            "best_top1": float(df["top1"].max())}


def build_evaluator(params: Params, supernet: Path, split: Path, cache_dir: Path | None = CACHE_DIR) -> Evaluator:
    """Load data, super-net and cost model once for a stage that evaluates many architectures."""
    from nat2.data import EvalSet, load_source, read_split
    from nat2.runtime import memory_format, setup_torch

    device = setup_torch(params.runtime)
    fmt = memory_format(params.runtime)
    space = _space(params)
    source = load_source(params.data, params.seed, threads=params.runtime.threads)
    sp = read_split(split)
    sp.check_source(source)
    nets, meta = load_supernet(supernet, space, num_classes=source.num_classes)
    nets = nets.to(device=device, memory_format=fmt).eval()
    calib = EvalSet(source, sp, "calib", device=device, memory_format=fmt, augment=params.data.augment,
                    seed=params.seed)
    val = EvalSet(source, sp, "val", device=device, memory_format=fmt)
    key = eval_context_key(meta["content_hash"], calib, val, calib_batch_size=params.data.calib_batch_size,
                           eval_batch_size=params.data.eval_batch_size, memory_format=fmt, device=device)
    return Evaluator(space, nets, meta["content_hash"], calib, val, CostModel(space, source.num_classes),
                     params.data.calib_batch_size, params.data.eval_batch_size, fmt, EvalCache(cache_dir, key))


# -- iteration 0 ----------------------------------------------------------------------------------------------------


def sample_initial(params: Params, out: Path) -> int:
    """Write the initial design: the sampled architectures, then the min and max architectures."""
    space, pol = _space(params), params.search.resolved()
    n = params.search.archive_size - 2
    if pol.preprocess:
        n = params.search.archive_size * params.search.preprocess_mult - 2
    G = initial_genomes(space, pol.init, n, numpy_rng(params.seed, "init_archive", 0))
    bounds = np.stack([space.min_genome(), space.max_genome()])
    arc.write_genomes(out, space, np.concatenate([G, bounds]), ["init"] * len(G) + ["bound", "bound"])
    return len(G) + 2


def evaluate_shard(params: Params, genomes: Path, supernet: Path, split: Path, shard: int, out: Path,
                   iteration: int = 0, cache_dir: Path | None = CACHE_DIR) -> int:
    """Evaluate every ``n``-th genome of a genome list (``n`` = number of ``search.shards``) into an archive file."""
    n = len(params.search.shards)
    if shard not in params.search.shards:
        raise Nat2Error(f"--shard {shard} is not one of search.shards {list(params.search.shards)}")
    ev = build_evaluator(params, supernet, split, cache_dir)
    df = arc.read_genomes(genomes, ev.space)
    part = df.iloc[shard::n]
    G = np.stack(part["genome"].to_numpy()) if len(part) else np.zeros((0, ev.space.n_var), np.int64)
    records = []
    for origin in ("init", "bound", "candidate"):
        mask = (part["origin"] == origin).to_numpy()
        if mask.any():
            pred = part["predicted_error"].to_numpy()[mask]
            records += ev.evaluate(G[mask], iteration=iteration, origin=origin, seed=params.seed,
                                   predicted=None if np.isnan(pred).all() else pred)
    order = {arch_id: i for i, arch_id in enumerate(df["id"])}
    records.sort(key=lambda r: order[r["id"]])
    arc.write_archive(out, arc.make_archive(records))
    return len(records)


def init_archive(params: Params, shard_files: list[Path], supernet: Path, split: Path, out: Path,
                 supernet_out: Path, stats_out: Path) -> dict[str, Any]:
    """Merge the evaluated shards into the initial archive (+ NAT2 pre-processing) and record its stats."""
    space = _space(params)
    parts = [arc.read_archive(f) for f in shard_files]
    df = pd.concat(parts, ignore_index=True) if parts else None
    if df is None or df.empty:
        raise Nat2Error("the initial design has no evaluated architecture; rerun the evaluate shards")
    arc.check_genomes(df, space)
    sampled, bounds = df[df["origin"] == "init"], df[df["origin"] == "bound"]
    keep = params.search.archive_size - len(bounds)
    if len(sampled) > keep:  # NAT2 pre-processing: rank-and-crowding (NSGA-III for 3+) survival
        F = arc.objective_matrix(sampled, params.search.objectives)
        sampled = sampled.iloc[np.sort(arc.survive(F, keep, seed=_seed_int(params, "init_archive", 0)))]
    result = arc.dedupe(pd.concat([sampled, bounds], ignore_index=True))
    arc.write_archive(out, arc.make_archive(result))
    with atomic_path(supernet_out) as tmp:  # the super-net iteration 1 continues from
        shutil.copyfile(supernet, tmp)
    stats = {"iteration": 0, "evaluated": len(df),
             **archive_stats(result, params, space, CostModel(space, _num_classes(split)))}
    write_json(stats_out, stats)
    return stats


# -- one iteration -----------------------------------------------------------------------------------------------------


def fit_surrogate_step(params: Params, iteration: int, archive: Path, model_out: Path, report_out: Path) -> dict:
    """Fit the accuracy predictor on an archive; write the model file (JSON, no pickle) and its CV report."""
    from nat2.surrogate import fit_surrogate, save_surrogate

    check_iteration(params, iteration)
    space, pol = _space(params), params.search.resolved()
    df = read_search_archive(archive, space)
    X = space.features(np.stack(df["genome"].to_numpy()).astype(np.int64), pol.encoding)
    result = fit_surrogate(params.search.surrogate, X, df["error"].to_numpy(dtype=np.float64),
                           seed=_seed_int(params, "fit_surrogate", iteration), threads=params.runtime.threads,
                           folds=params.search.surrogate_folds)
    save_surrogate(model_out, result, X, df["error"].to_numpy(dtype=np.float64), encoding=pol.encoding,
                   threads=params.runtime.threads, folds=params.search.surrogate_folds)
    report = {"iteration": iteration, "encoding": pol.encoding, **result.report}
    write_json(report_out, report)
    return report


def search_step(params: Params, iteration: int, archive: Path, surrogate: Path, split: Path, out: Path,
                stats_out: Path, on_evaluate: Any = None) -> dict[str, Any]:
    """Propose ``search.candidates`` new architectures (surrogate-guided, or uniform for random search)."""
    check_iteration(params, iteration)
    space, pol, cfg = _space(params), params.search.resolved(), params.search
    df = read_search_archive(archive, space)
    known = set(df["id"])
    model = CostModel(space, _num_classes(split))
    seed = _seed_int(params, "search", iteration)
    if not pol.surrogate_guided:
        G = random_candidates(space, cfg.candidates, known, numpy_rng(params.seed, "search", iteration))
        arc.write_genomes(out, space, G, ["candidate"] * len(G))
        stats = {"iteration": iteration, "policy": cfg.policy, "candidates": len(G)}
        write_json(stats_out, stats)
        return stats
    from nat2.surrogate import load_surrogate

    predictor, stored = load_surrogate(surrogate)
    if stored.encoding != pol.encoding or stored.model != cfg.surrogate:
        raise Nat2Error(f"{surrogate} holds a {stored.model} surrogate on {stored.encoding} features but params ask "
                        f"for {cfg.surrogate} on {pol.encoding}; rerun fit_surrogate")
    if stored.features.shape[1] != space.n_features(pol.encoding):
        raise Nat2Error(f"{surrogate} was fitted on {stored.features.shape[1]} features, this search space has "
                        f"{space.n_features(pol.encoding)}; rerun fit_surrogate")

    def predict(G: np.ndarray) -> np.ndarray:
        return predictor.predict(space.features(G, pol.encoding))

    res = inner_search(space, predict, lambda G: cost_matrix(space, model, cfg.objectives, G),
                       len(cfg.objectives), pop_size=cfg.pop_size, generations=cfg.generations,
                       crossover_prob=cfg.crossover_prob, mutation_eta=cfg.mutation_eta, repair=pol.repair,
                       seed=seed, on_evaluate=on_evaluate)
    pool = unique_new(space, res.X, known)
    pool_pred = predict(pool) if len(pool) else np.zeros(0)
    F_arch = arc.normalise(arc.objective_matrix(df, cfg.objectives), cfg.objectives,
                           _max_costs(space, model))
    front = F_arch[arc.non_dominated(F_arch)][:, 1:]
    chosen = select_candidates(cost_matrix(space, model, cfg.objectives, pool) if len(pool) else
                               np.zeros((0, len(cfg.objectives) - 1)), pool_pred, front, cfg.candidates)
    G = pool[chosen]
    arc.write_genomes(out, space, G, ["candidate"] * len(G), pool_pred[chosen])
    stats = {"iteration": iteration, "policy": cfg.policy, "pool": len(pool), "candidates": len(G),
             "predicted_error_min": float(pool_pred[chosen].min()) if len(G) else None}
    write_json(stats_out, stats)
    return stats


def _num_classes(split: Path) -> int:
    """The dataset's class count (the classifier's size is part of every cost), read from the split file."""
    from nat2.data import read_split

    return int(read_split(split).num_classes)


def update_archive_step(params: Params, iteration: int, archive: Path, candidates: Path, supernet: Path,
                        split: Path, out: Path, stats_out: Path, cache_dir: Path | None = CACHE_DIR) -> dict[str, Any]:
    """Evaluate the candidates, score the predictor on them, and update the archive (append or survival)."""
    from nat2.surrogate import rank_metrics

    check_iteration(params, iteration)
    ev = build_evaluator(params, supernet, split, cache_dir)
    space, pol = ev.space, params.search.resolved()
    df = read_search_archive(archive, space, ev.checkpoint_hash, supernet)
    cand = arc.read_genomes(candidates, space)
    G = np.stack(cand["genome"].to_numpy()) if len(cand) else np.zeros((0, space.n_var), np.int64)
    pred = cand["predicted_error"].to_numpy(dtype=np.float64)
    new = pd.DataFrame(ev.evaluate(G, iteration=iteration, origin="candidate", seed=params.seed,
                                   predicted=None if np.isnan(pred).all() else pred))
    merged = arc.merge(df, new) if len(new) else df
    if pol.update == "survival" and len(merged) > params.search.archive_size:
        F = arc.objective_matrix(merged, params.search.objectives)
        merged = merged.iloc[np.sort(arc.survive(F, params.search.archive_size,
                                                  seed=_seed_int(params, "update_archive", iteration)))]
    arc.write_archive(out, arc.make_archive(merged.reset_index(drop=True)))
    metrics = rank_metrics(new["error"].to_numpy(), pred) if len(new) > 2 and not np.isnan(pred).any() else {}
    cols = ["id", "top1", "error", "predicted_error", "params", "macs"]
    stats = {"iteration": iteration, "evaluated": len(new), "kept_candidates": int(merged["id"].isin(
        set(new["id"])).sum()) if len(new) else 0, "predictor_on_candidates": metrics,
        "candidates": new[cols].to_dict("records") if len(new) else [],
        **archive_stats(merged, params, space, ev.cost_model), "policy": to_dict(pol)}
    write_json(stats_out, stats)
    return stats
