"""Datasets stored as image files (Tiny ImageNet, ImageFolder trees), decoded once into a memory-mapped cache.

Decoding 110k JPEGs takes minutes, and every stage needs the pixels, so the first reader decodes them into
``<data.root>/.nat2_cache/<name>-<part>-<key>.npy`` (uint8 NHWC, written to a temporary file and renamed, so a killed
run never leaves half a cache) and every later reader memory-maps that file. ``<key>`` hashes the sorted file list
with each file's size and label plus the target image size: adding, removing or replacing an image, or changing
``data.image_size``, makes a new cache instead of silently reusing a stale one. Labels are not cached; they come
from the listing itself. A cache file is only ever replaced by a rename, never rewritten in place: other processes
may have it memory-mapped, and truncating a mapped file kills them with SIGBUS.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from nat2.errors import DataError
from nat2.io import atomic_path

__all__ = ["IMAGE_EXTENSIONS", "load_imagefolder", "load_tiny_imagenet"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".ppm", ".tif", ".tiff", ".webp")
_CACHE_DIR = ".nat2_cache"
_CACHE_VERSION = 1
_TINY_SIZE = 64

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def load_tiny_imagenet(root: Path, *, threads: int = 1) -> tuple[Arrays, tuple[str, ...], str]:
    """Tiny ImageNet from ``<root>/tiny-imagenet-200``; the official ``val`` folder becomes the TEST pool.

    Labels follow the sorted WordNet ids (as torchvision's ImageFolder on ``train/`` numbers them).

    Returns:
        ``(train_x, train_y, test_x, test_y)``, the class ids and the dataset folder.
    """
    folder = root / "tiny-imagenet-200"
    how = (f"download tiny-imagenet-200.zip (http://cs231n.stanford.edu/tiny-imagenet-200.zip) and unzip it into "
           f"{root}; torchvision cannot download it")
    if not folder.is_dir():
        raise DataError(f"tiny_imagenet: not found in {folder}; {how}")
    for rel in ("wnids.txt", "train", "val/images", "val/val_annotations.txt"):
        if not (folder / rel).exists():
            raise DataError(f"tiny_imagenet: {folder / rel} is missing (broken layout); {how}")
    wnids = sorted({w for w in (folder / "wnids.txt").read_text().split() if w})
    index = {w: i for i, w in enumerate(wnids)}
    train: list[tuple[Path, int]] = []
    for wnid in wnids:
        images = folder / "train" / wnid / "images"
        if not images.is_dir():
            raise DataError(f"tiny_imagenet: {images} is missing (broken layout); {how}")
        train += [(p, index[wnid]) for p in _image_files(images)]
    test: list[tuple[Path, int]] = []
    for line_no, line in enumerate((folder / "val" / "val_annotations.txt").read_text().splitlines(), 1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2 or fields[1] not in index:
            raise DataError(f"tiny_imagenet: {folder / 'val/val_annotations.txt'} line {line_no} has no known "
                            f"class id; {how}")
        test.append((folder / "val" / "images" / fields[0], index[fields[1]]))
    test.sort(key=lambda item: item[0].name)
    arrays = _decode_pools("tiny_imagenet", folder, train, test, _TINY_SIZE, threads, cache_root=root)
    return arrays, tuple(wnids), str(folder)


def load_imagefolder(root: Path, image_size: int, *, threads: int = 1) -> tuple[Arrays, tuple[str, ...], str]:
    """An ImageFolder tree ``<root>/{train,test}/<class>/<image>``; classes = sorted union of the folder names.

    Args:
        root: the dataset folder.
        image_size: side every image is resized to (bilinear); 0 keeps the files' size, which must then agree.
        threads: decoding threads.

    Returns:
        ``(train_x, train_y, test_x, test_y)``, the class names and the dataset folder.
    """
    for part in ("train", "test"):
        if not (root / part).is_dir():
            raise DataError(f"imagefolder: {root / part} not found; put images in {root}/train/<class>/ and "
                            f"{root}/test/<class>/ (data.root)")
    classes = sorted({d.name for part in ("train", "test") for d in (root / part).iterdir()
                      if d.is_dir() and not d.name.startswith(".")})
    index = {c: i for i, c in enumerate(classes)}
    pools = []
    for part in ("train", "test"):
        files = [(p, index[c]) for c in classes if (root / part / c).is_dir()
                 for p in _image_files(root / part / c)]
        if not files:
            raise DataError(f"imagefolder: no images ({', '.join(IMAGE_EXTENSIONS)}) in {root / part}/<class>/; "
                            "add some or fix data.root")
        pools.append(files)
    arrays = _decode_pools("imagefolder", root, pools[0], pools[1], image_size, threads, cache_root=root)
    return arrays, tuple(classes), str(root)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file())


def _decode_pools(name: str, folder: Path, train: list[tuple[Path, int]], test: list[tuple[Path, int]],
                  size: int, threads: int, *, cache_root: Path) -> Arrays:
    if size == 0:  # keep the files' size: the first training image defines it, every other one must agree
        size_hw = _image_size(train[0][0])
    else:
        size_hw = (size, size)
    out = []
    for part, files in (("train", train), ("test", test)):
        if not files:
            raise DataError(f"{name}: no {part} images found under {folder}; restore the dataset files")
        paths = [p for p, _ in files]
        images = _cached_decode(name, part, folder, cache_root / _CACHE_DIR, paths, [y for _, y in files], size_hw,
                                size > 0, threads)
        out += [images, np.array([y for _, y in files], dtype=np.int64)]
    return out[0], out[1], out[2], out[3]


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except OSError as exc:
        raise DataError(f"{path}: cannot read the image ({type(exc).__name__}); remove or replace it") from None


def _cached_decode(name: str, part: str, folder: Path, cache_dir: Path, paths: Sequence[Path],
                   labels: Sequence[int], size_hw: tuple[int, int], resize: bool, threads: int) -> np.ndarray:
    shape = (len(paths), size_hw[0], size_hw[1], 3)
    listing = [[os.path.relpath(p, folder), _file_size(p), int(y)] for p, y in zip(paths, labels, strict=True)]
    blob = json.dumps([_CACHE_VERSION, name, part, list(size_hw), resize, listing], separators=(",", ":"))
    cache = cache_dir / f"{name}-{part}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}.npy"
    if cache.is_file():
        try:
            images = np.load(cache, mmap_mode="r")
            if images.shape == shape and images.dtype == np.uint8:
                return images
        except (OSError, ValueError):
            pass
        log.warning("%s: ignoring the unreadable cache %s; decoding again", name, cache)
    log.info("%s: decoding %d %s images into %s (once)", name, len(paths), part, cache)
    try:
        with atomic_path(cache) as tmp:
            images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            _decode_into(images, paths, size_hw, resize, threads)
            images.flush()
            del images
    except OSError:  # a read-only (or full) dataset disk: decode into memory on every run instead
        log.warning("%s: cannot write the cache in %s; decoding in memory", name, cache.parent)
        images = np.empty(shape, dtype=np.uint8)
        _decode_into(images, paths, size_hw, resize, threads)
        return images
    return np.load(cache, mmap_mode="r")


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        raise DataError(f"{path}: listed but unreadable; restore the file or remove it from the dataset") from None


def _decode_into(out: np.ndarray, paths: Sequence[Path], size_hw: tuple[int, int], resize: bool,
                 threads: int) -> None:
    """Decode every image to RGB into ``out[i]`` (PIL releases the GIL while decoding, so threads help)."""
    from PIL import Image

    def one(i: int) -> None:
        path = paths[i]
        try:
            with Image.open(path) as im:
                rgb = im.convert("RGB")
        except OSError as exc:
            raise DataError(f"{path}: cannot decode the image ({type(exc).__name__}); remove or replace it") from None
        if rgb.size != (size_hw[1], size_hw[0]):
            if not resize:
                raise DataError(f"{path}: image is {rgb.size[0]}x{rgb.size[1]} but the first training image is "
                                f"{size_hw[1]}x{size_hw[0]}; set data.image_size to resize all images to one size")
            rgb = rgb.resize((size_hw[1], size_hw[0]), Image.Resampling.BILINEAR)
        out[i] = np.asarray(rgb, dtype=np.uint8)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for _ in pool.map(one, range(len(paths))):
            pass
