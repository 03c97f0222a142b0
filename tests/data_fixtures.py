"""Builders of tiny on-disk datasets in the standard layouts, for the nat2.data tests."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import helpers
import numpy as np
from PIL import Image

from nat2.config import Params, load_params

__all__ = ["REPO", "make_cifar", "make_imagefolder", "make_tiny_imagenet", "params", "write_params"]

REPO = Path(__file__).resolve().parents[1]


#: the tests size their data themselves: keep every image unless they say otherwise
DATA_BASE = {"data.train_size": 0, "data.test_size": 0, "data.calib_size": 32}


def params(**overrides: Any) -> Params:
    """The fixed test params (``helpers.BASE_PARAMS``) with dotted-key overrides."""
    return load_params(helpers.BASE_PARAMS, overrides={**DATA_BASE, **overrides})


def write_params(path: Path, overrides: dict[str, Any]) -> Path:
    """A complete params file: the fixed test params, with dotted-key overrides applied."""
    return helpers.write_params(path, {**DATA_BASE, **overrides})


def _images(rng: np.random.Generator, n: int, labels: np.ndarray) -> np.ndarray:
    """CIFAR rows ``[n, 3072]`` whose red plane brightness encodes the label (so labels are checkable)."""
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    data[:, :1024] = (labels[:, None] * 20) % 256
    return data


def make_cifar(root: Path, name: str, n_train: int = 60, n_test: int = 20, protocol: int = 2) -> Path:
    """A CIFAR-10 (5 train batches) or CIFAR-100 (one ``train`` file, fine labels) python-pickle tree."""
    rng = np.random.default_rng(123)
    if name == "cifar10":
        folder, classes, key = root / "cifar-10-batches-py", 10, b"labels"
        files = {f"data_batch_{i}": n_train // 5 for i in range(1, 6)} | {"test_batch": n_test}
    else:
        folder, classes, key = root / "cifar-100-python", 100, b"fine_labels"
        files = {"train": n_train, "test": n_test}
    folder.mkdir(parents=True)
    for fname, n in files.items():
        labels = rng.integers(0, classes, size=n)
        batch = {b"data": _images(rng, n, labels), key: labels.tolist(), b"batch_label": fname.encode()}
        if name == "cifar100":
            batch[b"coarse_labels"] = (labels // 5).tolist()
        blob = pickle.dumps(batch, protocol=protocol)
        if protocol == 2:  # as written by numpy 1.x (the published archives): GLOBAL numpy.core.multiarray
            blob = blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
            assert b"numpy.core.multiarray" in blob
        (folder / fname).write_bytes(blob)
    return folder


def _png(path: Path, size: tuple[int, int], value: int, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode=mode).save(path)


def make_imagefolder(root: Path, same_size: bool = False) -> Path:
    """``train/{cat,dog}`` (5 PNGs each) and ``test/{cat,dog,eel}`` (2 each); sizes differ unless ``same_size``."""
    for part, per_class, classes in (("train", 5, ("cat", "dog")), ("test", 2, ("cat", "dog", "eel"))):
        for c, cls in enumerate(classes):
            for i in range(per_class):
                size = (12, 12) if same_size else (12 + 2 * i, 10 + i)
                mode = "L" if (i == 1 and cls == "dog") else "RGB"  # a grayscale file is converted to RGB
                _png(root / part / cls / f"{i:03d}.png", size, 40 * c + 10, mode)
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    return root


def make_tiny_imagenet(root: Path, n_classes: int = 3, per_class: int = 4, n_val: int = 6) -> Path:
    """A ``tiny-imagenet-200`` tree with ``n_classes`` WordNet ids and 64x64 JPEGs."""
    folder = root / "tiny-imagenet-200"
    wnids = [f"n{i:08d}" for i in range(n_classes)]
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(reversed(wnids)) + "\n")
    for c, wnid in enumerate(wnids):
        for i in range(per_class):
            path = folder / "train" / wnid / "images" / f"{wnid}_{i}.JPEG"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((64, 64, 3), 60 * c + 20, dtype=np.uint8)).save(path, format="JPEG")
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    lines = []
    (folder / "val" / "images").mkdir(parents=True)
    for i in range(n_val):
        c = i % n_classes
        name = f"val_{i}.JPEG"
        Image.fromarray(np.full((64, 64, 3), 60 * c + 20, dtype=np.uint8)).save(folder / "val" / "images" / name,
                                                                               format="JPEG")
        lines.append(f"{name}\t{wnids[c]}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(reversed(lines)) + "\n")
    return folder
