"""Cost of one search iteration, split into evaluation, surrogate fit, inner search, selection and adaptation.

Archive of ``--archive`` (300) real genomes of the default space; evaluation and adaptation are timed on a
randomly initialised super-net over params.yaml's data (Fashion-MNIST: 960 calibration + 5,000 validation images)
and extrapolated to one iteration (``candidates + archive`` evaluations, ``search.adapt.epochs`` of training);
fit, inner search and selection are timed end to end. Also the cost of one subnet evaluation (BN recalibration +
validation) over a plain eval-mode forward of the extracted subnet over the same images. Last line: the headline.

    python benchmarks/bench_search.py [--archive 300] [--evals 12] [--steps 6]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from nat2.config import load_params
from nat2.costs import CostModel
from nat2.data import EvalSet, TrainLoader, load_source, make_split
from nat2.data.split import Split
from nat2.evaluate import accuracy, evaluate_arch
from nat2.indicators import cost_matrix
from nat2.search.inner import inner_search
from nat2.search.sampling import initial_genomes
from nat2.selection import non_dominated, select_candidates
from nat2.space import SearchSpace
from nat2.supernet import SuperNetSet
from nat2.surrogate import fit_surrogate
from nat2.train.losses import subnet_loss
from nat2.train.optim import build_sgd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=int, default=300)
    parser.add_argument("--evals", type=int, default=12)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    cfg = params.search
    torch.set_num_threads(params.runtime.threads)
    torch.set_flush_denormal(True)
    space = SearchSpace.from_config(params.supernet)
    rng = np.random.default_rng(0)
    source = load_source(params.data, params.seed)
    split = Split.from_table(make_split(source, params.data, params.seed))
    fmt = torch.channels_last
    calib = EvalSet(source, split, "calib", memory_format=fmt, augment=params.data.augment, seed=params.seed)
    val = EvalSet(source, split, "val", memory_format=fmt)
    nets = SuperNetSet(space, source.num_classes, generator=torch.Generator().manual_seed(0)).to(
        memory_format=fmt).eval()
    model = CostModel(space, source.num_classes)

    # evaluation: per arch, and its cost over a plain forward of the same images
    G = initial_genomes(space, "arch_space", args.evals, rng)
    t_eval, ratios = [], []
    for g in G:
        arch = space.decode(g)
        for r in space.resolutions:  # materialise every resolution once, outside the timings
            calib.get(r), val.get(r)
        t0 = time.perf_counter()
        evaluate_arch(nets, arch, calib, val, calib_batch_size=params.data.calib_batch_size,
                      eval_batch_size=params.data.eval_batch_size, memory_format=fmt)
        t_eval.append(time.perf_counter() - t0)
        sub = nets.extract(arch).to(memory_format=fmt).eval()
        t0 = time.perf_counter()
        with torch.inference_mode():
            for x, _ in calib.batches(arch.resolution, params.data.calib_batch_size):
                sub(x)
        accuracy(sub, val.batches(arch.resolution, params.data.eval_batch_size))
        ratios.append(t_eval[-1] / (time.perf_counter() - t0))
    per_eval = statistics.median(t_eval)
    evaluation = per_eval * (cfg.candidates + args.archive)

    # surrogate fit, inner search, selection on an archive of real genomes (errors from a smooth proxy)
    A = initial_genomes(space, "arch_space", args.archive, rng)
    macs = model(A)["macs"].astype(float)
    y = 0.3 - 0.2 * (macs / macs.max()) + rng.normal(0, 0.01, len(A))
    t0 = time.perf_counter()
    fit = fit_surrogate(cfg.surrogate, space.features(A, "integer"), y, seed=0, threads=params.runtime.threads,
                        folds=cfg.surrogate_folds)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = inner_search(space, lambda X: fit.model.predict(space.features(X, "integer")),
                       lambda X: cost_matrix(space, model, cfg.objectives, X), len(cfg.objectives),
                       pop_size=cfg.pop_size, generations=cfg.generations, crossover_prob=cfg.crossover_prob,
                       mutation_eta=cfg.mutation_eta, repair="fill", seed=0)
    t_search = time.perf_counter() - t0
    F = np.column_stack([y, cost_matrix(space, model, cfg.objectives, A)])
    front = F[non_dominated(F)][:, 1:]
    t0 = time.perf_counter()
    select_candidates(cost_matrix(space, model, cfg.objectives, res.X), res.F[:, 0], front, cfg.candidates)
    t_select = time.perf_counter() - t0

    # adaptation: training steps of the configured subnets per step, extrapolated to the configured epochs
    loader = TrainLoader(source, split, batch_size=cfg.adapt.batch_size, resolutions=space.resolutions,
                         augment=params.data.augment, seed=0, memory_format=fmt)
    net = nets.net(space.width_mults[0]).train()
    opt = build_sgd(net, 1e-3, 0.9, 0.0)
    times = []
    for b, (x, yb) in zip(range(args.steps + 1), loader.epoch(0), strict=False):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        for g in initial_genomes(space, "arch_space", cfg.adapt.subnets_per_step, rng):
            net.set_active(space.decode(g))
            subnet_loss(net(x), yb, 0.1, None, 0.0).backward()
        opt.step()
        if b:
            times.append(time.perf_counter() - t0)
    adaptation = statistics.median(times) * len(loader) * cfg.adapt.epochs
    total = evaluation + t_fit + t_search + t_select + adaptation
    overhead = (t_fit + t_search + t_select) / total
    print(f"per iteration: evaluation {evaluation:.1f}s ({cfg.candidates}+{args.archive} archs x {per_eval:.2f}s), "
          f"fit {t_fit:.2f}s, inner search {t_search:.2f}s, selection {t_select:.3f}s, adaptation {adaptation:.1f}s "
          f"({cfg.adapt.epochs} epoch(s)), total {total:.1f}s")
    print(f"bench_search: overhead_fraction={overhead:.4f} eval_over_forward={statistics.median(ratios):.3f} "
          f"fit_s={t_fit:.2f} search_s={t_search:.2f} select_s={t_select:.3f} eval_s={evaluation:.1f} "
          f"adapt_s={adaptation:.1f} archive={args.archive} threads={params.runtime.threads}")


if __name__ == "__main__":
    main()
