"""Iteration step 4: adapt the super-net to the archive, then re-evaluate the archive (method.md §3.5 steps 7-9).

The archive's top-N members (rank-and-crowding survival, NSGA-III niching for 3+ objectives) give a per-gene
categorical distribution (:func:`nat2.search.distribution.gene_distribution`); each width's super-net is trained
for ``search.adapt.epochs`` on subnets drawn from it, with KD from a frozen max network, then every archive member
is re-evaluated on the new weights, so archive accuracies always describe the current super-net.

Each sampled subnet's width comes from the distribution too (method.md §3.5 step 8: the reference draws the
width gene and trains that width's engine), so a width the archive's top members rarely use trains on few steps.
Width super-nets are independent, so training them one after another on one shared, position-seeded stream of
draws equals the reference's joint loop; steps with no subnet of a width leave that width untouched.

Schedule: as in the reference, ONE cosine spans all iterations (``iterations x epochs``, after
``warmup_epochs`` of linear warm-up), and the optimiser state of iteration i-1 is loaded in iteration i (it travels
inside the super-net file), so splitting the run into pipeline stages changes nothing. The batch resolution comes
from the loader (uniform over ``supernet.resolutions``); the distribution's resolution gene is not used for
training, as in the reference. The loss and optimiser settings are ``search.adapt``'s own; only how a step is
executed (micro-batches, mixed precision, in-run checkpoints) is shared with super-net training (``train.*``).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nat2 import archive as arc
from nat2.checkpoint import load_supernet, save_supernet
from nat2.config import PHASES, AdaptConfig, SearchConfig, TrainConfig, params_hash
from nat2.context import CACHE_DIR, RunContext, build_evaluator
from nat2.errors import Nat2Error
from nat2.indicators import archive_stats, max_costs
from nat2.io import atomic_dir, atomic_path, write_json
from nat2.live import LIVE_KEYS, EpochLive, live_folder, publish
from nat2.manifest import file_digest
from nat2.search.distribution import gene_distribution, sample_from_distribution
from nat2.search.inputs import check_iteration, check_measured_on, read_search_archive
from nat2.selection import survive
from nat2.space import Arch, SearchSpace
from nat2.supernet import SuperNetSet

__all__ = ["adapt_supernet_step", "adaptation_sampler", "adaptation_steps"]

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


def adaptation_steps(adapt: AdaptConfig, train: TrainConfig) -> Any:
    """How adaptation computes a step: ``search.adapt``'s loss and optimiser, ``train``'s execution settings.

    Returns a :class:`nat2.train.progressive.StepSettings`; no validation of corner subnets runs during adaptation
    (the re-evaluation of the archive replaces it), so the validation settings are inert here.
    """
    from nat2.train.progressive import StepSettings

    return StepSettings(kd_ratio=adapt.kd_ratio, label_smoothing=adapt.label_smoothing, momentum=adapt.momentum,
                        weight_decay=adapt.weight_decay, grad_clip=adapt.grad_clip, exit_weights=adapt.exit_weights,
                        micro_batches=train.micro_batches, amp=train.amp,
                        checkpoint_every_steps=train.checkpoint_every_steps,
                        checkpoint_minutes=train.checkpoint_minutes, val_subnets=train.val_subnets,
                        validate_every_epochs=train.validate_every_epochs)


def _teacher(ctx: RunContext, adapt: AdaptConfig, nets: Any, full: Path | None, space: SearchSpace,
             calib: Any) -> Any:
    """Frozen, BN-recalibrated widest max network: of the current super-net, or of the full training phase."""
    from nat2.train.phase_run import load_phase_weights

    widest = max(space.width_mults)
    teacher = copy.deepcopy(nets.net(widest))
    if adapt.teacher == "warmup_max":
        if full is None:
            raise Nat2Error("search.adapt.teacher = warmup_max: pass --full results/supernet/full.pt")
        load_phase_weights(teacher, full, PHASES[0])
    return ctx.frozen_teacher(teacher, dataclasses.replace(space.max_arch(), width_mult=widest), space, calib)


def adapt_supernet_step(search: SearchConfig, train: TrainConfig, space: SearchSpace, ctx: RunContext,
                        iteration: int, archive: Path, supernet: Path, full: Path | None, supernet_out: Path,
                        archive_out: Path, stats_out: Path, *, dropout: float, resume_settings: Mapping[str, Any],
                        partial_root: Path = Path("results/.partial/adapt_supernet"),
                        cache_dir: Path | None = CACHE_DIR) -> dict[str, Any]:
    """Adapt the super-net on the archive's distribution, then re-evaluate the archive on the new weights.

    Args:
        search: the ``search`` settings (``adapt``, ``top_n``, the objectives and the iteration chain).
        train: super-net training's settings, for how a step executes (:func:`adaptation_steps`).
        space: the search space.
        ctx: the run context (device, data, split).
        iteration: the iteration (a key of ``search.iterations``).
        archive: the updated archive of this iteration (measured on ``supernet``).
        supernet: the super-net the iteration started from.
        full: the full phase's checkpoint (the ``warmup_max`` teacher).
        supernet_out: the adapted super-net to write (with the optimiser states the next iteration continues).
        archive_out: the re-evaluated archive to write.
        stats_out: the step's statistics (JSON) to write; the epochs' dvclive folders go next to it
            (``adapt.json`` -> ``adapt.live/<width key>/``).
        dropout: ``supernet.dropout``, active while the super-net trains.
        resume_settings: the settings an in-run checkpoint must match to be resumed (the stage's resume key).
        partial_root: where in-run checkpoints live.
        cache_dir: the evaluation cache (None: off).
    """
    import torch

    from nat2.train.progressive import LoopSpec, train_phase

    cfg = search.adapt
    check_iteration(search, iteration)
    df = read_search_archive(archive, space)
    order = list(search.iteration_order)
    position = order.index(str(iteration))
    if cfg.epochs == 0:  # no adaptation: the weights, and so the archive's accuracies, stay as they are
        check_measured_on(df, archive, load_supernet(supernet, space)[1]["content_hash"], supernet)
        with atomic_path(supernet_out) as tmp:
            shutil.copyfile(supernet, tmp)
        arc.write_archive(archive_out, arc.make_archive(df))
        with atomic_dir(live_folder(stats_out)) as live_out:
            for width in space.width_mults:  # dvclive's record of zero epochs
                EpochLive(live_out / SuperNetSet.key(width), LIVE_KEYS).close()
        stats = {"iteration": iteration, "adapted": False}
        write_json(stats_out, stats)
        return stats

    device, fmt = ctx.device, ctx.memory_format
    _ = ctx.split
    nets, meta = ctx.load_supernet(supernet, space, dropout=dropout)
    check_measured_on(df, archive, meta["content_hash"], supernet)  # measured on these weights
    calib, val = ctx.evalset("calib"), ctx.evalset("val")
    teacher = _teacher(ctx, cfg, nets, full, space, calib)

    F = arc.objective_matrix(df, search.objectives)
    top = df.iloc[np.sort(survive(F, min(search.top_n, len(df)), seed=ctx.seed))]
    G_top = np.stack(top["genome"].to_numpy()).astype(np.int64)
    dists = gene_distribution(space, G_top, cfg.smoothing)
    # the archive (its top-N drives the draws) and the split by content, with the input super-net's weights
    run_hash = params_hash({**resume_settings, "iteration": iteration, "in": meta["content_hash"],
                            "archive": file_digest(archive), "split": file_digest(ctx.split_path)}, length=16)
    steps = adaptation_steps(cfg, train)
    optimizers = meta.get("optimizers", {})
    new_optimizers: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    widths_rows: dict[str, list[dict[str, Any]]] = {}
    partial = partial_root / f"{iteration}-{run_hash}"
    sample = adaptation_sampler(space, dists)  # one stream of draws for every width (see the module docstring)
    for width in space.width_mults:
        wkey = nets.key(width)
        spec = LoopSpec(name=f"adapt@{iteration}", seed_stage="adapt_supernet", seed_iteration=iteration,
                        epochs=cfg.epochs, warmup_epochs=0, lr=cfg.lr, subnets_per_step=cfg.subnets_per_step,
                        sample=sample, fixed_arch=None, corners=None, lr_epoch_offset=position * cfg.epochs,
                        lr_total_epochs=max(len(order) * cfg.epochs - cfg.warmup_epochs, 1),
                        lr_warmup_epochs=cfg.warmup_epochs)
        loader = ctx.train_loader(batch_size=cfg.batch_size, resolutions=space.resolutions, stage="adapt_supernet",
                                  iteration=iteration, images_per_epoch=cfg.images_per_epoch)
        result = train_phase(nets.net(width), space, spec, steps, loader, teacher=teacher, calib=calib, val=val,
                             seed=ctx.seed, calib_batch_size=ctx.data.calib_batch_size,
                             eval_batch_size=ctx.data.eval_batch_size, device=device, memory_format=fmt,
                             partial_dir=partial / wkey, run_hash=run_hash,
                             optimizer_state=optimizers.get(wkey), live_dir=partial / wkey / "live")
        new_optimizers[wkey] = result.optimizer_state
        history += [{**row, "width": width} for row in result.state.history]
        widths_rows[wkey] = result.state.history
    nets = nets.cpu().to(memory_format=torch.contiguous_format)
    save_supernet(supernet_out, nets, {**{k: v for k, v in meta.items() if k not in ("content_hash", "optimizers")},
                                       "optimizers": new_optimizers, "adapted_iteration": iteration})
    ev = build_evaluator(ctx, space, supernet_out, cache_dir, latency="latency" in search.objectives)
    G = np.stack(df["genome"].to_numpy()).astype(np.int64)
    records = pd.DataFrame(ev.evaluate(G, iteration=iteration, origin="reevaluated", seed=ctx.seed))
    out = df.copy()
    for col in ("top1", "error", "checkpoint_hash"):
        out[col] = records[col].to_numpy()
    arc.write_archive(archive_out, arc.make_archive(out))
    stats = {"iteration": iteration, "adapted": True, "history": history, "top_n": len(top),
             "checkpoint_hash": ev.checkpoint_hash,
             **archive_stats(out, search.objectives, max_costs(space, ev.cost_model))}
    write_json(stats_out, stats)
    with atomic_dir(live_folder(stats_out)) as live_out:
        for wkey, rows in widths_rows.items():
            publish(partial / wkey / "live", live_out / wkey, rows)
    shutil.rmtree(partial, ignore_errors=True)
    return stats
