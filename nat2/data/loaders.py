"""Training batches with elastic resolution, and cached evaluation sets (validation, test, BN calibration).

The data live in RAM (or a memory map) as uint8 arrays, so batches are gathered by numpy indexing and
transformed as whole tensors (:mod:`nat2.data.transforms`): no ``torch.utils.data.DataLoader`` or worker
processes, and nothing hidden in global state.

Reproducibility contract of :class:`TrainLoader` (what resumable, data-parallel training relies on):

* the permutation and the per-batch resolutions of epoch ``e`` come from
  ``numpy_rng(seed, stage, iteration, LOADER_STREAM, e)``; batch ``b``'s augmentation from
  ``torch_generator(seed, stage, iteration, LOADER_STREAM, e, b)``. Nothing depends on earlier batches, so
  ``epoch(e, start_batch=k)`` yields exactly batches ``k..`` of an uninterrupted epoch;
* every rank computes the same global batch (order, resolution, augmentation parameters) and keeps its contiguous
  slice, so the ranks' slices concatenated are bitwise the ``world_size = 1`` batch.

``LOADER_STREAM`` is a fixed tag in the seed sequence so that the loader never shares a random stream with the
training code of the same stage, which may derive its own generators from ``(seed, stage, iteration, epoch, ...)``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from nat2.config import AugmentConfig
from nat2.data.datasets import ImageSource
from nat2.data.split import Split
from nat2.data.transforms import (
    apply_crops,
    apply_erasing,
    autoaugment,
    eval_resize,
    normalize,
    sample_crops,
    sample_erasing,
    to_float,
)
from nat2.errors import DataError
from nat2.seeds import numpy_rng, torch_generator

__all__ = ["CALIB_STREAM", "LOADER_STREAM", "EvalSet", "TrainLoader"]

log = logging.getLogger(__name__)

LOADER_STREAM = 0xDA7A
CALIB_STREAM = 0xCA1B

Batch = tuple[torch.Tensor, torch.Tensor]


def _augment(images: np.ndarray, theta: torch.Tensor, aa_seeds: Sequence[int] | None, resolution: int,
             source: ImageSource, device: torch.device, memory_format: torch.memory_format,
             erase: torch.Tensor | None = None) -> torch.Tensor:
    """Training transform of uint8 NHWC images: [AutoAugment on uint8] -> crop/flip/resize -> normalise -> [erase].

    AutoAugment runs before the crop (the reference runs it after) because the crop works on floats; its
    geometric operations are small affine maps that commute with the crop up to boundary effects.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if aa_seeds is not None:
        x = autoaugment(x, aa_seeds)
    x = apply_crops(to_float(x, device), theta, resolution)
    x = normalize(x, source.mean, source.std, memory_format)
    return x if erase is None else apply_erasing(x, erase)


class TrainLoader:
    """Augmented training batches of the train split, one random resolution per batch (``drop_last``).

    Args:
        source: the dataset.
        split: its split (the ``train`` subset is iterated).
        batch_size: GLOBAL batch size (all ranks together); each rank yields ``batch_size // world_size``.
        resolutions: the resolutions a batch may get (one drawn uniformly per batch).
        augment: crop / flip / AutoAugment settings.
        seed: the root seed.
        stage: the seeding stage (``nat2.seeds.STAGE_IDS``), e.g. ``"train_supernet"`` or ``"adapt_supernet"``.
        iteration: search iteration (gives each adaptation its own streams).
        device: where batches are produced.
        memory_format: memory format of ``x`` (``torch.channels_last`` is 2.5-10x faster for convs on CPU).
        rank: this process's rank.
        world_size: number of data-parallel processes; must divide ``batch_size``.
        images_per_epoch: when > 0 and smaller than the train split, each epoch is that many images, a fresh
            seeded draw (the head of the epoch's permutation): training cost is fixed while every epoch sees
            other images of the whole split, which a fixed smaller split would not.

    Raises:
        DataError: the train split is smaller than one batch, or ``world_size`` does not divide ``batch_size``.
    """

    def __init__(self, source: ImageSource, split: Split, *, batch_size: int, resolutions: Sequence[int],
                 augment: AugmentConfig, seed: int, stage: str = "train_supernet", iteration: int = 0,
                 device: torch.device | str = "cpu", memory_format: torch.memory_format = torch.channels_last,
                 rank: int = 0, world_size: int = 1, images_per_epoch: int = 0) -> None:
        if batch_size < 1 or batch_size % world_size:
            raise DataError(f"batch size {batch_size} is not a positive multiple of world_size {world_size}; "
                            "choose a batch size divisible by the number of processes")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        if not resolutions:
            raise ValueError("resolutions must not be empty")
        if len(split.train_idx) < batch_size:
            raise DataError(f"the train split has {len(split.train_idx)} images, fewer than one batch of "
                            f"{batch_size}; lower the batch size or raise data.train_size")
        self.source, self.augment, self.seed = source, augment, seed
        self.stage, self.iteration = stage, iteration
        self.batch_size, self.resolutions = batch_size, tuple(int(r) for r in resolutions)
        self.device, self.memory_format = torch.device(device), memory_format
        self.rank, self.world_size = rank, world_size
        self._idx, self._labels = split.train_idx, split.train_labels
        n = len(self._idx)
        self._per_epoch = min(images_per_epoch, n) if images_per_epoch > 0 else n
        if self._per_epoch < batch_size:
            raise DataError(f"{self._per_epoch} images per epoch are fewer than one batch of {batch_size}; raise "
                            "the images_per_epoch setting or lower the batch size")
        per = batch_size // world_size
        self._slice = slice(rank * per, (rank + 1) * per)

    def __len__(self) -> int:
        """Batches per epoch (incomplete last batch dropped)."""
        return self._per_epoch // self.batch_size

    def _plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        rng = numpy_rng(self.seed, self.stage, self.iteration, LOADER_STREAM, epoch)
        order = rng.permutation(len(self._idx))
        res = np.asarray(self.resolutions)[rng.integers(len(self.resolutions), size=len(self))]
        return order, res

    def resolution_schedule(self, epoch: int) -> list[int]:
        """The resolution of every batch of ``epoch`` (identical on all ranks)."""
        return [int(r) for r in self._plan(epoch)[1]]

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """Yield ``(x, y)`` for batches ``start_batch..len-1`` of ``epoch``.

        ``x``: float32 ``[B, 3, r, r]`` normalised, in ``memory_format``, on ``device``; ``y``: int64 ``[B]``.
        """
        order, res = self._plan(epoch)
        for b in range(start_batch, len(self)):
            yield self._batch(epoch, b, order, int(res[b]))

    def batch(self, epoch: int, b: int) -> Batch:
        """Batch ``b`` of ``epoch`` alone (random access; same tensors as :meth:`epoch` yields)."""
        if not 0 <= b < len(self):
            raise IndexError(f"batch {b} outside 0..{len(self) - 1}")
        order, res = self._plan(epoch)
        return self._batch(epoch, b, order, int(res[b]))

    def _batch(self, epoch: int, b: int, order: np.ndarray, resolution: int) -> Batch:
        gen = torch_generator(self.seed, self.stage, self.iteration, LOADER_STREAM, epoch, b)
        # Parameters for the whole GLOBAL batch, in a fixed draw order, then this rank's slice.
        theta = sample_crops(self.batch_size, self.augment.crop_scale_min, self.augment.hflip, gen)[self._slice]
        seeds = None
        if self.augment.autoaugment:
            seeds = torch.randint(0, 2**62, (self.batch_size,), generator=gen)[self._slice].tolist()
        erase = None
        if self.augment.erasing > 0:  # drawn last: the crop and AutoAugment streams are the same with it on or off
            erase = sample_erasing(self.batch_size, self.augment.erasing, gen)[self._slice]
        pos = order[b * self.batch_size:(b + 1) * self.batch_size][self._slice]
        rows = self._idx[pos]
        x = _augment(self.source.train_images[rows], theta, seeds, resolution, self.source, self.device,
                     self.memory_format, erase)
        y = torch.from_numpy(self._labels[pos].copy()).to(self.device)
        return x, y


class EvalSet:
    """A split subset materialised once per resolution as one normalised tensor, for fast repeated evaluation.

    ``val`` and ``test`` use the evaluation transform (resize; Tiny ImageNet: resize + centre crop). ``calib``,
    the BN-recalibration subset, uses the TRAINING augmentation drawn once from the fixed generator
    ``torch_generator(seed, "calibration", 0, CALIB_STREAM)``: BN statistics must match the distribution the
    weights were trained on (as OFA does), and freezing the draw makes every subnet, resolution and search
    iteration recalibrate on the same images. The same crop of each image is used at every resolution.

    Args:
        source: the dataset.
        split: its split.
        subset: ``"val"``, ``"test"`` or ``"calib"``.
        device: where the tensors live.
        memory_format: memory format of ``x``.
        augment: the training augmentation (required for ``calib``, ignored otherwise).
        seed: the root seed (``calib`` only).
    """

    def __init__(self, source: ImageSource, split: Split, subset: str, *, device: torch.device | str = "cpu",
                 memory_format: torch.memory_format = torch.channels_last, augment: AugmentConfig | None = None,
                 seed: int = 0) -> None:
        if subset not in ("val", "test", "calib"):
            raise ValueError(f"EvalSet subset must be val, test or calib, not {subset!r}")
        pool, idx, labels = split.subset(subset)
        if len(idx) == 0:
            raise DataError(f"the {subset} split is empty; set data.{subset}_size > 0 and rerun prepare_data")
        self.source, self.subset, self.device, self.memory_format = source, subset, torch.device(device), memory_format
        images = source.pool(pool)[0][idx]  # uint8, in RAM even when the pool is memory-mapped
        self._theta: torch.Tensor | None = None
        if subset == "calib":
            if augment is None:
                raise ValueError("the calib EvalSet needs the training augmentation (augment=...)")
            gen = torch_generator(seed, "calibration", 0, CALIB_STREAM)
            self._theta = sample_crops(len(idx), augment.crop_scale_min, augment.hflip, gen)
            if augment.autoaugment:
                seeds = torch.randint(0, 2**62, (len(idx),), generator=gen).tolist()
                nchw = autoaugment(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2), seeds)
                images = nchw.permute(0, 2, 3, 1).numpy()
        self._images = images
        self.labels = torch.from_numpy(np.ascontiguousarray(labels)).to(self.device)
        self._cache: dict[int, torch.Tensor] = {}
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        """Number of images."""
        return len(self.labels)

    def fingerprint(self) -> str:
        """Content hash of what this set feeds a network: its images, labels and (calib) frozen crops.

        Changes with the dataset, the split, the calibration subset and its augmentation draw, so an evaluation
        cache keyed by it never serves a number measured on other images.
        """
        if self._fingerprint is None:
            h = hashlib.sha256(f"{self.subset}|{self._images.shape}|{self._images.dtype}".encode())
            h.update(np.ascontiguousarray(self._images).tobytes())
            h.update(self.labels.cpu().numpy().astype(np.int64).tobytes())
            if self._theta is not None:
                h.update(self._theta.cpu().numpy().astype(np.float32).tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def get(self, resolution: int) -> Batch:
        """All images at ``resolution`` as ``(x [N, 3, r, r] float32, y [N] int64)``, computed on first use."""
        if resolution not in self._cache:
            self._cache[resolution] = self._materialise(resolution)
        return self._cache[resolution], self.labels

    def batches(self, resolution: int, batch_size: int) -> Iterator[Batch]:
        """Consecutive ``(x, y)`` batches (views of :meth:`get`'s tensors; the last batch may be smaller)."""
        x, y = self.get(resolution)
        for i in range(0, len(y), batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]

    def clear(self) -> None:
        """Drop the cached tensors (e.g. between search iterations that use other resolutions)."""
        self._cache.clear()

    def _materialise(self, resolution: int, chunk: int = 1024) -> torch.Tensor:
        n = len(self._images)
        log.debug("materialising %d %s images at %d px", n, self.subset, resolution)
        out = torch.empty((n, 3, resolution, resolution), dtype=torch.float32, device=self.device,
                          memory_format=self.memory_format)
        for i in range(0, n, chunk):
            x = to_float(self._images[i:i + chunk], self.device)
            if self._theta is not None:
                x = apply_crops(x, self._theta[i:i + chunk], resolution)
            else:
                x = eval_resize(x, resolution, self.source.eval_crop)
            out[i:i + chunk] = normalize(x, self.source.mean, self.source.std, self.memory_format)
        return out
