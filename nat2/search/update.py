"""Iteration step 3: evaluate the candidates and update the archive (method.md §3.5 steps 5-6, §4.2).

The candidates are evaluated on the iteration's super-net, the predictor is scored on them (rank correlations),
and the archive either grows by them (NAT: append) or is cut back to ``archive_size`` by rank-and-crowding survival
(NAT2; NSGA-III niching for 3+ objectives).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nat2 import archive as arc
from nat2.config import SearchConfig
from nat2.context import CACHE_DIR, RunContext, build_evaluator
from nat2.genome_list import read_genomes
from nat2.indicators import archive_stats, max_costs
from nat2.io import write_json
from nat2.search.inputs import check_iteration, read_search_archive, step_seed
from nat2.search.policy import resolve_policy
from nat2.selection import survive
from nat2.space import SearchSpace

__all__ = ["update_archive_step"]


def update_archive_step(search: SearchConfig, space: SearchSpace, ctx: RunContext, iteration: int, archive: Path,
                        candidates: Path, supernet: Path, out: Path, stats_out: Path,
                        cache_dir: Path | None = CACHE_DIR) -> dict[str, Any]:
    """Evaluate the candidates, score the predictor on them, and update the archive (append or survival)."""
    from nat2.surrogate import rank_metrics

    check_iteration(search, iteration)
    ev = build_evaluator(ctx, space, supernet, cache_dir, latency="latency" in search.objectives)
    pol = resolve_policy(search)
    df = read_search_archive(archive, space, ev.checkpoint_hash, supernet)
    cand = read_genomes(candidates, space)
    G = np.stack(cand["genome"].to_numpy()) if len(cand) else np.zeros((0, space.n_var), np.int64)
    pred = cand["predicted_error"].to_numpy(dtype=np.float64)
    new = pd.DataFrame(ev.evaluate(G, iteration=iteration, origin="candidate", seed=ctx.seed,
                                   predicted=None if np.isnan(pred).all() else pred))
    merged = arc.merge(df, new) if len(new) else df
    if pol.update == "survival" and len(merged) > search.archive_size:
        F = arc.objective_matrix(merged, search.objectives)
        merged = merged.iloc[np.sort(survive(F, search.archive_size,
                                             seed=step_seed(ctx.seed, "update_archive", iteration)))]
    arc.write_archive(out, arc.make_archive(merged.reset_index(drop=True)))
    metrics = rank_metrics(new["error"].to_numpy(), pred) if len(new) > 2 and not np.isnan(pred).any() else {}
    cols = ["id", "top1", "error", "predicted_error", "params", "macs", "latency"]
    stats = {"iteration": iteration, "evaluated": len(new), "kept_candidates": int(merged["id"].isin(
        set(new["id"])).sum()) if len(new) else 0, "predictor_on_candidates": metrics,
        "candidates": new[cols].to_dict("records") if len(new) else [],
        **archive_stats(merged, search.objectives, max_costs(space, ev.cost_model)),
        "update": pol.update}
    write_json(stats_out, stats)
    return stats
