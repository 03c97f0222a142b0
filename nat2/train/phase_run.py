"""Set up and run one training phase for one width, and write its outputs (what ``train_supernet`` calls).

Outputs of ``--out results/supernet/kernel.pt``: the phase checkpoint itself (for every width: weights,
optimiser state, epoch/step, RNG state, validation; plus the run hash), ``kernel.live/<width>/`` (dvclive: one step
per epoch, for ``dvc plots`` and the report) and ``kernel.manifest.json``. In-phase checkpoints live in
``results/.partial/train_supernet/<phase>-<hash>/``, outside every declared pipeline output, so neither Snakemake
nor DVC deletes them before a rerun resumes. The stage writes the manifest from what :func:`run_phase` returns.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nat2.checkpoint import load_checkpoint, save_checkpoint
from nat2.config import PHASES, SuperNetConfig, TrainConfig, params_hash
from nat2.context import RunContext
from nat2.data import EvalSet
from nat2.errors import Nat2Error
from nat2.io import atomic_dir
from nat2.live import live_folder, publish
from nat2.manifest import file_digest
from nat2.seeds import torch_generator
from nat2.space import ElasticChoices, SearchSpace
from nat2.space.variants import recorded_stem_stride
from nat2.supernet import SuperNet, load_ofa_state_dict
from nat2.train.distributed import DistInfo, broadcast_model, init_distributed
from nat2.train.progressive import StepSettings, phase_spec, train_phase

__all__ = ["PhaseInputs", "PhaseSummary", "build_width_net", "load_phase_weights", "read_phase", "run_phase",
           "width_key"]

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class PhaseInputs:
    """Everything one ``train_supernet`` invocation needs (paths come from the pipeline).

    Attributes:
        ctx: the run context (device, data, split).
        supernet: the super-net's settings; train: super-net training's.
        phase: the phase to train.
        out: the phase checkpoint to write.
        resume_settings: the settings an in-phase checkpoint must match to be resumed (the stage's resume key).
        init: the previous phase's checkpoint; full: the first phase's (a teacher).
        partial_root: where in-phase checkpoints live; progress: show a progress bar (None: on terminals).
    """

    ctx: RunContext
    supernet: SuperNetConfig
    train: TrainConfig
    phase: str
    out: Path
    resume_settings: Mapping[str, Any] = field(default_factory=dict)
    init: Path | None = None
    full: Path | None = None
    partial_root: Path = Path("results/.partial/train_supernet")
    progress: bool | None = None


@dataclass(frozen=True)
class PhaseSummary:
    """What the stage records in the phase's manifest (the main process's run only)."""

    device: str
    run_hash: str
    world_size: int
    validation: dict[str, Any]


def width_key(width: float) -> str:
    """Key of a width in checkpoints and folder names (``w100`` for 1.0)."""
    return f"w{round(float(width) * 100):03d}"


def build_width_net(supernet: SuperNetConfig, seed: int, space: SearchSpace, width: float,
                    num_classes: int) -> SuperNet:
    """A freshly initialised super-net of one width (seeded from the root seed, one stream per width)."""
    gen = torch_generator(seed, "train_supernet", 0, space.width_mults.index(width))
    return SuperNet(space.variant, width, num_classes, supernet.dropout, supernet.bn_momentum, supernet.bn_eps,
                    generator=gen)


def _check_stem(path: Path, data: dict[str, Any], stem_stride: int) -> None:
    """A phase checkpoint continues only a super-net of the same stem stride (same weights, other maps)."""
    if recorded_stem_stride(data) != stem_stride:
        raise Nat2Error(f"{path} was trained with stem stride {recorded_stem_stride(data)}, but "
                        f"supernet.stem_stride is {stem_stride}; retrain it")


def read_phase(path: Path, space: SearchSpace, num_classes: int | None = None,
               expect_phase: str | None = None) -> dict[str, Any]:
    """Read a phase checkpoint after checking it fits this run (variant, widths, classes, phase)."""
    data = load_checkpoint(path, "phase", "rerun the training phase that writes it")
    if data["variant"] != space.variant.name:
        raise Nat2Error(f"{path} holds a {data['variant']} super-net, not {space.variant.name}; retrain it")
    _check_stem(path, data, space.variant.stem_stride)
    missing = [width_key(w) for w in space.width_mults if width_key(w) not in data["widths"]]
    if missing:
        raise Nat2Error(f"{path} has no weights for width(s) {', '.join(missing)} of supernet.width_mults; retrain it")
    if expect_phase is not None and data["phase"] != expect_phase:
        raise Nat2Error(f"{path} is the {data['phase']!r} phase, but {expect_phase!r} is needed here; "
                        "check train.lineage and the --init/--full paths")
    if num_classes is not None and data["num_classes"] != num_classes:
        raise Nat2Error(f"{path} has {data['num_classes']} classes, the dataset {num_classes}; retrain it")
    return data


def load_phase_weights(net: SuperNet, path: Path, expect_phase: str | None = None) -> dict[str, Any]:
    """Load the weights of ``net``'s width from a phase checkpoint (checked as :func:`read_phase` does)."""
    data = load_checkpoint(path, "phase", "rerun the training phase that writes it")
    if data["variant"] != net.variant.name or width_key(net.width_mult) not in data["widths"]:
        raise Nat2Error(f"{path} has no {net.variant.name} w{net.width_mult} super-net; pass the checkpoint of "
                        "this variant and width")
    _check_stem(path, data, net.variant.stem_stride)
    if expect_phase is not None and data["phase"] != expect_phase:
        raise Nat2Error(f"{path} is the {data['phase']!r} phase, but {expect_phase!r} is needed here; "
                        "check train.lineage and the --init/--full paths")
    if data["num_classes"] != net.num_classes:
        raise Nat2Error(f"{path} has {data['num_classes']} classes, the dataset {net.num_classes}; retrain it")
    net.load_state_dict(data["widths"][width_key(net.width_mult)]["model"])
    return data


def _init_weights(net: SuperNet, init: str) -> None:
    """Apply ``supernet.init`` to the first phase's network (``{w}`` in a path is the width, e.g. 1.0).

    Pre-trained weights for another class count (Tiny ImageNet's 200, ImageNet's 1000) load everything but the
    classifiers, which keep their fresh initialisation for the target dataset.
    """
    if init == "scratch":
        return
    path = init.removeprefix("ofa:").replace("{w}", f"{net.width_mult:.1f}")
    if init.startswith("ofa:"):
        if net.variant.stem_stride != 2:
            raise Nat2Error(f"supernet.init {init}: OFA's super-nets have a stride-2 stem, but supernet.stem_stride "
                            f"is {net.variant.stem_stride}; set supernet.stem_stride: 2 to start from OFA weights")
        report = load_ofa_state_dict(net, path)
        log.info("w%s: %s", net.width_mult, report.summary())
        return
    data = load_checkpoint(path, "phase", "fix supernet.init")
    wkey = width_key(net.width_mult)
    if data["variant"] != net.variant.name or wkey not in data["widths"]:
        raise Nat2Error(f"supernet.init {path} has no {net.variant.name} w{net.width_mult} super-net; use a "
                        "checkpoint of this variant and width")
    state = data["widths"][wkey]["model"]
    own = net.state_dict()
    resized = [k for k, v in state.items() if ".classifier." in k and v.shape != own[k].shape]
    net.load_state_dict({k: (own[k] if k in resized else v) for k, v in state.items()})
    log.info("w%s: initialised from %s (%s phase)%s", net.width_mult, path, data["phase"],
             "; classifiers re-initialised for the new class count" if resized else "")


def _teacher(inputs: PhaseInputs, width: float, source_path: Path, space: SearchSpace, num_classes: int,
             calib: EvalSet) -> SuperNet:
    """The KD teacher: a max network, BN recalibrated.

    It is the previous phase's (``pet``), the full phase's (``fixed``), or for every width the full phase's widest
    one (``widest``, NAT2's transfer warm-up).
    """
    train, phase = inputs.train, inputs.phase
    src_phase = train.previous(phase) if train.teacher == "pet" else train.phases[0]
    if train.teacher == "widest":
        width = max(space.width_mults)
    teacher = build_width_net(inputs.supernet, inputs.ctx.seed, space, width, num_classes)
    load_phase_weights(teacher, source_path, src_phase)
    arch = ElasticChoices.from_phase(getattr(train.schedule, src_phase), space).max_arch(
        space, width, max(space.resolutions))
    return inputs.ctx.frozen_teacher(teacher, arch, space, calib)


def run_phase(inputs: PhaseInputs) -> PhaseSummary | None:
    """Train one phase for every width (one chain per width) and write the phase checkpoint and its CSV.

    Each width is trained on its own, with its own optimiser; a finished width is parked in the partial folder,
    so a rerun after a kill skips it and resumes the width that was in progress. The resume key is
    ``inputs.resume_settings`` with the phase, the digests of the initial and teacher checkpoints and the number
    of processes; it is stored in the phase checkpoint.

    Returns:
        What the manifest records, in the main process; None in the other data-parallel processes.
    """
    ctx, train, phase = inputs.ctx, inputs.train, inputs.phase
    if phase not in train.phases:
        raise Nat2Error(f"phase {phase!r} is not in the train.lineage chain {list(train.phases)}; add it or pick "
                        "another phase")
    space = SearchSpace.from_config(inputs.supernet)
    first = phase == train.phases[0]
    if not first and inputs.init is None:
        raise Nat2Error(f"phase {phase} continues {train.previous(phase)}: pass --init <its checkpoint>")
    teacher_src = None
    if not first and train.kd_ratio > 0:
        teacher_src = inputs.init if train.teacher == "pet" else inputs.full
        if teacher_src is None:
            raise Nat2Error(f"train.teacher = {train.teacher}: pass --full <the {train.phases[0]} phase checkpoint>")
    dist = init_distributed(ctx.device)
    _ = ctx.split  # the dataset, then the split file, checked against it
    num_classes = ctx.source.num_classes
    if inputs.init is not None:
        read_phase(inputs.init, space, num_classes, train.previous(phase))
    calib, val = ctx.evalset("calib"), ctx.evalset("val")
    # the split and the input checkpoints by content: a partial trained on other data or weights is never resumed
    run_hash = params_hash({**inputs.resume_settings, "phase": phase, "split": file_digest(ctx.split_path),
                            "init": file_digest(inputs.init),
                            "teacher": file_digest(teacher_src), "world_size": dist.world_size}, length=16)
    partial = inputs.partial_root / f"{phase}-{run_hash}"
    widths: dict[str, Any] = {}
    for width in space.width_mults:
        wkey = width_key(width)
        done = partial / f"{wkey}.done.pt"
        if done.is_file():
            parked = load_checkpoint(done, "phase-width", "delete the partial folder to restart the phase")
            # the same content as a width trained in this run (file tags dropped), so the bytes agree
            widths[wkey] = {k: v for k, v in parked.items() if k not in ("format", "version", "kind")}
            log.info("%s %s: already trained (partial folder), skipping", phase, wkey)
        else:
            widths[wkey] = _train_width(inputs, width, space, calib, val, teacher_src, dist, run_hash, partial / wkey)
            if dist.is_main:
                save_checkpoint(done, "phase-width", widths[wkey])
    if not dist.is_main:
        return None
    out = inputs.out
    save_checkpoint(out, "phase", {"variant": space.variant.name, "stem_stride": space.variant.stem_stride,
                                   "num_classes": num_classes,
                                   "phase": phase, "run_hash": run_hash, "widths": widths})
    with atomic_dir(live_folder(out)) as live_out:
        for wkey, trained in widths.items():
            publish(partial / wkey / "live", live_out / wkey, trained["state"]["history"])
    shutil.rmtree(partial, ignore_errors=True)
    return PhaseSummary(device=str(ctx.device), run_hash=run_hash, world_size=dist.world_size, validation={
        k: {m: v for m, v in w["validation"].items() if m != "subnets"} for k, w in widths.items()})


def _train_width(inputs: PhaseInputs, width: float, space: SearchSpace, calib: EvalSet, val: EvalSet,
                 teacher_src: Path | None, dist: DistInfo, run_hash: str, partial: Path) -> dict[str, Any]:
    ctx, train, phase = inputs.ctx, inputs.train, inputs.phase
    num_classes = ctx.source.num_classes
    net = build_width_net(inputs.supernet, ctx.seed, space, width, num_classes)
    if phase == train.phases[0]:
        _init_weights(net, inputs.supernet.init)
    else:
        load_phase_weights(net, inputs.init, train.previous(phase))
    if phase.startswith("expand_"):
        net.reorder_channels(int(phase.split("_")[1]) - 1)  # OFA: sort before each elastic-expand phase
    net = net.to(device=ctx.device, memory_format=ctx.memory_format)
    broadcast_model(net, dist)
    teacher = None
    if teacher_src is not None:
        teacher = _teacher(inputs, width, teacher_src, space, num_classes, calib)
    loader = ctx.train_loader(batch_size=train.batch_size, resolutions=space.resolutions, stage="train_supernet",
                              iteration=PHASES.index(phase), rank=dist.rank, world_size=dist.world_size,
                              images_per_epoch=train.images_per_epoch)
    result = train_phase(net, space, phase_spec(phase, train, space, width), StepSettings.of_training(train), loader,
                         teacher=teacher, calib=calib, val=val, seed=ctx.seed,
                         calib_batch_size=ctx.data.calib_batch_size, eval_batch_size=ctx.data.eval_batch_size,
                         device=ctx.device, memory_format=ctx.memory_format, partial_dir=partial, run_hash=run_hash,
                         dist=dist, progress=inputs.progress, live_dir=partial / "live")
    return {"width_mult": width, "model": {k: v.cpu() for k, v in net.state_dict().items()},
            "optimizer": result.optimizer_state, "state": asdict(result.state), "torch_rng": result.torch_rng,
            "validation": result.validation}
