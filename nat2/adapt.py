"""Super-net adaptation after a search iteration (NAT's step 4) and re-evaluation of the archive.

The archive's top-N members (rank-and-crowding survival, NSGA-III niching for 3+ objectives) give a per-gene
categorical distribution (:func:`nat2.search.gene_distribution`); each width's super-net is trained for
``search.adapt.epochs`` on subnets drawn from it, with KD from a frozen max network, then every archive member is
re-evaluated on the new weights, so archive accuracies always describe the current super-net.

Each sampled subnet's width comes from the distribution too (method.md §3.5 step 8: the reference draws the
width gene and trains that width's engine), so a width the archive's top members rarely use trains on few steps.
Width super-nets are independent, so training them one after another on one shared, position-seeded stream of
draws equals the reference's joint loop; steps with no subnet of a width leave that width untouched.

Schedule: as in the reference, ONE cosine spans all iterations (``iterations x epochs``, after
``warmup_epochs`` of linear warm-up), and the optimiser state of iteration i-1 is loaded in iteration i (it travels
inside the super-net file), so splitting the run into pipeline stages changes nothing. The batch resolution comes
from the loader (uniform over ``supernet.resolutions``); the distribution's resolution gene is not used for
training, as in the reference.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nat2 import archive as arc
from nat2.checkpoint import load_supernet, save_supernet
from nat2.config import Params, params_hash, to_dict
from nat2.errors import Nat2Error
from nat2.io import atomic_path, write_json
from nat2.loop import (
    CACHE_DIR,
    archive_stats,
    build_evaluator,
    check_iteration,
    check_measured_on,
    read_search_archive,
)
from nat2.search import gene_distribution, sample_from_distribution
from nat2.space import Arch, SearchSpace

__all__ = ["adapt_supernet_step", "adaptation_sampler"]

log = logging.getLogger(__name__)


def adaptation_sampler(space: SearchSpace, dists: list[np.ndarray]) -> Callable[[np.random.Generator, float, int],
                                                                              Arch | None]:
    """The subnet sampler of adaptation: ``(rng, width, resolution) -> Arch``, or None for another width's draw.

    The width gene is drawn like every other gene (the reference draws it and trains that width's engine); a
    draw of another width belongs to that width's super-net, whose run draws the same stream (seeded by epoch and
    batch only) and trains it there. The resolution is the batch's, as in the reference.
    """

    def sample(rng: np.random.Generator, width: float, resolution: int) -> Arch | None:
        arch = space.decode(sample_from_distribution(space, dists, 1, rng)[0])
        if not math.isclose(arch.width_mult, width, rel_tol=1e-9):
            return None
        return dataclasses.replace(arch, resolution=resolution)

    return sample


def _teacher(params: Params, nets: Any, full: Path | None, space: SearchSpace, calib: Any, fmt: Any,
             device: Any) -> Any:
    """Frozen, BN-recalibrated widest max network: of the current super-net, or of the full training phase."""
    import copy

    from nat2.supernet import recalibrate_bn
    from nat2.train.phase_run import load_phase_weights

    widest = max(space.width_mults)
    if params.search.adapt.teacher == "warmup_max":
        if full is None:
            raise Nat2Error("search.adapt.teacher = warmup_max: pass --full results/supernet/full.pt")
        teacher = copy.deepcopy(nets.net(widest))
        load_phase_weights(teacher, full, params.train.phases[0])
    else:
        teacher = copy.deepcopy(nets.net(widest))
    teacher = teacher.to(device=device, memory_format=fmt).eval()
    teacher.set_active(dataclasses.replace(space.max_arch(), width_mult=widest))
    batches = [x for r in space.resolutions for x, _ in calib.batches(r, params.data.calib_batch_size)]
    recalibrate_bn(teacher, batches, forward="forward_all_exits" if space.variant.early_exit else "forward")
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def adapt_supernet_step(params: Params, iteration: int, archive: Path, supernet: Path, split: Path,
                        full: Path | None, supernet_out: Path, archive_out: Path, stats_out: Path,
                        partial_root: Path = Path("results/.partial/adapt_supernet"),
                        cache_dir: Path | None = CACHE_DIR) -> dict[str, Any]:
    """Adapt the super-net on the archive's distribution, then re-evaluate the archive on the new weights."""
    import torch

    from nat2.data import EvalSet, TrainLoader, load_source, read_split
    from nat2.runtime import memory_format, setup_torch
    from nat2.train.progressive import LoopSpec, train_phase

    cfg = params.search.adapt
    space = SearchSpace.from_config(params.supernet)
    check_iteration(params, iteration)
    df = read_search_archive(archive, space)
    order = list(params.search.iteration_order)
    position = order.index(str(iteration))
    if cfg.epochs == 0:  # no adaptation: the weights, and so the archive's accuracies, stay as they are
        check_measured_on(df, archive, load_supernet(supernet, space)[1]["content_hash"], supernet)
        with atomic_path(supernet_out) as tmp:
            shutil.copyfile(supernet, tmp)
        arc.write_archive(archive_out, arc.make_archive(df))
        stats = {"iteration": iteration, "adapted": False}
        write_json(stats_out, stats)
        return stats

    device = setup_torch(params.runtime)
    fmt = memory_format(params.runtime)
    source = load_source(params.data, params.seed, threads=params.runtime.threads)
    sp = read_split(split)
    sp.check_source(source)
    nets, meta = load_supernet(supernet, space, num_classes=source.num_classes, dropout=params.supernet.dropout)
    check_measured_on(df, archive, meta["content_hash"], supernet)  # measured on these weights
    nets = nets.to(device=device, memory_format=fmt)
    calib = EvalSet(source, sp, "calib", device=device, memory_format=fmt, augment=params.data.augment,
                    seed=params.seed)
    val = EvalSet(source, sp, "val", device=device, memory_format=fmt)
    teacher = _teacher(params, nets, full, space, calib, fmt, device)

    F = arc.objective_matrix(df, params.search.objectives)
    top = df.iloc[np.sort(arc.survive(F, min(params.search.top_n, len(df)), seed=params.seed))]
    G_top = np.stack(top["genome"].to_numpy()).astype(np.int64)
    dists = gene_distribution(space, G_top, cfg.smoothing)
    run_hash = params_hash({"seed": params.seed, "data": to_dict(params.data), "supernet": to_dict(params.supernet),
                            "train": to_dict(params.train), "search": to_dict(params.search),
                            "iteration": iteration, "in": meta["content_hash"]}, length=16)
    optimizers = meta.get("optimizers", {})
    new_optimizers: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    sample = adaptation_sampler(space, dists)  # one stream of draws for every width (see the module docstring)
    for width in space.width_mults:
        wkey = nets.key(width)
        spec = LoopSpec(name=f"adapt@{iteration}", seed_stage="adapt_supernet", seed_iteration=iteration,
                        epochs=cfg.epochs, warmup_epochs=0, lr=cfg.lr, subnets_per_step=cfg.subnets_per_step,
                        sample=sample, fixed_arch=None, corners=None, lr_epoch_offset=position * cfg.epochs,
                        lr_total_epochs=max(len(order) * cfg.epochs - cfg.warmup_epochs, 1),
                        lr_warmup_epochs=cfg.warmup_epochs)
        loader = TrainLoader(source, sp, batch_size=params.train.batch_size, resolutions=space.resolutions,
                             augment=params.data.augment, seed=params.seed, stage="adapt_supernet",
                             iteration=iteration, device=device, memory_format=fmt)
        net = nets.net(width)
        result = train_phase(net, space, spec, params.train, loader, teacher=teacher, calib=calib, val=val,
                             seed=params.seed, calib_batch_size=params.data.calib_batch_size,
                             eval_batch_size=params.data.eval_batch_size, device=device, memory_format=fmt,
                             partial_dir=partial_root / f"{iteration}-{run_hash}" / wkey, run_hash=run_hash,
                             optimizer_state=optimizers.get(wkey))
        new_optimizers[wkey] = result.optimizer_state
        history += [{**row, "width": width} for row in result.state.history]
    nets = nets.cpu().to(memory_format=torch.contiguous_format)
    save_supernet(supernet_out, nets, {**{k: v for k, v in meta.items() if k not in ("content_hash", "optimizers")},
                                       "optimizers": new_optimizers, "adapted_iteration": iteration})
    ev = build_evaluator(params, supernet_out, split, cache_dir)
    G = np.stack(df["genome"].to_numpy()).astype(np.int64)
    records = pd.DataFrame(ev.evaluate(G, iteration=iteration, origin="reevaluated", seed=params.seed))
    out = df.copy()
    for col in ("top1", "error", "checkpoint_hash"):
        out[col] = records[col].to_numpy()
    arc.write_archive(archive_out, arc.make_archive(out))
    stats = {"iteration": iteration, "adapted": True, "history": history, "top_n": len(top),
             "checkpoint_hash": ev.checkpoint_hash, **archive_stats(out, params, space, ev.cost_model)}
    write_json(stats_out, stats)
    shutil.rmtree(partial_root / f"{iteration}-{run_hash}", ignore_errors=True)
    return stats

