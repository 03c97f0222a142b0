"""The run configuration's schema: one frozen dataclass per ``params.yaml`` section.

``params.yaml`` is the only place a setting lives: the dataclasses below declare the *shape* and the *allowed
range* of every key but carry no default values, so no hyper-parameter is written twice. Library functions receive
the frozen section objects (``Params.data``, ``Params.supernet``...), never raw dicts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass
from typing import Any

from nat2.config.spec import Spec, fail, key

DATASETS = ("fashion_mnist", "cifar10", "cifar100", "tiny_imagenet", "imagefolder", "synthetic")
VARIANTS = tuple(f"{e}_{b}" for e in ("se", "ee") for b in ("base", "dense", "parallel", "dense_parallel"))
OBJECTIVES = ("error", "params", "macs", "latency")
#: surrogates that cross-validate inside every fit (k-fold ensembles, adaptive switching): see min_fittable_archive
NESTED_CV_SURROGATES = ("lgb", "as")


# --------------------------------------------------------------------------------------------------------------
# Sections. Add a key here and in params.yaml (+ presets); the tests enumerate both.
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how fast the stages run (never changes results on a given device, except ``device``)."""

    threads: int = key("CPU threads for torch, LightGBM and the tools' --cores", ge=1, le=512)
    device: str = key("compute device", choices=("auto", "cpu", "cuda"))
    channels_last: bool = key("use the channels_last memory format (2.5-10x faster on CPU)")


@dataclass(frozen=True)
class SyntheticConfig:
    """The in-memory synthetic dataset used by tests and smoke runs."""

    num_classes: int = key("number of classes", ge=2, le=1000)
    image_size: int = key("side of the generated square images", ge=8, le=256)
    train_images: int = key("images in the synthetic training set", ge=16)
    test_images: int = key("images in the synthetic test set", ge=8)


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation (applied per batch, after the per-batch resolution is drawn)."""

    crop_scale_min: float = key("lower area bound of the random-resized crop (1.0 = no crop)", gt=0.0, le=1.0)
    hflip: bool = key("random horizontal flip")
    autoaugment: bool = key("AutoAugment with the CIFAR-10 policy (the reference's CIFAR setting)")
    erasing: float = key("random-erasing probability per training image (0 = off; never on BN-calibration images)",
                         ge=0.0, le=1.0)


@dataclass(frozen=True)
class DataConfig:
    """The dataset, its deterministic train/validation/test split and the evaluation subsets."""

    dataset: str = key("dataset name", choices=DATASETS)
    root: str = key("folder where datasets are found or downloaded")
    download: bool = key("allow a torchvision download into root when the data is not found")
    image_size: int = key("side images of imagefolder datasets are resized to on load (0 = keep)", ge=0, le=1024)
    val_size: int = key("validation images held out of the training set", ge=0)
    train_size: int = key("training images kept after the hold-out (0 = all the rest)", ge=0)
    test_size: int = key("test images kept (0 = all)", ge=0)
    calib_size: int = key("fixed BN-calibration subset, drawn from the train split", ge=1)
    calib_batch_size: int = key("batch size of BN recalibration", ge=1)
    eval_batch_size: int = key("batch size of evaluation forwards", ge=1)
    augment: AugmentConfig = key("training augmentation")
    synthetic: SyntheticConfig = key("settings of the synthetic dataset")


@dataclass(frozen=True)
class SuperNetConfig:
    """Which OFAv2 super-network is built, and its elastic resolution list."""

    variant: str = key("OFAv2 variant: se_/ee_ (single/early exit) + base|dense|parallel|dense_parallel",
                       choices=VARIANTS)
    width_mults: tuple[float, ...] = key("width multipliers; each is its own super-net", min_len=1, max_len=4,
                                   unique=True, sorted=True, ge=0.25, le=4.0)
    resolutions: tuple[int, ...] = key("input resolutions (training samples these; search chooses among them)",
                                 min_len=1, unique=True, sorted=True, ge=8, le=1024)
    stem_stride: int = key("stride of the stem conv: 2 as OFA (224 px images), 1 for small images (28-32 px: keeps "
                           "every later feature map 4x larger; OFA weights load only with 2)", choices=(1, 2))
    init: str = key("initial weights: scratch, ofa:<path to an official OFA state dict; {w} = width>, or a nat2 "
                    "phase checkpoint")
    dropout: float = key("dropout before each classifier", ge=0.0, le=0.9)
    bn_momentum: float = key("BatchNorm momentum", gt=0.0, le=1.0)
    bn_eps: float = key("BatchNorm epsilon", gt=0.0, le=0.1)


PHASES = ("full", "kernel", "level_1", "level_2", "exit_1", "exit_2", "exit_3", "exit_4", "depth_1", "depth_2",
          "expand_1", "expand_2", "warmup")


@dataclass(frozen=True)
class PhaseConfig:
    """One progressive-shrinking phase: its length, learning rate and the elastic values it samples from."""

    epochs: int = key("epochs of the cosine schedule", ge=1)
    warmup_epochs: int = key("extra epochs of linear warm-up before the cosine (0 = none)", ge=0)
    lr: float = key("base learning rate (batch size train.batch_size)", gt=0.0, le=10.0)
    subnets_per_step: int = key("subnets sampled per step, their gradients accumulated", ge=1, le=16)
    kernel_sizes: tuple[int, ...] = key("allowed depthwise kernel sizes", min_len=1, unique=True, sorted=True,
                                        choices=(3, 5, 7))
    expand_ratios: tuple[int, ...] = key("allowed expand ratios", min_len=1, unique=True, sorted=True,
                                         choices=(3, 4, 6))
    depths: tuple[int, ...] = key("allowed stage depths", min_len=1, unique=True, sorted=True, choices=(2, 3, 4))
    exits: tuple[int, ...] = key("allowed exits (early-exit variants)", min_len=1, unique=True, sorted=True,
                                 choices=(1, 2, 3, 4, 5))
    levels: tuple[int, ...] = key("allowed numbers of active parallel branches (parallel variants)", min_len=1,
                                  unique=True, sorted=True, choices=(1, 2, 3))


@dataclass(frozen=True)
class PhasesConfig:
    """Settings of every phase name (``train.lineage`` says which of them run, in which order)."""

    full: PhaseConfig = key("the max static network (first teacher)")
    kernel: PhaseConfig = key("elastic kernel size")
    level_1: PhaseConfig = key("elastic level, step 1 (parallel variants)")
    level_2: PhaseConfig = key("elastic level, step 2 (parallel variants)")
    exit_1: PhaseConfig = key("elastic exit, step 1 (early-exit variants)")
    exit_2: PhaseConfig = key("elastic exit, step 2 (early-exit variants)")
    exit_3: PhaseConfig = key("elastic exit, step 3 (early-exit variants)")
    exit_4: PhaseConfig = key("elastic exit, step 4 (early-exit variants)")
    depth_1: PhaseConfig = key("elastic depth, step 1")
    depth_2: PhaseConfig = key("elastic depth, step 2")
    expand_1: PhaseConfig = key("elastic expand ratio, step 1")
    expand_2: PhaseConfig = key("elastic expand ratio, step 2")
    warmup: PhaseConfig = key("NAT2 transfer warm-up: every dimension open, KD from the widest max net")


@dataclass(frozen=True)
class TrainConfig:
    """Super-net training: OFAv2 extended progressive shrinking with knowledge distillation."""

    lineage: dict[str, str] = key("phase -> the phase it continues from; one chain starting at full",
                                  choices=PHASES)
    final: str = key("the last phase of the chain (the super-net that search uses); must match lineage",
                     choices=PHASES)
    batch_size: int = key("images per optimiser step (global, over all data-parallel ranks)", ge=2)
    images_per_epoch: int = key("images in a super-net epoch, a fresh seeded draw from the train split each epoch "
                                "(0 = the whole split): fixes the cost while every epoch sees other images", ge=0)
    micro_batches: int = key("split each (rank's) batch into this many micro-batches, accumulating gradients",
                             ge=1, le=64)
    teacher: str = key("KD teacher: fixed (the full net), pet (max subnet of the previous phase) or widest "
                       "(the full phase's widest max net, NAT2's transfer warm-up)", choices=("fixed", "pet", "widest"))
    kd_ratio: float = key("weight of the distillation loss (0 = no KD)", ge=0.0, le=100.0)
    label_smoothing: float = key("label smoothing of the cross-entropy", ge=0.0, lt=1.0)
    momentum: float = key("SGD (Nesterov) momentum", ge=0.0, lt=1.0)
    weight_decay: float = key("weight decay (not applied to BatchNorm and biases)", ge=0.0, le=1.0)
    grad_clip: float = key("clip the accumulated gradient norm before each step (0 = off)", ge=0.0)
    exit_weights: tuple[float, ...] = key("weights of exits 1..5 in the AEP loss and the ENS-KD teacher",
                                          min_len=5, max_len=5, ge=0.0)
    val_subnets: int = key("min/max corner subnets validated after each phase (sampled when more exist)", ge=1)
    validate_every_epochs: int = key("also validate every N epochs inside a phase (0 = only at its end)", ge=0)
    checkpoint_every_steps: int = key("in-phase checkpoint every N optimiser steps (0 = off)", ge=0)
    checkpoint_minutes: float = key("in-phase checkpoint at least this often, in minutes (0 = off)", ge=0.0)
    amp: bool = key("mixed precision on CUDA (ignored on CPU)")
    schedule: PhasesConfig = key("per-phase settings")

    @property
    def phases(self) -> tuple[str, ...]:
        """The phases to run, in order: ``full``, then the chain that ``lineage`` describes."""
        after = {prev: name for name, prev in self.lineage.items()}
        order = ["full"]
        while order[-1] in after and len(order) <= len(self.lineage):
            order.append(after[order[-1]])
        return tuple(order)

    def previous(self, phase: str) -> str | None:
        """The phase ``phase`` continues from (None for the first)."""
        return self.lineage.get(phase)


POLICIES = ("nat", "nat2", "random")
SURROGATES = ("lgb", "rbf", "gp", "mlp", "cart", "e2epp", "as")


@dataclass(frozen=True)
class AdaptConfig:
    """Super-net adaptation after each search iteration (NAT): training on subnets drawn from the archive.

    Its loss and optimiser settings are its own (method.md §3.5 step 8 gives the reference's, which differ from
    super-net training's); how a step executes (``train.micro_batches``, ``train.amp``, in-run checkpoints) is
    shared with super-net training.
    """

    epochs: int = key("epochs of adaptation per iteration (0 = no adaptation)", ge=0)
    images_per_epoch: int = key("images in an adaptation epoch, a fresh seeded draw from the train split each "
                                "epoch (0 = the whole split)", ge=0)
    lr: float = key("peak learning rate of the cosine that spans all iterations", gt=0.0, le=10.0)
    warmup_epochs: int = key("linear warm-up epochs at the start of the first iteration", ge=0)
    subnets_per_step: int = key("subnets sampled per step from the archive's gene distribution", ge=1, le=16)
    smoothing: float = key("additive (Laplace) smoothing of the per-gene categorical distribution", ge=0.0)
    teacher: str = key("KD teacher: supernet_max (the current super-net's max net) or warmup_max (the full "
                       "phase's widest max net)", choices=("supernet_max", "warmup_max"))
    batch_size: int = key("images per optimiser step (global, over all data-parallel ranks; must be divisible by "
                          "train.micro_batches)", ge=2)
    kd_ratio: float = key("weight of the distillation loss (0 = no KD)", ge=0.0, le=100.0)
    label_smoothing: float = key("label smoothing of the cross-entropy", ge=0.0, lt=1.0)
    momentum: float = key("SGD (Nesterov) momentum", ge=0.0, lt=1.0)
    weight_decay: float = key("weight decay (not applied to BatchNorm and biases)", ge=0.0, le=1.0)
    grad_clip: float = key("clip the step's accumulated gradient norm (0 = off)", ge=0.0)
    exit_weights: tuple[float, ...] = key("weights of exits 1..5 in the teacher's ENS-KD targets (early-exit "
                                          "variants)", min_len=5, max_len=5, ge=0.0)


@dataclass(frozen=True)
class SearchConfig:
    """The NAT / NAT2 search loop (shared/design/method.md §3-4)."""

    objectives: tuple[str, ...] = key("objectives to minimise; the first is always error", min_len=2, max_len=4,
                                      unique=True, choices=OBJECTIVES)
    policy: str = key("policy set: nat, nat2 or random (each auto sub-policy follows it)", choices=POLICIES)
    iterations: dict[str, str] = key("iteration -> the iteration it continues from (quoted keys; one chain from "
                                     "0)")
    final: str = key("the last iteration of the chain (what post-processing reads)")
    archive_size: int = key("archive size (NAT2: fixed; NAT: the initial size)", ge=4)
    candidates: int = key("new architectures evaluated per iteration", ge=1)
    init: str = key("initial sampling: auto, uniform, arch_space, uniform_depth",
                    choices=("auto", "uniform", "arch_space", "uniform_depth"))
    preprocess: str = key("NAT2 pre-processing (over-sample, keep archive_size by survival): auto, on, off",
                          choices=("auto", "on", "off"))
    preprocess_mult: int = key("pre-processing over-sampling factor", ge=1)
    update: str = key("archive update: auto, append (NAT), survival (NAT2, fixed size)",
                      choices=("auto", "append", "survival"))
    surrogate: str = key("accuracy predictor", choices=SURROGATES)
    encoding: str = key("surrogate features: auto, integer (NAT2), one_hot (NAT)",
                        choices=("auto", "integer", "one_hot"))
    surrogate_folds: int = key("folds of the surrogate's k-fold ensemble and cross-validation", ge=2, le=50)
    repair: str = key("genome repair: auto, fill (NAT2), push (NAT)", choices=("auto", "fill", "push"))
    pop_size: int = key("inner NSGA-II/III population", ge=4)
    generations: int = key("inner NSGA-II/III generations", ge=1)
    crossover_prob: float = key("two-point crossover probability", ge=0.0, le=1.0)
    mutation_eta: float = key("polynomial mutation eta (integer genes)", gt=0.0)
    top_n: int = key("archive members whose genes drive adaptation sampling", ge=1)
    shards: tuple[int, ...] = key("evaluation shards of the initial archive (parallel jobs): [0, 1, ..., n-1]",
                                  min_len=1, unique=True, sorted=True, ge=0)
    hv_ref: float = key("hypervolume reference point on every normalised objective", ge=1.0, le=10.0)
    adapt: AdaptConfig = key("super-net adaptation")

    @property
    def iteration_order(self) -> tuple[str, ...]:
        """Iterations in run order, starting after "0" (the initial archive)."""
        after = {prev: it for it, prev in self.iterations.items()}
        order = ["0"]
        while order[-1] in after and len(order) <= len(self.iterations):
            order.append(after[order[-1]])
        return tuple(order[1:])


@dataclass(frozen=True)
class FinetuneConfig:
    """NAT2's two-step fine-tuning (method.md §4.4, without the reference's test-set early stopping)."""

    epochs: int = key("step 1: at most this many epochs on the train split (validation picks the epoch count)", ge=1)
    patience: int = key("step 1 stops when the validation loss has not improved for this many epochs", ge=1)
    optimizer: str = key("sgd (momentum 0.9) or adamw", choices=("sgd", "adamw"))
    lr: float = key("initial learning rate (cosine to 0 over the epochs actually trained)", gt=0.0, le=10.0)
    weight_decay: float = key("weight decay", ge=0.0, le=1.0)
    batch_size: int = key("training batch size", ge=2)
    method: str = key("standard (the searched single-exit net) or aep (exits 1..nd re-attached and trained "
                      "jointly; early-exit variants only)", choices=("standard", "aep"))
    ordering: str = key("AEP exit weighting: asc, desc, mix (loss desc, output asc) or unif (method.md §2.6)",
                        choices=("asc", "desc", "mix", "unif"))


@dataclass(frozen=True)
class PostprocessConfig:
    """What happens after the search: the subnets that are extracted (and later fine-tuned and exported)."""

    slots: tuple[int, ...] = key("slots of the subnets extracted from the final archive by high trade-off: "
                                 "[0, 1, ..., k-1] (a fixed count: the pipeline's shape)", min_len=1, max_len=64,
                                 unique=True, sorted=True, ge=0)
    accurate_slots: int = key("how many slots are the most accurate archive members within accurate_max_params "
                              "(validation top-1); the other slots are high-trade-off points", ge=0, le=64)
    accurate_max_params: int = key("parameter cap of the accurate slots (0 = none)", ge=0)
    finetune: FinetuneConfig = key("two-step fine-tuning of every extracted subnet")


#: the baseline networks the ``baseline@<model>`` stage can train (nat2.baseline builds them)
BASELINES = ("mobilenet_v3_small", "cnn")


@dataclass(frozen=True)
class BaselineConfig:
    """The networks a user would train instead of searching, trained with the slots' fine-tuning recipe."""

    models: tuple[str, ...] = key("baseline networks, one baseline@<model> stage each: mobilenet_v3_small "
                                  "(torchvision, from scratch) and/or cnn (a plain 3-conv CNN, ~0.1 M params)",
                                  min_len=1, unique=True, choices=BASELINES)
    resolution: int = key("input side of the baselines (0 = the largest of supernet.resolutions)", ge=0, le=1024)


LATENCY_BACKENDS = ("torch", "onnxruntime")


@dataclass(frozen=True)
class LatencyConfig:
    """How the latency look-up table is measured (``profile_latency``) and validated end to end.

    The device and CPU threads are ``runtime``'s: a LUT describes the machine and settings it was measured with
    (its manifest says which), and the search predicts latency for exactly that deployment.
    """

    backend: str = key("torch (eager, on runtime.device) or onnxruntime (the exported ONNX graph, CPU)",
                       choices=LATENCY_BACKENDS)
    batch_size: int = key("images per timed forward", ge=1, le=4096)
    warmup: int = key("untimed forwards before each item's timed ones, in every round", ge=0, le=10000)
    repeats: int = key("timed forwards of each item per round (their median is the round's figure)", ge=1,
                       le=100000)
    rounds: int = key("rounds over all items in shuffled order (an item's latency: its lowest round median)",
                      ge=1, le=100)
    fit_subnets: int = key("random sub-networks timed end to end to fit the per-network overhead", ge=2, le=10000)
    validate_subnets: int = key("further random sub-networks timed end to end to validate the model", ge=2,
                                le=10000)


@dataclass(frozen=True)
class Params:
    """The whole run configuration: one section per pipeline concern."""

    seed: int = key("root seed of every random stream", ge=0, le=2**32 - 1)
    runtime: RuntimeConfig = key("run-time settings")
    data: DataConfig = key("dataset and splits")
    supernet: SuperNetConfig = key("super-network")
    train: TrainConfig = key("super-net training")
    latency: LatencyConfig = key("latency look-up table and its validation")
    search: SearchConfig = key("search loop")
    postprocess: PostprocessConfig = key("post-processing")
    baseline: BaselineConfig = key("baselines trained beside the slots")

    def check(self, source: str = "params.yaml") -> None:
        """Cross-key rules that no single key can express."""
        if self.search.objectives[0] != "error":
            fail("search.objectives", self.search.objectives, "must start with 'error'", source)
        if not (self.supernet.init in ("scratch",) or self.supernet.init.startswith("ofa:")
                or self.supernet.init.endswith((".pt", ".pth", ".tar"))):
            fail("supernet.init", self.supernet.init, "must be scratch, ofa:<path>, or a checkpoint path "
                  "(.pt/.pth/.tar)", source)
        if self.supernet.init.startswith("ofa:") and self.supernet.stem_stride != 2:
            fail("supernet.stem_stride", self.supernet.stem_stride, "must be 2 with supernet.init ofa:... (OFA's "
                  "super-nets have a stride-2 stem); set it to 2 or train from scratch", source)
        if self.train.batch_size % self.train.micro_batches:
            fail("train.micro_batches", self.train.micro_batches,
                  f"must divide train.batch_size ({self.train.batch_size})", source)
        order = self.search.iteration_order
        if len(order) != len(self.search.iterations) or "0" in self.search.iterations:
            fail("search.iterations", self.search.iterations, "must be one chain from \"0\" (e.g. {\"1\": \"0\", "
                  "\"2\": \"1\"}): every iteration continues the previous one", source)
        if not order or self.search.final != order[-1]:
            last = order[-1] if order else "?"
            fail("search.final", self.search.final, f"must be the chain's last iteration ({last})", source)
        if list(self.postprocess.slots) != list(range(len(self.postprocess.slots))):
            fail("postprocess.slots", list(self.postprocess.slots), "must be [0, 1, ..., k-1]", source)
        if self.postprocess.accurate_slots > len(self.postprocess.slots):
            fail("postprocess.accurate_slots", self.postprocess.accurate_slots, f"exceeds the number of slots "
                  f"({len(self.postprocess.slots)}); lower it or add slots", source)
        if self.postprocess.finetune.method == "aep" and not self.supernet.variant.startswith("ee_"):
            fail("postprocess.finetune.method", "aep", f"needs an early-exit variant (ee_*), not "
                  f"{self.supernet.variant}; use standard", source)
        if list(self.search.shards) != list(range(len(self.search.shards))):
            fail("search.shards", list(self.search.shards), "must be [0, 1, ..., n-1]", source)
        if len(self.postprocess.slots) > self.search.archive_size:
            fail("postprocess.slots", list(self.postprocess.slots), f"has more slots than the archive holds "
                  f"(search.archive_size = {self.search.archive_size}); use at most that many", source)
        if self.search.adapt.batch_size % self.train.micro_batches:
            fail("search.adapt.batch_size", self.search.adapt.batch_size,
                  f"must be divisible by train.micro_batches ({self.train.micro_batches})", source)
        from nat2.search.policy import resolve_policy  # the policy table is the search's

        smallest = min_fittable_archive(self.search.surrogate, self.search.surrogate_folds)
        if resolve_policy(self.search).surrogate_guided and self.search.archive_size < smallest:
            fail("search.archive_size", self.search.archive_size, f"is too small to fit and cross-validate the "
                  f"{self.search.surrogate} surrogate with search.surrogate_folds = {self.search.surrogate_folds} "
                  f"(needs >= {smallest}); raise it or lower the folds", source)
        if 0 < self.data.train_size < self.data.calib_size:
            fail("data.calib_size", self.data.calib_size, f"exceeds data.train_size ({self.data.train_size}): the "
                  "calibration subset is drawn from the train split", source)
        from nat2.phases import check_schedule  # the rules live with the phase definitions

        problem = check_schedule(self.train, self.supernet.variant)
        if problem is not None:
            path, value, allowed = problem
            fail(path, value, allowed, source)


def min_fittable_archive(surrogate: str, folds: int) -> int:
    """The smallest archive on which ``surrogate`` fits and cross-validates with ``folds`` folds.

    The report cross-validates the whole recipe (k folds, each fitting the model on the rest); the k-fold
    ensembles (``lgb``) and adaptive switching (``as``) run a second k-fold inside every training part. Every fit
    needs at least 2 architectures and the whole archive at least ``nat2.surrogate.MIN_SAMPLES`` (5); the set of
    nesting surrogates is checked against ``nat2.surrogate.SURROGATES`` by the tests.
    """
    def train_part(n: int) -> int:
        k = min(folds, n)
        return n - -(-n // k)  # n minus the largest test fold

    levels = 2 if surrogate in NESTED_CV_SURROGATES else 1
    n = 5
    while True:
        m = n
        for _ in range(levels):
            m = train_part(m)
        if m >= 2:
            return n
        n += 1


def to_dict(obj: Any) -> Any:
    """Plain-data (JSON/YAML-able) form of a config object."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def params_hash(obj: Any, length: int = 12) -> str:
    """Content hash of a config object or plain data (sorted-key JSON), for caches and checkpoint folders."""
    blob = json.dumps(to_dict(obj), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def iter_keys(cls: type = Params, prefix: str = "") -> typing.Iterator[tuple[str, Any, Spec]]:
    """Every leaf key of the schema as ``(dotted path, type, spec)``; used by tests and ``nat2 info``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from iter_keys(tp, path)
        else:
            yield path, tp, f.metadata["spec"]
