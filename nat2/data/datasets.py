"""Dataset sources: the raw uint8 images and labels of one dataset, read once and shared by every stage.

Each reader returns an :class:`ImageSource` whose arrays are kept as compact ``uint8`` NHWC arrays (grayscale
stays single-channel and is expanded to 3 channels only when a batch becomes a tensor), so a whole CIFAR or
Fashion-MNIST training set costs 150 MB / 47 MB of RAM and batches are gathered by plain numpy indexing. Tiny
ImageNet and ImageFolder sources are memory-mapped from a decoded ``.npy`` cache (see :mod:`nat2.data._imagefiles`).

Readers parse the files themselves (IDX for Fashion-MNIST, the CIFAR python pickles through a numpy-only
unpickler) instead of going through torchvision's dataset classes: those re-check md5 sums of local folders and
hide the reason when a file is broken, whereas a user needs ONE line naming the file and the fix. torchvision is
only used to download, when ``data.download`` allows it.
"""

from __future__ import annotations

import gzip
import importlib
import logging
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from nat2.config import DataConfig, SyntheticConfig
from nat2.data._imagefiles import load_imagefolder, load_tiny_imagenet
from nat2.errors import DataError
from nat2.seeds import numpy_rng

__all__ = ["FASHION_MNIST_DIRS", "ImageSource", "fashion_mnist_folders", "find_fashion_mnist", "load_source",
           "torchvision_download"]

log = logging.getLogger(__name__)

#: System folders searched for Fashion-MNIST after ``<data.root>/FashionMNIST/raw`` (Debian's
#: ``dataset-fashion-mnist`` package).
FASHION_MNIST_DIRS: tuple[str, ...] = ("/usr/share/datasets/fashion-mnist",)

_FMNIST_FILES = MappingProxyType({
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
})
_STATS_MAX_IMAGES = 10_000


@dataclass(frozen=True, eq=False)
class ImageSource:
    """The images and labels of one dataset, before any split.

    Attributes:
        name: dataset name (``data.dataset``).
        num_classes: number of classes; labels are ``0..num_classes-1``.
        train_images: uint8 ``[N, H, W, C]`` (C = 1 or 3), possibly a read-only ``np.memmap``.
        train_labels: int64 ``[N]``.
        test_images: uint8 ``[M, H, W, C]``, the official test set (Tiny ImageNet: its ``val`` folder).
        test_labels: int64 ``[M]``.
        mean: per-channel mean of the training images in [0, 1], always 3 values (grayscale is replicated) because
            tensors are always 3-channel.
        std: per-channel standard deviation, same convention.
        classes: class names in label order (folder names, or the label number as text).
        location: where the data was read from (recorded in manifests).
        eval_crop: centre-crop ratio of the evaluation transform (Tiny ImageNet: 0.875, i.e. resize to
            ``ceil(r / 0.875)`` then crop ``r``, as the reference does; 1.0 = plain resize).
    """

    name: str
    num_classes: int
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    classes: tuple[str, ...]
    location: str
    eval_crop: float = 1.0

    def pool(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The ``(images, labels)`` of pool ``"train"`` or ``"test"`` (the ``pool`` column of a split)."""
        if name == "train":
            return self.train_images, self.train_labels
        if name == "test":
            return self.test_images, self.test_labels
        raise ValueError(f"unknown pool {name!r}; expected 'train' or 'test'")


def load_source(cfg: DataConfig, seed: int, *, threads: int = 1) -> ImageSource:
    """Read (or generate) the dataset named by ``cfg.dataset``.

    Args:
        cfg: the ``data`` section of the params.
        seed: the root seed; only the synthetic dataset uses it (it is generated, not read).
        threads: decoding threads for the image-file datasets (results do not depend on it).

    Returns:
        The dataset's train and test pools with their normalisation statistics.

    Raises:
        DataError: the dataset is missing (and may not be downloaded), its layout is broken or a file is corrupt.
    """
    root = Path(cfg.root)
    if cfg.dataset == "fashion_mnist":
        return _finish(cfg.dataset, 10, *_fashion_mnist(root, cfg.download))
    if cfg.dataset in ("cifar10", "cifar100"):
        return _finish(cfg.dataset, 10 if cfg.dataset == "cifar10" else 100, *_cifar(cfg.dataset, root, cfg.download))
    if cfg.dataset == "tiny_imagenet":
        arrays, classes, location = load_tiny_imagenet(root, threads=threads)
        return _finish(cfg.dataset, len(classes), *arrays, location, classes=classes, eval_crop=0.875)
    if cfg.dataset == "imagefolder":
        arrays, classes, location = load_imagefolder(root, cfg.image_size, threads=threads)
        return _finish(cfg.dataset, len(classes), *arrays, location, classes=classes)
    if cfg.dataset == "synthetic":
        return _finish(cfg.dataset, cfg.synthetic.num_classes, *_synthetic(cfg.synthetic, seed), "synthetic")
    raise DataError(f"data.dataset = {cfg.dataset!r}: unknown dataset; use one of the names listed in params.yaml")


def _finish(name: str, num_classes: int, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
            test_y: np.ndarray, location: str, *, classes: tuple[str, ...] | None = None,
            eval_crop: float = 1.0) -> ImageSource:
    """Check shapes and label ranges (one line per problem) and compute the normalisation statistics."""
    for part, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] not in (1, 3):
            raise DataError(f"{name}: {part} images in {location} are {x.dtype} {x.shape}, not uint8 [N,H,W,1|3]; "
                            "the files are damaged, replace them")
        if len(x) != len(y) or len(x) == 0:
            raise DataError(f"{name}: {len(x)} {part} images but {len(y)} labels in {location}; "
                            "the files are damaged or from different releases, replace them")
        if y.min() < 0 or y.max() >= num_classes:
            raise DataError(f"{name}: {part} labels in {location} fall outside 0..{num_classes - 1}; "
                            "the files are damaged, replace them")
    if train_x.shape[1:3] != test_x.shape[1:3] or train_x.shape[3] != test_x.shape[3]:
        raise DataError(f"{name}: train images are {train_x.shape[1:]} but test images {test_x.shape[1:]} in "
                        f"{location}; use one image size and channel count")
    mean, std = _channel_stats(train_x)
    return ImageSource(name=name, num_classes=num_classes, train_images=train_x,
                       train_labels=train_y.astype(np.int64, copy=False), test_images=test_x,
                       test_labels=test_y.astype(np.int64, copy=False), mean=mean, std=std,
                       classes=classes or tuple(str(i) for i in range(num_classes)), location=location,
                       eval_crop=eval_crop)


def _channel_stats(images: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean/std over an evenly strided subset of at most 10k images.

    Computed rather than hard-coded so that every dataset (ImageFolder, synthetic) gets matching constants; the
    stride (not a random subset) keeps them a pure function of the files, and 10k images pin each value to
    ~1e-3, which is all a normalisation constant needs.
    """
    step = max(1, len(images) // _STATS_MAX_IMAGES)
    sample = np.ascontiguousarray(images[::step][:_STATS_MAX_IMAGES])
    levels = np.arange(256, dtype=np.float64) / 255.0
    # A 256-bin histogram per channel gives exact moments without a float copy of the images.
    hist = np.stack([np.bincount(sample[..., c].ravel(), minlength=256) for c in range(sample.shape[-1])])
    hist = hist.astype(np.float64) / hist.sum(axis=1, keepdims=True)
    mean = hist @ levels
    std = np.sqrt(np.maximum(hist @ levels**2 - mean**2, 0.0))
    std = np.maximum(std, 1e-3)  # a constant channel must not divide by zero
    if len(mean) == 1:
        mean, std = np.repeat(mean, 3), np.repeat(std, 3)
    return (tuple(round(float(v), 6) for v in mean),  # type: ignore[return-value]
            tuple(round(float(v), 6) for v in std))


# --------------------------------------------------------------------------------------------------------------
# Fashion-MNIST (IDX files)
# --------------------------------------------------------------------------------------------------------------


def fashion_mnist_folders(root: Path) -> list[Path]:
    """Where Fashion-MNIST is looked for, in order: torchvision's layout under ``root``, then the system folders."""
    return [root / "FashionMNIST" / "raw", *map(Path, FASHION_MNIST_DIRS)]


def find_fashion_mnist(root: Path) -> Path | None:
    """The first of :func:`fashion_mnist_folders` that holds the four IDX files (plain or gz), else None."""
    for folder in fashion_mnist_folders(root):
        if all(_idx_file(folder, v) for v in _FMNIST_FILES.values()):
            return folder
    return None


def _fashion_mnist(root: Path, download: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    folder = find_fashion_mnist(root)
    if folder is None:
        folder = fashion_mnist_folders(root)[0]
        if not download:
            raise DataError(f"fashion_mnist: not found in {folder} or "
                            f"{' or '.join(FASHION_MNIST_DIRS)}; run `nat2 fetch-data` (apt-get install "
                            "dataset-fashion-mnist, else a download) or set data.download: true")
        torchvision_download("fashion_mnist", root)
        if find_fashion_mnist(root) != folder:
            raise DataError(f"fashion_mnist: the download did not produce the IDX files in {folder}; "
                            "delete the folder and retry, or install dataset-fashion-mnist")
    log.info("fashion_mnist: reading IDX files from %s", folder)
    files = {k: _idx_file(folder, v) for k, v in _FMNIST_FILES.items()}
    arrays = {k: _read_idx(p, 3 if k.endswith("images") else 1) for k, p in files.items() if p is not None}
    return (arrays["train_images"][..., None], arrays["train_labels"], arrays["test_images"][..., None],
            arrays["test_labels"], str(folder))


def _idx_file(folder: Path, stem: str) -> Path | None:
    """The uncompressed IDX file if present (torchvision extracts it), else the ``.gz``, else None."""
    for path in (folder / stem, folder / f"{stem}.gz"):
        if path.is_file():
            return path
    return None


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (big-endian header: 0, 0, 0x08, ndim, then ndim uint32 sizes)."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: unreadable or corrupt ({type(exc).__name__}); delete it and reinstall or "
                        "re-download the dataset") from None
    if len(data) < 4 + 4 * ndim or data[:4] != bytes((0, 0, 0x08, ndim)):
        raise DataError(f"{path}: bad IDX magic number (expected a {ndim}-d uint8 IDX file); delete it and "
                        "reinstall or re-download the dataset")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(data) != expected:
        raise DataError(f"{path}: {len(data)} bytes but its IDX header {dims} needs {expected}; the file is "
                        "truncated, delete it and reinstall or re-download the dataset")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


# --------------------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (python pickles)
# --------------------------------------------------------------------------------------------------------------

_CIFAR_LAYOUT = MappingProxyType({
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), b"labels",
                "cifar-10-python.tar.gz"),
    "cifar100": ("cifar-100-python", ("train",), ("test",), b"fine_labels", "cifar-100-python.tar.gz"),
})

# The only globals a CIFAR pickle needs (numpy array reconstruction; _codecs for Python-2 byte strings). Anything
# else is refused, so a tampered download cannot run code when unpickled.
_PICKLE_ALLOWED = frozenset({
    ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("numpy.core"):  # pickles written by numpy < 2
            module = "numpy._core" + module[len("numpy.core"):]
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return getattr(importlib.import_module(module), name)


def _cifar(name: str, root: Path, download: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    folder_name, train_files, test_files, label_key, archive = _CIFAR_LAYOUT[name]
    folder = root / folder_name
    if not folder.is_dir():
        if not download:
            raise DataError(f"{name}: not found in {folder}; extract {archive} into {root} or set "
                            "data.download: true")
        torchvision_download(name, root)
    missing = [f for f in (*train_files, *test_files) if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{name}: {folder / missing[0]} is missing; re-extract {archive} into {root}")
    log.info("%s: reading batches from %s", name, folder)
    train = [_read_cifar_batch(folder / f, label_key) for f in train_files]
    test = [_read_cifar_batch(folder / f, label_key) for f in test_files]
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
            np.concatenate([x for x, _ in test]), np.concatenate([y for _, y in test]), str(folder))


def _read_cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR batch: ``data`` is ``[N, 3072]`` uint8 (planes R, G, B of 32x32), labels a list of ints."""
    try:
        with open(path, "rb") as f:
            batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError, IndexError,
            AttributeError) as exc:
        raise DataError(f"{path}: not a readable CIFAR batch ({type(exc).__name__}); re-extract the dataset "
                        "archive") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{path}: CIFAR batch has data {data.dtype} {data.shape} and {len(labels)} labels, "
                        "expected uint8 [N, 3072] and N labels; re-extract the dataset archive")
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels


# --------------------------------------------------------------------------------------------------------------
# Downloads (torchvision) and the synthetic dataset
# --------------------------------------------------------------------------------------------------------------


def torchvision_download(name: str, root: Path) -> None:
    """Download through torchvision into ``root`` (its md5 check applies only to the fresh archive)."""
    from torchvision import datasets

    cls = {"fashion_mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    log.info("%s: downloading into %s", name, root)
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as exc:  # network, disk or checksum problems all mean: get the files another way
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"{name}: download into {root} failed ({type(exc).__name__}: {first}); check the network "
                        "or place the files there by hand") from None


def _synthetic(cfg: SyntheticConfig, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A learnable RGB dataset: one smooth random template per class, randomly shifted, plus pixel noise.

    Each template is a sum of three random sinusoidal gratings per channel (low frequencies, so a small CNN sees
    distinct textures at every resolution). Images are the class template rolled by up to 1/8 of the side in each
    direction with Gaussian noise (sigma 64/255): a small CNN passes 80 % within ~100 SGD steps, yet it is far from
    trivial for a linear model because of the shifts.
    """
    rng = numpy_rng(seed, "prepare_data", 0, 1)
    size, k = cfg.image_size, cfg.num_classes
    coords = np.arange(size, dtype=np.float64) / size
    freq = rng.integers(1, 4, size=(k, 3, 3, 2))  # class, channel, grating, (fy, fx)
    phase = rng.uniform(0, 2 * np.pi, size=(k, 3, 3))
    amp = rng.uniform(0.3, 1.0, size=(k, 3, 3))
    arg = (2 * np.pi * (freq[..., 0, None, None] * coords[:, None] + freq[..., 1, None, None] * coords[None, :])
           + phase[..., None, None])
    templates = (amp[..., None, None] * np.sin(arg)).sum(axis=2)  # [k, 3, S, S]
    templates = 128 + 90 * templates / np.abs(templates).max(axis=(2, 3), keepdims=True)
    templates = templates.transpose(0, 2, 3, 1)  # [k, S, S, 3]

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.permutation(np.arange(n) % k).astype(np.int64)
        shift = rng.integers(-(size // 8), size // 8 + 1, size=(n, 2))
        rows = (np.arange(size)[None, :, None] + shift[:, 0, None, None]) % size
        cols = (np.arange(size)[None, None, :] + shift[:, 1, None, None]) % size
        images = templates[labels[:, None, None], rows, cols] + rng.normal(0, 64, size=(n, size, size, 3))
        out = np.clip(np.rint(images), 0, 255).astype(np.uint8)
        out.flags.writeable = False
        return out, labels

    train_x, train_y = draw(cfg.train_images)
    test_x, test_y = draw(cfg.test_images)
    return train_x, train_y, test_x, test_y
