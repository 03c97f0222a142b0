"""One phase of OFAv2 extended progressive shrinking, resumable to the step.

Per step (method.md §2.3): the teacher's soft targets are computed once for the batch; ``subnets_per_step``
subnets are drawn from the phase's allowed values with a generator seeded by (seed, phase, epoch, batch), each
subnet's loss (label-smoothed CE + ``kd_ratio`` x KD) is back-propagated, and one optimiser step follows. The
``full`` phase trains the max network alone, with AEP's joint loss over all exits in early-exit variants.

Everything random is a function of the seed and the position (epoch, batch): the loader's order, resolution and
augmentation, the sampled subnets, and dropout, whose global-RNG stream is confined to ``torch.random.fork_rng``
and saved in checkpoints (the CPU and, on CUDA, the GPU generator). On CPU, a run killed at any point and restarted
from its last in-phase checkpoint therefore ends bitwise-identical to an uninterrupted one (same thread count).
On CUDA the resumed run continues the same data, subnet and dropout streams, but cuDNN/cuBLAS kernels are not
bitwise deterministic (atomic adds in backward), so it ends equal only up to floating-point noise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from nat2.checkpoint import load_checkpoint, save_checkpoint
from nat2.config import PHASES, TrainConfig
from nat2.evaluate import evaluate_arch
from nat2.io import write_json
from nat2.live import LIVE_KEYS, EpochLive
from nat2.seeds import numpy_rng, seed_sequence
from nat2.space import Arch, ElasticChoices, SearchSpace
from nat2.supernet import SuperNet
from nat2.train.distributed import DistInfo, allreduce_grads
from nat2.train.losses import aep_loss, ensemble_logits, subnet_loss
from nat2.train.optim import build_sgd, lr_at, set_lr

__all__ = ["DROPOUT_STREAM", "LoopSpec", "PhaseResult", "StepSettings", "TrainState", "phase_spec",
           "phase_teacher_targets", "train_phase", "validate_corners"]

log = logging.getLogger(__name__)

SUBNET_STREAM, DROPOUT_STREAM, VALIDATION_STREAM = 0x5B, 0xD0, 0x7A


@dataclass(frozen=True)
class LoopSpec:
    """What one training run (a shrinking phase, or one search iteration's adaptation) does.

    Attributes:
        name: for logs, checkpoints and metrics rows (``kernel``, ``adapt@3``).
        seed_stage: the :mod:`nat2.seeds` stage its random streams derive from.
        seed_iteration: the stream's iteration (the phase's index, or the search iteration).
        epochs: epochs of the cosine in this run; warmup_epochs: linear warm-up epochs before it.
        lr: peak learning rate; subnets_per_step: subnets per optimiser step.
        sample: ``(rng, width, resolution) -> Arch | None``, the subnet sampler (None: train ``fixed_arch``); a
            sampler that returns None for a draw skips it (adaptation draws the width, so a draw may belong to
            another width's net), and a step whose draws all return None takes no optimiser step.
        fixed_arch: the single network to train when ``sample`` is None (the ``full`` phase's max network).
        corners: elastic choices whose min/max corners are validated at the end (None: no validation).
        lr_epoch_offset: position of this run's first epoch in a longer schedule (adaptation: one cosine spans all
            iterations); lr_total_epochs: that schedule's cosine length (None: ``epochs``); lr_warmup_epochs: its
            warm-up length (None: ``warmup_epochs``).
    """

    name: str
    seed_stage: str
    seed_iteration: int
    epochs: int
    warmup_epochs: int
    lr: float
    subnets_per_step: int
    sample: Callable[[np.random.Generator, float, int], Arch | None] | None
    fixed_arch: Arch | None
    corners: ElasticChoices | None
    lr_epoch_offset: int = 0
    lr_total_epochs: int | None = None
    lr_warmup_epochs: int | None = None


@dataclass(frozen=True)
class StepSettings:
    """How a training run computes and applies one step, and when it checkpoints and validates.

    Super-net training takes them from ``train`` (:meth:`of_training`); adaptation has its own loss and optimiser
    settings (``search.adapt``) and shares only the execution ones (micro-batches, AMP, checkpoint cadence).

    Attributes:
        kd_ratio: weight of the distillation loss; label_smoothing: of the cross-entropy.
        momentum, weight_decay: Nesterov SGD's (no decay on BatchNorm and biases).
        grad_clip: max norm of the step's accumulated gradient (0 = off).
        exit_weights: exits 1..5 in the AEP loss and the ENS-KD teacher targets.
        micro_batches: split each batch, accumulating gradients; amp: bf16 autocast on CUDA.
        checkpoint_every_steps, checkpoint_minutes: in-run checkpoint cadence (0 = off).
        val_subnets: corner subnets validated; validate_every_epochs: also inside the run (0 = only at its end).
    """

    kd_ratio: float
    label_smoothing: float
    momentum: float
    weight_decay: float
    grad_clip: float
    exit_weights: tuple[float, ...]
    micro_batches: int
    amp: bool
    checkpoint_every_steps: int
    checkpoint_minutes: float
    val_subnets: int
    validate_every_epochs: int

    @classmethod
    def of_training(cls, train: TrainConfig) -> StepSettings:
        """The step settings of super-net training (``train.*``)."""
        return cls(kd_ratio=train.kd_ratio, label_smoothing=train.label_smoothing, momentum=train.momentum,
                   weight_decay=train.weight_decay, grad_clip=train.grad_clip, exit_weights=train.exit_weights,
                   micro_batches=train.micro_batches, amp=train.amp,
                   checkpoint_every_steps=train.checkpoint_every_steps, checkpoint_minutes=train.checkpoint_minutes,
                   val_subnets=train.val_subnets, validate_every_epochs=train.validate_every_epochs)


def phase_spec(phase: str, train: TrainConfig, space: SearchSpace, width: float) -> LoopSpec:
    """The :class:`LoopSpec` of a progressive-shrinking phase."""
    cfg = getattr(train.schedule, phase)
    choices = ElasticChoices.from_phase(cfg, space)
    first = phase == train.phases[0]
    return LoopSpec(
        name=phase, seed_stage="train_supernet", seed_iteration=PHASES.index(phase), epochs=cfg.epochs,
        warmup_epochs=cfg.warmup_epochs, lr=cfg.lr, subnets_per_step=cfg.subnets_per_step,
        sample=None if first else (lambda rng, w, r: choices.sample(rng, space, w, r)),
        fixed_arch=choices.max_arch(space, width, max(space.resolutions)) if first else None, corners=choices)


@dataclass
class TrainState:
    """Position and running metrics of a phase; checkpointed so a rerun continues exactly here."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PhaseResult:
    """What a finished phase hands back to the stage that writes it."""

    state: TrainState
    optimizer_state: dict[str, Any]
    torch_rng: torch.Tensor
    validation: dict[str, Any]


def phase_teacher_targets(teacher: nn.Module | None, early_exit: bool,
                          exit_weights: tuple[float, ...]) -> Callable[[torch.Tensor], torch.Tensor | None]:
    """Soft-target function of a teacher: softmax of its logits, or of its weighted exits (ENS-KD)."""
    if teacher is None:
        return lambda x: None

    @torch.no_grad()
    def targets(x: torch.Tensor) -> torch.Tensor:
        logits = ensemble_logits(teacher.forward_all_exits(x), exit_weights) if early_exit else teacher(x)
        return torch.softmax(logits.float(), dim=1)

    return targets


def validate_corners(net: SuperNet, space: SearchSpace, choices: ElasticChoices, limit: int,
                     rng: np.random.Generator, calib: Any, val: Any, *, calib_batch_size: int,
                     eval_batch_size: int, memory_format: torch.memory_format) -> dict[str, Any]:
    """Top-1 of the min/max corner subnets of the phase (each extracted and BN-recalibrated)."""
    corners = choices.corners(space, net.width_mult, space.resolutions, limit=limit, rng=rng)
    results = []
    for arch in corners:
        top1 = evaluate_arch(net, arch, calib, val, calib_batch_size=calib_batch_size,
                             eval_batch_size=eval_batch_size, memory_format=memory_format)
        results.append({"arch": arch.to_json(), "top1": top1})
    tops = [r["top1"] for r in results]
    return {"mean_top1": float(np.mean(tops)), "min_subnet_top1": tops[0], "max_subnet_top1": tops[-1],
            "subnets": results}


def _stash_grads(net: nn.Module, acc: list[torch.Tensor | None] | None) -> list[torch.Tensor | None]:
    """Add the parameters' gradients to ``acc`` (taking them on the first call) and clear them."""
    grads = [p.grad for p in net.parameters()]
    for p in net.parameters():
        p.grad = None
    if acc is None:
        return grads
    return [a if g is None else g if a is None else a.add_(g) for a, g in zip(acc, grads, strict=True)]


def _bar_disabled(progress: bool | None, dist: DistInfo) -> bool | None:
    if not dist.is_main:
        return True
    return None if progress is None else not progress  # None: tqdm shows the bar on terminals only


def _dropout_seed(seed: int, spec: LoopSpec) -> int:
    return int(seed_sequence(seed, spec.seed_stage, spec.seed_iteration, DROPOUT_STREAM).generate_state(1)[0])


def train_phase(net: SuperNet, space: SearchSpace, spec: LoopSpec, steps: StepSettings, loader: Any, *,
                teacher: nn.Module | None, calib: Any, val: Any, seed: int, calib_batch_size: int,
                eval_batch_size: int, device: torch.device, memory_format: torch.memory_format,
                partial_dir: Path | None, run_hash: str, dist: DistInfo | None = None,
                progress: bool | None = None, optimizer_state: dict[str, Any] | None = None,
                live_dir: Path | None = None) -> PhaseResult:
    """Train ``net`` (one width) as ``spec`` says; resume from ``partial_dir`` when a matching checkpoint is there.

    Args:
        net: the super-net of one width, already initialised (previous phase, OFA weights or scratch).
        space: the search space (variant, resolutions, widths).
        spec: what to train (see :class:`LoopSpec`; :func:`phase_spec` for shrinking phases).
        steps: loss, optimiser, checkpoint and validation settings (:class:`StepSettings`).
        loader: a :class:`nat2.data.TrainLoader` over the train split.
        teacher: the KD teacher (max network, eval mode, BN recalibrated), or None (``full`` phase, or no KD).
        calib: calibration :class:`~nat2.data.EvalSet`.
        val: validation EvalSet.
        seed: root seed.
        calib_batch_size: batch size of BN recalibration.
        eval_batch_size: batch size of validation forwards.
        device: compute device.
        memory_format: memory format of the model and batches.
        partial_dir: folder of the in-phase checkpoint (None: no checkpoints).
        run_hash: hash of every setting that shapes this phase's result; a partial checkpoint with another hash
            is ignored (and replaced) rather than resumed.
        dist: data-parallel group (rank 0 checkpoints and validates); None for a single process.
        progress: show a tqdm bar (None: only on a terminal).
        optimizer_state: optimiser state to continue from (adaptation carries it across iterations).
        live_dir: dvclive folder of the epoch rows (:class:`nat2.live.EpochLive`, in step with the checkpoint);
            None: no dvclive log.
    """
    dist = dist or DistInfo()
    phase = spec.name
    steps_per_epoch = len(loader)
    total_epochs = spec.warmup_epochs + spec.epochs
    cos_epochs = spec.lr_total_epochs or spec.epochs
    step_offset = spec.lr_epoch_offset * steps_per_epoch
    lr_warmup = spec.warmup_epochs if spec.lr_warmup_epochs is None else spec.lr_warmup_epochs
    optimizer = build_sgd(net, spec.lr, steps.momentum, steps.weight_decay)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    state = TrainState()
    rng_state: torch.Tensor | None = None
    cuda_rng_state: torch.Tensor | None = None
    ckpt_file = partial_dir / "state.pt" if partial_dir is not None else None
    if ckpt_file is not None and ckpt_file.is_file():
        saved = load_checkpoint(ckpt_file, "partial-phase", "delete the partial folder to restart the phase")
        if saved["run_hash"] == run_hash and saved["phase"] == phase:
            net.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            state = TrainState(**saved["state"])
            rng_state = saved["torch_rng"]
            cuda_rng_state = saved.get("cuda_rng")
            log.info("%s: resuming at epoch %d batch %d (step %d)", phase, state.epoch, state.batch, state.step)
        else:
            log.warning("%s: ignoring a partial checkpoint of other settings in %s", phase, partial_dir)
    live = EpochLive(live_dir, LIVE_KEYS, state.history) if live_dir is not None and dist.is_main else None
    targets_of = phase_teacher_targets(teacher, space.variant.early_exit, steps.exit_weights)
    weights = steps.exit_weights
    use_amp = steps.amp and device.type == "cuda"
    every, minutes = steps.checkpoint_every_steps, steps.checkpoint_minutes
    last_save = time.monotonic()

    def save_partial() -> None:
        if ckpt_file is None or not dist.is_main:
            return
        save_checkpoint(ckpt_file, "partial-phase", {
            "phase": phase, "run_hash": run_hash, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
            "state": asdict(state), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None})
        write_json(ckpt_file.with_name("progress.json"), {"phase": phase, "epoch": state.epoch,
                                                          "batch": state.batch, "step": state.step})

    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        if rng_state is None:
            torch.manual_seed(_dropout_seed(seed, spec))  # scoped by fork_rng: the caller's RNG is untouched
        else:
            torch.set_rng_state(rng_state)
            if cuda_rng_state is not None and device.type == "cuda":  # dropout on the GPU draws from this one
                torch.cuda.set_rng_state(cuda_rng_state, device)
        net.train()
        for epoch in range(state.epoch, total_epochs):
            bar = tqdm(total=steps_per_epoch, initial=state.batch, desc=f"{phase} {epoch + 1}/{total_epochs}",
                       disable=_bar_disabled(progress, dist), leave=False)
            t0, images, lr = time.perf_counter(), 0, spec.lr
            for x, y in loader.epoch(epoch, start_batch=state.batch):
                lr = lr_at(step_offset + state.step, steps_per_epoch, cos_epochs, lr_warmup, spec.lr)
                set_lr(optimizer, lr)
                optimizer.zero_grad(set_to_none=True)
                step_loss, step_correct = 0.0, 0
                rng = numpy_rng(seed, spec.seed_stage, spec.seed_iteration, SUBNET_STREAM, epoch, state.batch)
                archs = [spec.fixed_arch] if spec.sample is None else [
                    a for a in (spec.sample(rng, net.width_mult, x.shape[-1]) for _ in range(spec.subnets_per_step))
                    if a is not None]
                if not archs:  # adaptation: none of this step's subnets has this net's width
                    state.step += 1
                    state.batch += 1
                    bar.update(1)
                    continue
                # micro-batches: each one's gradient is summed over the step's subnets, then the micro-batch
                # gradients are averaged, exactly as data-parallel ranks holding one micro-batch each would
                k = steps.micro_batches
                acc: list[torch.Tensor | None] | None = None
                for xm, ym in zip(x.chunk(k), y.chunk(k), strict=True):
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                        soft = targets_of(xm)
                    for arch in archs:
                        net.set_active(arch)
                        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                            if spec.sample is None and space.variant.early_exit:
                                outs = net.forward_all_exits(xm)
                                loss = aep_loss(outs, ym, weights, steps.label_smoothing)
                                logits = ensemble_logits(outs, weights)
                            else:
                                logits = net(xm)
                                loss = subnet_loss(logits, ym, steps.label_smoothing, soft, steps.kd_ratio)
                        loss.backward()
                        step_loss += loss.item() / (len(archs) * k)
                        step_correct += int((logits.argmax(1) == ym).sum())
                    if k > 1:
                        acc = _stash_grads(net, acc)
                if acc is not None:
                    for p, g in zip(net.parameters(), acc, strict=True):
                        p.grad = None if g is None else g.div_(k)
                step_correct //= len(archs)
                allreduce_grads(net, dist)
                if steps.grad_clip > 0:
                    nn.utils.clip_grad_norm_(net.parameters(), steps.grad_clip)
                optimizer.step()
                state.step += 1
                state.batch += 1
                state.loss_sum += step_loss * len(y)
                state.correct += step_correct
                state.seen += len(y)
                images += len(y) * dist.world_size
                bar.update(1)
                bar.set_postfix(loss=f"{state.loss_sum / state.seen:.3f}",
                                top1=f"{100 * state.correct / state.seen:.1f}",
                                img_s=f"{images / (time.perf_counter() - t0):.0f}")
                if state.batch < steps_per_epoch and ((every and state.step % every == 0) or
                                                      (minutes and time.monotonic() - last_save >= 60 * minutes)):
                    save_partial()
                    last_save = time.monotonic()
            bar.close()
            row = {"phase": phase, "epoch": epoch + 1, "lr": lr, "train_loss": state.loss_sum / max(state.seen, 1),
                   "train_top1": 100.0 * state.correct / max(state.seen, 1), "val_top1": None}
            last = epoch + 1 == total_epochs
            if dist.is_main and not last and spec.corners is not None and steps.validate_every_epochs and \
                    (epoch + 1) % steps.validate_every_epochs == 0:
                row["val_top1"] = validate_corners(
                    net, space, spec.corners, steps.val_subnets,
                    numpy_rng(seed, spec.seed_stage, spec.seed_iteration, VALIDATION_STREAM), calib, val,
                    calib_batch_size=calib_batch_size, eval_batch_size=eval_batch_size,
                    memory_format=memory_format)["mean_top1"]
                net.train()
            log.info("%s epoch %d/%d: loss %.4f top1 %.2f lr %.5f (%.0f img/s)", phase, epoch + 1, total_epochs,
                     row["train_loss"], row["train_top1"], lr, images / max(time.perf_counter() - t0, 1e-9))
            state.history.append(row)
            state.epoch, state.batch = epoch + 1, 0
            state.loss_sum, state.correct, state.seen = 0.0, 0, 0
            if not last:
                save_partial()
                last_save = time.monotonic()
                if live is not None:  # after the checkpoint: a kill in between leaves dvclive behind, rebuilt
                    live.log(row)
        rng_out = torch.get_rng_state()
    validation: dict[str, Any] = {}
    if dist.is_main and spec.corners is not None:
        validation = validate_corners(net, space, spec.corners, steps.val_subnets,
                                      numpy_rng(seed, spec.seed_stage, spec.seed_iteration, VALIDATION_STREAM),
                                      calib, val,
                                      calib_batch_size=calib_batch_size, eval_batch_size=eval_batch_size,
                                      memory_format=memory_format)
        state.history[-1]["val_top1"] = validation["mean_top1"]
        log.info("%s: validation mean top1 %.2f (min subnet %.2f, max subnet %.2f)", phase,
                 validation["mean_top1"], validation["min_subnet_top1"], validation["max_subnet_top1"])
    if live is not None:
        if state.history:  # the last epoch, with its final validation
            live.log(state.history[-1])
        live.close()
    return PhaseResult(state, optimizer.state_dict(), rng_out, validation)
