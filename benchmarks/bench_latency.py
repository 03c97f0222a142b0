"""Latency look-up table of the search space: build time, held-out accuracy and prediction speed on this machine.

Measures the LUT of params.yaml's space (``supernet``) with params' ``latency`` settings on ``runtime.device`` with
``runtime.threads`` (:func:`nat2.latency.profile.profile_space`, as the ``profile_latency`` stage does), fits the
per-network overhead on ``latency.fit_subnets`` random sub-networks timed end to end and validates the model on
``latency.validate_subnets`` further ones. Prediction speed: the vectorised model over 10,000 random genomes, best
of 5. Prints a short table; the last line holds the headline figures (Kendall tau and MAPE on the held-out
sub-networks, LUT build seconds, microseconds per predicted architecture).

    python benchmarks/bench_latency.py [--params params.yaml] [--num-classes 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nat2.config import load_params
from nat2.latency import LatencyModel
from nat2.latency.profile import profile_space
from nat2.latency.timing import make_timer
from nat2.runtime import memory_format, setup_torch
from nat2.space import SearchSpace


def prediction_us(model: LatencyModel, space: SearchSpace, n: int = 10_000, repeats: int = 5) -> float:
    """Microseconds per architecture of one vectorised prediction over ``n`` random genomes (best of ``repeats``)."""
    X = space.sample(np.random.default_rng(0), n, "uniform_depth")
    model(X[:10])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(X)
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--num-classes", type=int, default=10)
    args = parser.parse_args()
    params = load_params(args.params)
    cfg, threads = params.latency, params.runtime.threads
    device = setup_torch(params.runtime)
    space = SearchSpace.from_config(params.supernet)
    timer = make_timer(cfg.backend, device, memory_format(params.runtime), threads, cfg.batch_size, cfg.warmup,
                       cfg.repeats, cfg.rounds)
    prof = profile_space(space, args.num_classes, timer, fit_subnets=cfg.fit_subnets,
                         validate_subnets=cfg.validate_subnets, seed=params.seed, threads=threads,
                         progress=lambda msg: print(msg, flush=True))
    model = LatencyModel(space, args.num_classes, prof.table, prof.meta)
    per_arch = prediction_us(model, space)
    s, meta = prof.stats, prof.meta
    sub = prof.subnets
    held = sub[sub["role"] == "validate"]

    print(f"space {space.variant.name} w{list(space.width_mults)} r{list(space.resolutions)}: {s['blocks']} blocks, "
          f"{meta['backend']} on {meta['device']} ({meta['device_name']}), {threads} thread(s), batch "
          f"{meta['batch_size']}, {cfg.rounds} round(s) x ({cfg.warmup} warm-up + {cfg.repeats} timed)")
    print(f"fit on {cfg.fit_subnets} sub-networks: latency = {s['scale']:.3f} * lut_sum + {s['offset_ms']:.3f} ms")
    print(f"{'':34s} {'n':>4s} {'tau':>7s} {'MAPE %':>8s} {'max APE %':>10s}")
    for name, st in (("fit sub-networks (fitted)", s["fit"]), ("held-out, raw LUT sum", s["raw_sum"]),
                     ("held-out, fitted model", s)):
        print(f"{name:34s} {st['n']:4d} {st['kendall_tau']:7.3f} {st['mape']:8.1f} {st['max_ape']:10.1f}")
    print(f"held-out measured {held['measured_ms'].min():.2f} .. {held['measured_ms'].max():.2f} ms; LUT build "
          f"{s['lut_s']:.1f} s; prediction {per_arch:.1f} us/arch (10k genomes, vectorised)")
    print(f"bench_latency: tau={s['kendall_tau']:.3f} mape={s['mape']:.1f} lut_s={s['lut_s']:.1f} "
          f"per_arch_us={per_arch:.1f}")


if __name__ == "__main__":
    main()
