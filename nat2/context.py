"""The run context of a stage: device, dataset, split, evaluation sets, super-net, evaluator and KD teacher.

Every stage that computes on images assembles the same pieces: torch set up for ``runtime`` (threads, device), the
dataset that ``data`` names, the split file checked against it, the calibration / validation / test sets on the
device, the super-net file loaded there, and, to train, a frozen KD teacher. :class:`RunContext` builds each piece
one way for every stage (search, adaptation, fine-tuning, super-net training) and only when first used, in the
order the stages have always used (torch, then the dataset, then the split), so a stage that stops early (no
adaptation epochs, a bad argument) loads nothing, and results and error messages do not depend on who builds.

torch is imported lazily: CPU-only stages (surrogate fitting, the inner search) use the context for the class count
alone and never load the deep-learning stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nat2.config import DataConfig, Params, RuntimeConfig
from nat2.errors import Nat2Error

if TYPE_CHECKING:
    import torch

    from nat2.costs import CostModel
    from nat2.data import EvalSet, ImageSource, Split, TrainLoader
    from nat2.evaluate import Evaluator
    from nat2.latency import LatencyModel
    from nat2.space import Arch, SearchSpace
    from nat2.supernet import SuperNet, SuperNetSet

__all__ = ["CACHE_DIR", "RunContext", "build_evaluator"]

#: the evaluation cache (outside every pipeline output, so a killed evaluation resumes from it)
CACHE_DIR = Path("results/.cache/evaluations")


@dataclass
class RunContext:
    """The run-wide inputs of one stage process, built lazily and at most once each.

    Attributes:
        runtime: threads and device.
        data: the dataset, its batch sizes and the training augmentation.
        seed: the root seed (the calibration set's augmentation draw, the loaders' order).
        split_path: the split file ``prepare_data`` wrote (None for a stage that reads no images).
        lut_path: the latency look-up table ``profile_latency`` wrote (None: no latency predictions).
    """

    runtime: RuntimeConfig
    data: DataConfig
    seed: int
    split_path: Path | None = None
    lut_path: Path | None = None

    @classmethod
    def from_params(cls, params: Params, split: Path | None = None, lut: Path | None = None) -> RunContext:
        """The context of a stage run with ``params`` on the split file ``split`` (and the LUT ``lut``)."""
        return cls(params.runtime, params.data, params.seed, split, lut)

    def latency_model(self, space: SearchSpace) -> LatencyModel:
        """The latency model of :attr:`lut_path` for ``space`` (checked to cover it and the class count)."""
        from nat2.latency import LatencyModel

        if self.lut_path is None:
            raise Nat2Error("this needs the latency look-up table; pass --lut results/latency/lut.parquet")
        return LatencyModel.load(self.lut_path, space, self.num_classes)

    def cost_model(self, space: SearchSpace, *, latency: bool) -> CostModel:
        """Params/MACs of ``space``'s genomes, and their predicted latency when ``latency``."""
        from nat2.costs import CostModel

        return CostModel(space, self.num_classes, self.latency_model(space) if latency else None)

    @cached_property
    def device(self) -> torch.device:
        """The compute device, after setting torch's threads (:func:`nat2.runtime.setup_torch`)."""
        from nat2.runtime import setup_torch

        return setup_torch(self.runtime)

    @cached_property
    def memory_format(self) -> torch.memory_format:
        """The memory format of images and models (``runtime.channels_last``)."""
        from nat2.runtime import memory_format

        return memory_format(self.runtime)

    @cached_property
    def source(self) -> ImageSource:
        """The dataset's images (torch is set up first, as every stage always did)."""
        from nat2.data import load_source

        _ = self.device
        return load_source(self.data, self.seed, threads=self.runtime.threads)

    @cached_property
    def split_file(self) -> Split:
        """The split as stored, not yet checked against the dataset (enough for the class count)."""
        from nat2.data import read_split

        if self.split_path is None:
            raise Nat2Error("this stage needs the data split; pass --split data/split.parquet")
        return read_split(self.split_path)

    @cached_property
    def split(self) -> Split:
        """The split, checked to belong to :attr:`source` (the dataset is read before the split file)."""
        source = self.source
        split = self.split_file
        split.check_source(source)
        return split

    @property
    def num_classes(self) -> int:
        """The dataset's class count (part of every cost), read from the split file without loading images."""
        return int(self.split_file.num_classes)

    def evalset(self, subset: str) -> EvalSet:
        """A fresh ``calib`` (augmented once, seeded), ``val`` or ``test`` set on the device."""
        from nat2.data import EvalSet

        if subset == "calib":
            return EvalSet(self.source, self.split, "calib", device=self.device, memory_format=self.memory_format,
                           augment=self.data.augment, seed=self.seed)
        return EvalSet(self.source, self.split, subset, device=self.device, memory_format=self.memory_format)

    def train_loader(self, *, batch_size: int, resolutions: Sequence[int], stage: str, iteration: int,
                     split: Split | None = None, rank: int = 0, world_size: int = 1,
                     images_per_epoch: int = 0) -> TrainLoader:
        """Augmented training batches of :attr:`split` (or of ``split``), seeded by (seed, stage, iteration).

        ``images_per_epoch`` > 0: each epoch is a fresh seeded draw of that many images (:class:`TrainLoader`).
        """
        from nat2.data import TrainLoader

        return TrainLoader(self.source, self.split if split is None else split, batch_size=batch_size,
                           resolutions=resolutions, augment=self.data.augment, seed=self.seed, stage=stage,
                           iteration=iteration, device=self.device, memory_format=self.memory_format, rank=rank,
                           world_size=world_size, images_per_epoch=images_per_epoch)

    def load_supernet(self, path: Path, space: SearchSpace, dropout: float = 0.0
                      ) -> tuple[SuperNetSet, dict[str, Any]]:
        """A super-net file on the device (train mode) and its meta; checked against the space and the dataset."""
        from nat2.checkpoint import load_supernet

        nets, meta = load_supernet(path, space, num_classes=self.source.num_classes, dropout=dropout)
        return nets.to(device=self.device, memory_format=self.memory_format), meta

    def frozen_teacher(self, net: SuperNet, arch: Arch, space: SearchSpace, calib: EvalSet) -> SuperNet:
        """``net`` made a KD teacher: on the device, ``arch`` active, BN recalibrated, eval mode, frozen.

        BN is recalibrated on the calibration images at every resolution the teacher will see (all exits for
        early-exit variants, whose teachers give ENS-KD targets).
        """
        from nat2.supernet import recalibrate_bn

        teacher = net.to(device=self.device, memory_format=self.memory_format).eval()
        teacher.set_active(arch)
        batches = [x for r in space.resolutions for x, _ in calib.batches(r, self.data.calib_batch_size)]
        recalibrate_bn(teacher, batches, forward="forward_all_exits" if space.variant.early_exit else "forward")
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher


def build_evaluator(ctx: RunContext, space: SearchSpace, supernet: Path,
                    cache_dir: Path | None = CACHE_DIR, *, latency: bool = False) -> Evaluator:
    """Data, super-net and cost model loaded once for a stage that evaluates many architectures.

    ``latency``: the records carry the LUT model's predicted latency (a search with the latency objective);
    otherwise their ``latency`` is null, so archives never depend on a timing they do not use.

    The evaluation cache is keyed by everything that decides a top-1 besides the architecture
    (:func:`nat2.evaluate.eval_context_key`); ``cache_dir`` None disables it.
    """
    from nat2.evaluate import EvalCache, Evaluator, eval_context_key

    device, fmt, data = ctx.device, ctx.memory_format, ctx.data
    _ = ctx.split
    nets, meta = ctx.load_supernet(supernet, space)
    nets = nets.eval()
    calib, val = ctx.evalset("calib"), ctx.evalset("val")
    key = eval_context_key(meta["content_hash"], calib, val, calib_batch_size=data.calib_batch_size,
                           eval_batch_size=data.eval_batch_size, memory_format=fmt, device=device)
    return Evaluator(space, nets, meta["content_hash"], calib, val, ctx.cost_model(space, latency=latency),
                     data.calib_batch_size, data.eval_batch_size, fmt, EvalCache(cache_dir, key))
