"""Iteration 0: the initial design, its evaluation in shards, and the initial archive (method.md §3.4, §4.1).

``sample_initial`` draws ``archive_size - 2`` architectures with the ``search.init`` sampling policy (NAT2:
``archive_size x preprocess_mult - 2``, "arch_space" sampling) and adds the min and max architectures;
``evaluate_shard`` evaluates every n-th of them (shards are parallel jobs); ``init_archive`` merges the shards and,
for NAT2, keeps ``archive_size - 2`` of the over-sampled design by rank-and-crowding survival (NSGA-III niching for
3+ objectives) before adding the bounds back.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nat2 import archive as arc
from nat2.config import SearchConfig
from nat2.context import CACHE_DIR, RunContext, build_evaluator
from nat2.errors import Nat2Error
from nat2.genome_list import read_genomes, write_genomes
from nat2.indicators import archive_stats, max_costs
from nat2.io import atomic_path, write_json
from nat2.search.inputs import step_seed
from nat2.search.policy import resolve_policy
from nat2.search.sampling import initial_genomes
from nat2.seeds import numpy_rng
from nat2.selection import survive
from nat2.space import SearchSpace

__all__ = ["evaluate_shard", "init_archive", "sample_initial"]


def sample_initial(search: SearchConfig, space: SearchSpace, seed: int, out: Path) -> int:
    """Write the initial design: the sampled architectures, then the min and max architectures."""
    pol = resolve_policy(search)
    n = search.archive_size - 2
    if pol.preprocess:
        n = search.archive_size * search.preprocess_mult - 2
    G = initial_genomes(space, pol.init, n, numpy_rng(seed, "init_archive", 0))
    bounds = np.stack([space.min_genome(), space.max_genome()])
    write_genomes(out, space, np.concatenate([G, bounds]), ["init"] * len(G) + ["bound", "bound"])
    return len(G) + 2


def evaluate_shard(ctx: RunContext, space: SearchSpace, shards: Sequence[int], shard: int, genomes: Path,
                   supernet: Path, out: Path, iteration: int = 0, cache_dir: Path | None = CACHE_DIR, *,
                   latency: bool = False) -> int:
    """Evaluate every ``n``-th genome of a genome list (``n`` = number of ``search.shards``) into an archive file.

    ``latency``: record the predicted latency (the latency objective is searched).
    """
    n = len(shards)
    if shard not in shards:
        raise Nat2Error(f"--shard {shard} is not one of search.shards {list(shards)}")
    ev = build_evaluator(ctx, space, supernet, cache_dir, latency=latency)
    df = read_genomes(genomes, ev.space)
    part = df.iloc[shard::n]
    G = np.stack(part["genome"].to_numpy()) if len(part) else np.zeros((0, ev.space.n_var), np.int64)
    records = []
    for origin in ("init", "bound", "candidate"):
        mask = (part["origin"] == origin).to_numpy()
        if mask.any():
            pred = part["predicted_error"].to_numpy()[mask]
            records += ev.evaluate(G[mask], iteration=iteration, origin=origin, seed=ctx.seed,
                                   predicted=None if np.isnan(pred).all() else pred)
    order = {arch_id: i for i, arch_id in enumerate(df["id"])}
    records.sort(key=lambda r: order[r["id"]])
    arc.write_archive(out, arc.make_archive(records))
    return len(records)


def init_archive(search: SearchConfig, space: SearchSpace, ctx: RunContext, shard_files: list[Path],
                 supernet: Path, out: Path, supernet_out: Path, stats_out: Path) -> dict[str, Any]:
    """Merge the evaluated shards into the initial archive (+ NAT2 pre-processing) and record its stats.

    The super-net is copied to ``supernet_out``: iteration 1 continues from it. ``ctx`` gives the seed and the
    class count (read from the split file only when the stats are computed).
    """
    parts = [arc.read_archive(f) for f in shard_files]
    df = pd.concat(parts, ignore_index=True) if parts else None
    if df is None or df.empty:
        raise Nat2Error("the initial design has no evaluated architecture; rerun the evaluate shards")
    arc.check_genomes(df, space)
    sampled, bounds = df[df["origin"] == "init"], df[df["origin"] == "bound"]
    keep = search.archive_size - len(bounds)
    if len(sampled) > keep:  # NAT2 pre-processing: rank-and-crowding (NSGA-III for 3+) survival
        F = arc.objective_matrix(sampled, search.objectives)
        sampled = sampled.iloc[np.sort(survive(F, keep, seed=step_seed(ctx.seed, "init_archive", 0)))]
    result = arc.dedupe(pd.concat([sampled, bounds], ignore_index=True))
    arc.write_archive(out, arc.make_archive(result))
    with atomic_path(supernet_out) as tmp:  # the super-net iteration 1 continues from
        shutil.copyfile(supernet, tmp)
    scale = max_costs(space, ctx.cost_model(space, latency="latency" in search.objectives))
    stats = {"iteration": 0, "evaluated": len(df), **archive_stats(result, search.objectives, scale)}
    write_json(stats_out, stats)
    return stats
