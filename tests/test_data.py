"""nat2.data: dataset readers, the deterministic split, training loader and evaluation sets; prepare_data stage."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from nat2.data import EvalSet, Split, TrainLoader, load_source, make_split, read_split, write_split
from nat2.data import datasets as datasets_module
from nat2.errors import ConfigError, DataError
from nat2.stages import prepare_data

try:
    from tests.data_fixtures import make_cifar, make_imagefolder, make_tiny_imagenet, params, write_params
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from data_fixtures import make_cifar, make_imagefolder, make_tiny_imagenet, params, write_params

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg
    return msg


@pytest.fixture(scope="module")
def synth():
    p = params(**{"data.dataset": "synthetic", "data.val_size": 100, "data.calib_size": 64})
    source = load_source(p.data, p.seed)
    return p, source, Split.from_table(make_split(source, p.data, p.seed))


def loader(p, source, split, **kw) -> TrainLoader:
    args = dict(batch_size=32, resolutions=[16, 24, 32], augment=p.data.augment, seed=p.seed)
    return TrainLoader(source, split, **(args | kw))


# --------------------------------------------------------------------------------------------------------------
# Split
# --------------------------------------------------------------------------------------------------------------


def test_split_file_is_byte_deterministic(synth, tmp_path):
    p, source, _ = synth
    write_split(tmp_path / "a.parquet", make_split(source, p.data, p.seed))
    write_split(tmp_path / "b.parquet", make_split(source, p.data, p.seed))
    write_split(tmp_path / "c.parquet", make_split(source, p.data, p.seed + 1))
    a, b, c = ((tmp_path / f"{n}.parquet").read_bytes() for n in "abc")
    assert a == b
    assert a != c
    s_a, s_c = read_split(tmp_path / "a.parquet"), read_split(tmp_path / "c.parquet")
    assert not np.array_equal(s_a.val_idx, s_c.val_idx)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_split_sizes_disjoint_stratified(synth):
    _, source, _ = synth
    cfg = params(**{"data.dataset": "synthetic", "data.val_size": 200, "data.train_size": 500,
                    "data.test_size": 100, "data.calib_size": 50}).data
    split = Split.from_table(make_split(source, cfg, 7))
    assert split.sizes() == {"train": 500, "val": 200, "test": 100, "calib": 50}
    assert not set(split.train_idx) & set(split.val_idx)
    assert set(split.calib_idx) <= set(split.train_idx)
    for name in ("train", "val", "test", "calib"):
        pool, idx, labels = split.subset(name)
        assert len(np.unique(idx)) == len(idx)
        np.testing.assert_array_equal(source.pool(pool)[1][idx], labels)
    counts = np.bincount(split.val_labels, minlength=10)  # 10 balanced classes -> exactly 20 each
    assert counts.min() >= 19 and counts.max() <= 21
    split.check_source(source)
    # train_size/test_size truncations are random subsets, not prefixes
    assert split.train_idx.max() > 600 and split.test_idx.max() > 120
    # the validation images do not move when train_size changes
    other = Split.from_table(make_split(source, params(**{"data.dataset": "synthetic", "data.val_size": 200}).data, 7))
    np.testing.assert_array_equal(other.val_idx, split.val_idx)
    assert len(other.train_idx) == 1024 - 200


def test_calib_may_be_all_train_but_never_more(synth):
    _, source, _ = synth
    cfg = params(**{"data.dataset": "synthetic", "data.val_size": 10, "data.train_size": 30,
                    "data.calib_size": 30}).data
    split = Split.from_table(make_split(source, cfg, 0))
    np.testing.assert_array_equal(np.sort(split.calib_idx), split.train_idx)
    # more than the train split: refused (it was silently clamped), at validation when train_size says so ...
    with pytest.raises(ConfigError, match=r"data\.calib_size = 31: exceeds data\.train_size"):
        params(**{"data.dataset": "synthetic", "data.train_size": 30, "data.calib_size": 31})
    # ... else when the split is made (train_size 0 = all the rest)
    n_rest = len(source.train_labels) - 10
    cfg = params(**{"data.dataset": "synthetic", "data.val_size": 10, "data.calib_size": n_rest + 1}).data
    with pytest.raises(DataError, match=f"data.calib_size = {n_rest + 1} exceeds the {n_rest} images"):
        make_split(source, cfg, 0)


@pytest.mark.parametrize(("key", "value"), [("data.val_size", 1024), ("data.train_size", 1000),
                                            ("data.test_size", 257)])
def test_split_sizes_that_do_not_fit(synth, key, value):
    _, source, _ = synth
    cfg = params(**{"data.dataset": "synthetic", "data.val_size": 100, key: value}).data
    with pytest.raises(DataError) as exc:
        make_split(source, cfg, 0)
    assert one_line(exc).startswith(f"{key} = {value}")


def test_read_split_rejects_missing_corrupt_and_foreign_files(synth, tmp_path):
    with pytest.raises(DataError) as exc:
        read_split(tmp_path / "none.parquet")
    assert "prepare_data" in one_line(exc)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(DataError) as exc:
        read_split(tmp_path / "bad.parquet")
    assert "prepare_data" in one_line(exc)
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), tmp_path / "foreign.parquet")
    with pytest.raises(DataError) as exc:
        read_split(tmp_path / "foreign.parquet")
    assert "not a nat2 split" in one_line(exc)
    p, source, _ = synth
    table = make_split(source, p.data, p.seed)
    damaged = table.set_column(4, "calib", pa.array(np.ones(len(table), dtype=bool)))
    pq.write_table(damaged, tmp_path / "damaged.parquet")
    with pytest.raises(DataError) as exc:
        read_split(tmp_path / "damaged.parquet")
    assert "calibration rows outside the train split" in one_line(exc)


def test_check_source_detects_another_dataset(synth):
    _, _, split = synth
    other = load_source(params(**{"data.dataset": "synthetic", "data.synthetic.train_images": 512}).data, 0)
    with pytest.raises(DataError) as exc:
        split.check_source(other)
    assert "prepare_data" in one_line(exc)


# --------------------------------------------------------------------------------------------------------------
# TrainLoader
# --------------------------------------------------------------------------------------------------------------


def test_resolution_schedule_is_deterministic(synth):
    p, source, split = synth
    a, b = loader(p, source, split), loader(p, source, split)
    assert a.resolution_schedule(3) == b.resolution_schedule(3)
    assert a.resolution_schedule(3) != a.resolution_schedule(4)
    assert set(a.resolution_schedule(0)) <= {16, 24, 32} and len(a.resolution_schedule(0)) == len(a)
    assert loader(p, source, split, iteration=1).resolution_schedule(3) != a.resolution_schedule(3)
    shapes = [x.shape[-1] for x, _ in a.epoch(2)]
    assert shapes == a.resolution_schedule(2)


def test_batches_are_well_formed(synth):
    p, source, split = synth
    tl = loader(p, source, split)
    assert len(tl) == len(split.train_idx) // 32
    seen = []
    for x, y in tl.epoch(0):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[:2] == (32, 3) and x.shape[2] == x.shape[3]
        assert x.is_contiguous(memory_format=torch.channels_last)
        seen.append(y)
    assert len(seen) == len(tl)
    assert abs(float(x.mean())) < 0.3 and 0.6 < float(x.std()) < 1.4  # normalised
    # each image appears at most once per epoch: the labels of a full pass match the train labels' counts
    all_y = torch.cat(seen).numpy()
    assert (np.bincount(all_y, minlength=10) <= np.bincount(split.train_labels, minlength=10)).all()


def test_resume_is_bitwise_exact(synth):
    p, source, split = synth
    tl = loader(p, source, split)
    full = list(tl.epoch(5))
    tail = list(loader(p, source, split).epoch(5, start_batch=17))
    assert len(tail) == len(full) - 17
    for (x1, y1), (x2, y2) in zip(full[17:], tail, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x, _ = tl.batch(5, 20)
    assert torch.equal(x, full[20][0])
    assert not torch.equal(full[0][0][:4], next(iter(tl.epoch(6)))[0][:4])


def test_rank_slices_concatenate_to_the_global_batch(synth):
    p, source, split = synth
    aug = type(p.data.augment)(crop_scale_min=0.5, hflip=True, autoaugment=True, erasing=0.5)
    whole = loader(p, source, split, augment=aug).batch(1, 3)
    parts = [loader(p, source, split, augment=aug, rank=r, world_size=4).batch(1, 3) for r in range(4)]
    assert parts[0][0].shape[0] == 8
    assert torch.equal(torch.cat([x for x, _ in parts]), whole[0])
    assert torch.equal(torch.cat([y for _, y in parts]), whole[1])
    with pytest.raises(DataError):
        loader(p, source, split, world_size=5)


def test_augmentation_leaves_global_rng_alone_and_is_seeded(synth):
    p, source, split = synth
    aug = type(p.data.augment)(crop_scale_min=0.3, hflip=True, autoaugment=True, erasing=0.0)
    before = torch.get_rng_state()
    x1, _ = loader(p, source, split, augment=aug).batch(0, 0)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(12345)  # a different global state must not change the batch
    x2, _ = loader(p, source, split, augment=aug).batch(0, 0)
    torch.set_rng_state(before)
    assert torch.equal(x1, x2)
    plain = type(p.data.augment)(crop_scale_min=1.0, hflip=False, autoaugment=False, erasing=0.0)
    x3, _ = loader(p, source, split, augment=plain, resolutions=[32]).batch(0, 0)
    assert not torch.equal(x1[:, :, :8, :8], x3[:, :, :8, :8])


def test_identity_augmentation_reproduces_the_pixels(synth):
    p, source, split = synth
    plain = type(p.data.augment)(crop_scale_min=1.0, hflip=False, autoaugment=False, erasing=0.0)
    tl = loader(p, source, split, augment=plain, resolutions=[32], memory_format=torch.contiguous_format)
    x, _ = tl.batch(0, 0)
    perm, _ = tl._plan(0)  # the epoch's permutation: batch 0 starts with train image perm[0]
    raw = source.train_images[split.train_idx[perm[0]]].astype(np.float32) / 255.0
    expected = (raw - np.array(source.mean)) / np.array(source.std)
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), expected, atol=1e-4)


# --------------------------------------------------------------------------------------------------------------
# EvalSet
# --------------------------------------------------------------------------------------------------------------


def test_evalset_materialises_once_per_resolution(synth):
    _, source, split = synth
    val = EvalSet(source, split, "val")
    x24, y = val.get(24)
    assert x24.shape == (100, 3, 24, 24) and x24.is_contiguous(memory_format=torch.channels_last)
    assert val.get(24)[0] is x24
    assert val.get(32)[0].shape[-1] == 32
    batches = list(val.batches(24, 30))
    assert [len(b[1]) for b in batches] == [30, 30, 30, 10]
    assert torch.equal(torch.cat([b[0] for b in batches]), x24)
    np.testing.assert_array_equal(y.numpy(), split.val_labels)
    # at the source size the eval transform is the identity
    raw = source.train_images[split.val_idx[0]].astype(np.float32) / 255.0
    np.testing.assert_allclose(val.get(32)[0][0].permute(1, 2, 0).numpy(),
                               (raw - np.array(source.mean)) / np.array(source.std), atol=1e-5)


def test_calibration_set_is_fixed_and_augmented(synth):
    p, source, split = synth
    aug = type(p.data.augment)(crop_scale_min=0.5, hflip=True, autoaugment=True, erasing=0.0)
    a = EvalSet(source, split, "calib", augment=aug, seed=p.seed)
    b = EvalSet(source, split, "calib", augment=aug, seed=p.seed)
    assert len(a) == 64
    assert torch.equal(a.get(24)[0], b.get(24)[0])
    plain = EvalSet(source, split, "calib",
                    augment=type(aug)(crop_scale_min=1.0, hflip=False, autoaugment=False, erasing=0.0))
    assert not torch.equal(a.get(32)[0], plain.get(32)[0])
    with pytest.raises(ValueError):
        EvalSet(source, split, "calib")


# --------------------------------------------------------------------------------------------------------------
# Dataset readers
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_trees(tmp_path, name):
    make_cifar(tmp_path, name, n_train=60, n_test=20)
    p = params(**{"data.dataset": name, "data.root": str(tmp_path), "data.val_size": 10, "data.calib_size": 8})
    source = load_source(p.data, p.seed)
    assert source.num_classes == (10 if name == "cifar10" else 100)
    assert source.train_images.shape == (60, 32, 32, 3) and source.test_images.shape == (20, 32, 32, 3)
    assert source.train_labels.dtype == np.int64
    # the red plane encodes the label in the fixture: the NHWC transpose is right
    np.testing.assert_array_equal(source.train_images[:, 5, 7, 0], (source.train_labels * 20) % 256)
    split = Split.from_table(make_split(source, p.data, p.seed))
    x, y = TrainLoader(source, split, batch_size=10, resolutions=[24, 32], augment=p.data.augment,
                       seed=0).batch(0, 0)
    assert x.shape[:2] == (10, 3) and len(y) == 10
    assert EvalSet(source, split, "test").get(28)[0].shape == (20, 3, 28, 28)


def test_cifar_pickle_with_foreign_globals_is_refused(tmp_path):
    folder = make_cifar(tmp_path, "cifar100", protocol=4)
    with open(folder / "test", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 1], b"x": Path("x")}, f)
    with pytest.raises(DataError) as exc:
        load_source(params(**{"data.dataset": "cifar100", "data.root": str(tmp_path)}).data, 0)
    assert str(folder / "test") in one_line(exc)


def test_cifar_missing_batch_is_a_broken_layout(tmp_path):
    folder = make_cifar(tmp_path, "cifar10")
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError) as exc:
        load_source(params(**{"data.dataset": "cifar10", "data.root": str(tmp_path)}).data, 0)
    assert "data_batch_3" in one_line(exc)


def test_imagefolder_tree(tmp_path):
    make_imagefolder(tmp_path)
    overrides = {"data.dataset": "imagefolder", "data.root": str(tmp_path), "data.val_size": 2}
    with pytest.raises(DataError) as exc:
        load_source(params(**overrides).data, 0)
    assert "data.image_size" in one_line(exc)
    p = params(**overrides | {"data.image_size": 16})
    source = load_source(p.data, 0, threads=2)
    assert source.classes == ("cat", "dog", "eel") and source.num_classes == 3
    assert source.train_images.shape == (10, 16, 16, 3) and source.test_images.shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(source.test_labels, [0, 0, 1, 1, 2, 2])
    assert int(source.train_images[7, 3, 3, 1]) == 50  # dog, a flat image of value 50
    caches = sorted((tmp_path / ".nat2_cache").glob("imagefolder-*.npy"))
    assert len(caches) == 2
    again = load_source(p.data, 0)
    assert isinstance(again.train_images, np.memmap)
    np.testing.assert_array_equal(again.train_images, source.train_images)
    assert sorted((tmp_path / ".nat2_cache").glob("*.npy")) == caches
    expected = np.array(source.test_images)
    (tmp_path / "garbage").write_bytes(b"garbage")  # (replaced, not truncated: it is memory-mapped above)
    os.replace(tmp_path / "garbage", caches[0])  # a damaged cache is decoded again, not trusted
    np.testing.assert_array_equal(load_source(p.data, 0).test_images, expected)
    (tmp_path / "train" / "dog" / "004.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError) as exc:
        load_source(p.data, 0)
    assert "004.png" in one_line(exc)


def test_imagefolder_same_size_keeps_size(tmp_path):
    make_imagefolder(tmp_path, same_size=True)
    p = params(**{"data.dataset": "imagefolder", "data.root": str(tmp_path), "data.val_size": 2})
    assert load_source(p.data, 0).train_images.shape == (10, 12, 12, 3)


def test_tiny_imagenet_tree(tmp_path):
    make_tiny_imagenet(tmp_path)
    p = params(**{"data.dataset": "tiny_imagenet", "data.root": str(tmp_path), "data.val_size": 3,
                  "data.calib_size": 4})
    source = load_source(p.data, 0)
    assert len(list((tmp_path / ".nat2_cache").glob("tiny_imagenet-*.npy"))) == 2
    assert source.train_images.shape == (12, 64, 64, 3) and source.test_images.shape == (6, 64, 64, 3)
    assert source.classes == ("n00000000", "n00000001", "n00000002")
    np.testing.assert_array_equal(source.test_labels, [0, 1, 2, 0, 1, 2])
    assert abs(int(source.test_images[1, 30, 30, 0]) - 80) <= 3  # JPEG of a flat 80 image
    assert source.eval_crop == 0.875
    split = Split.from_table(make_split(source, p.data, 0))
    x, _ = EvalSet(source, split, "test").get(48)
    assert x.shape == (6, 3, 48, 48)


def test_tiny_imagenet_broken_layout(tmp_path):
    folder = make_tiny_imagenet(tmp_path)
    (folder / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DataError) as exc:
        load_source(params(**{"data.dataset": "tiny_imagenet", "data.root": str(tmp_path)}).data, 0)
    assert "val_annotations.txt" in one_line(exc)


@pytest.mark.skipif(not FMNIST_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_package(tmp_path):
    p = params(**{"data.dataset": "fashion_mnist", "data.root": str(tmp_path)})
    source = load_source(p.data, 0)
    assert source.train_images.shape == (60000, 28, 28, 1) and source.test_images.shape == (10000, 28, 28, 1)
    assert source.location == str(FMNIST_DIR)
    assert np.bincount(source.train_labels).tolist() == [6000] * 10
    assert source.mean[0] == source.mean[2] and 0.25 < source.mean[0] < 0.32
    split = Split.from_table(make_split(source, params(**{"data.val_size": 500, "data.train_size": 640}).data, 0))
    x, _ = TrainLoader(source, split, batch_size=64, resolutions=[24, 32], augment=p.data.augment,
                       seed=0).batch(0, 0)
    assert x.shape[:2] == (64, 3)
    assert torch.equal(x[:, 0], x[:, 1]) or source.std[0] != source.std[1]


def _idx(path: Path, magic: bytes, dims: tuple[int, ...], payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(magic + struct.pack(f">{len(dims)}I", *dims) + payload)


def test_fashion_mnist_corrupt_idx(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    _idx(raw / "train-images-idx3-ubyte.gz", b"\x00\x00\x08\x03", (2, 28, 28), bytes(2 * 784))
    _idx(raw / "train-labels-idx1-ubyte.gz", b"\x00\x00\x08\x01", (2,), bytes(2))
    _idx(raw / "t10k-images-idx3-ubyte.gz", b"\x00\x00\x08\x03", (1, 28, 28), bytes(100))  # truncated
    _idx(raw / "t10k-labels-idx1-ubyte.gz", b"\x00\x00\x08\x02", (1,), bytes(1))  # bad magic
    p = params(**{"data.dataset": "fashion_mnist", "data.root": str(tmp_path)})
    with pytest.raises(DataError) as exc:
        load_source(p.data, 0)
    msg = one_line(exc)
    assert "t10k-images-idx3-ubyte.gz" in msg and "truncated" in msg
    _idx(raw / "t10k-images-idx3-ubyte.gz", b"\x00\x00\x08\x03", (1, 28, 28), bytes(784))
    with pytest.raises(DataError) as exc:
        load_source(p.data, 0)
    assert "t10k-labels-idx1-ubyte.gz" in one_line(exc) and "magic" in str(exc.value)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError) as exc:
        load_source(p.data, 0)
    assert "t10k-labels-idx1-ubyte.gz" in one_line(exc)
    _idx(raw / "t10k-labels-idx1-ubyte.gz", b"\x00\x00\x08\x01", (1,), bytes(1))
    assert load_source(p.data, 0).test_images.shape == (1, 28, 28, 1)


@pytest.mark.parametrize("name", ["fashion_mnist", "cifar10", "cifar100", "tiny_imagenet", "imagefolder"])
def test_unavailable_dataset_is_one_line(tmp_path, monkeypatch, name):
    monkeypatch.setattr(datasets_module, "FASHION_MNIST_DIRS", (str(tmp_path / "nowhere"),))
    p = params(**{"data.dataset": name, "data.root": str(tmp_path / "empty")})
    with pytest.raises(DataError) as exc:
        load_source(p.data, 0)
    msg = one_line(exc)
    assert msg.startswith(name) and ("data.download" in msg or "unzip" in msg or "put images" in msg)


# --------------------------------------------------------------------------------------------------------------
# The prepare_data stage
# --------------------------------------------------------------------------------------------------------------


def test_prepare_data_stage_is_reproducible(tmp_path):
    params_file = write_params(tmp_path / "params.yaml", {"data.dataset": "synthetic", "data.val_size": 100})
    out = tmp_path / "data" / "split.parquet"
    outs = []
    for _ in range(2):
        assert prepare_data.main(["--params", str(params_file), "--out", str(out)]) == 0
        outs.append((out.read_bytes(), (tmp_path / "data" / "split.manifest.json").read_text()))
    assert outs[0] == outs[1]
    assert sorted(f.name for f in out.parent.iterdir()) == ["split.manifest.json", "split.parquet"]
    split = read_split(out)
    assert split.sizes() == {"train": 924, "val": 100, "test": 256, "calib": 32}
    assert '"split_sizes"' in outs[0][1]


def test_prepare_data_stage_writes_nothing_on_error(tmp_path, capsys):
    params_file = write_params(tmp_path / "params.yaml", {"data.dataset": "cifar10",
                                                          "data.root": str(tmp_path / "raw")})
    out = tmp_path / "data" / "split.parquet"
    assert prepare_data.main(["--params", str(params_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: cifar10: not found")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
    params_file = write_params(tmp_path / "params.yaml", {"data.dataset": "synthetic", "data.val_size": 5000})
    assert prepare_data.main(["--params", str(params_file), "--out", str(out)]) == 2
    assert "data.val_size" in capsys.readouterr().err
    assert not out.exists()


# --------------------------------------------------------------------------------------------------------------
# nat2 fetch-data: found, else Debian's package, else torchvision's download, else one line (installers mocked)
# --------------------------------------------------------------------------------------------------------------


def _fake_fmnist(folder: Path, n: int = 3) -> None:
    _idx(folder / "train-images-idx3-ubyte.gz", b"\x00\x00\x08\x03", (n, 28, 28), bytes(range(n)) * 784)
    _idx(folder / "train-labels-idx1-ubyte.gz", b"\x00\x00\x08\x01", (n,), bytes(range(n)))
    _idx(folder / "t10k-images-idx3-ubyte.gz", b"\x00\x00\x08\x03", (1, 28, 28), bytes(784))
    _idx(folder / "t10k-labels-idx1-ubyte.gz", b"\x00\x00\x08\x01", (1,), bytes(1))


@pytest.fixture
def fetch_env(tmp_path, monkeypatch):
    """An empty data root and system folder, and fake installers that record their calls."""
    from nat2.data import fetch

    system = tmp_path / "usr-share" / "fashion-mnist"
    monkeypatch.setattr(datasets_module, "FASHION_MNIST_DIRS", (str(system),))
    monkeypatch.setattr(fetch, "FASHION_MNIST_DIRS", (str(system),))
    calls: list[tuple[str, ...]] = []
    p = params(**{"data.dataset": "fashion_mnist", "data.root": str(tmp_path / "raw")})
    return fetch, p.data, system, calls


def test_fetch_finds_an_installed_dataset_without_installing(fetch_env):
    fetch, cfg, system, calls = fetch_env
    _fake_fmnist(system)
    result = fetch.fetch_dataset(cfg, apt=lambda pkg: calls.append(("apt", pkg)),
                                 download=lambda name, root: calls.append(("download", name)))
    assert (result.how, result.location, calls) == ("found", str(system), [])


def test_fetch_installs_the_debian_package_when_apt_and_root(fetch_env):
    fetch, cfg, system, calls = fetch_env
    runs: list[list[str]] = []

    def runner(argv):
        runs.append(list(argv))
        if argv[1] == "install" and ["apt-get", "update", "-q"] in runs:  # the lists were stale: first try fails
            _fake_fmnist(system)
            return 0, "Setting up dataset-fashion-mnist"
        return (0, "updated") if argv[1] == "update" else (100, "E: Unable to locate package")

    apt = lambda pkg: fetch.apt_install(pkg, runner=runner, is_root=True, which=lambda _: "/usr/bin/apt-get")  # noqa: E731
    result = fetch.fetch_dataset(cfg, apt=apt, download=lambda name, root: calls.append(("download", name)))
    assert (result.how, result.location, calls) == ("apt", str(system), [])
    assert [r[:2] for r in runs] == [["apt-get", "install"], ["apt-get", "update"], ["apt-get", "install"]]
    assert runs[-1][-1] == "dataset-fashion-mnist"
    assert load_source(cfg, 0).train_images.shape == (3, 28, 28, 1)


@pytest.mark.parametrize("why", ["no-apt", "not-root"])
def test_fetch_downloads_with_torchvision_without_apt_or_root(fetch_env, why):
    fetch, cfg, _system, calls = fetch_env
    runs: list[list[str]] = []
    apt = lambda pkg: fetch.apt_install(  # noqa: E731
        pkg, runner=lambda argv: runs.append(argv) or (0, ""), is_root=why != "not-root",
        which=lambda _: None if why == "no-apt" else "/usr/bin/apt-get")

    def download(name, root):
        calls.append((name, str(root)))
        _fake_fmnist(Path(root) / "FashionMNIST" / "raw")

    result = fetch.fetch_dataset(cfg, apt=apt, download=download)
    assert result.how == "download" and result.location == str(Path(cfg.root) / "FashionMNIST" / "raw")
    assert calls == [("fashion_mnist", cfg.root)] and runs == []
    assert load_source(cfg, 0).train_labels.tolist() == [0, 1, 2]


def test_fetch_offline_without_apt_is_one_line_naming_both_ways(fetch_env):
    fetch, cfg, _system, _calls = fetch_env

    def offline(name, root):
        raise DataError(f"{name}: download into {root} failed (URLError: no network); check the network")

    with pytest.raises(DataError) as exc:
        fetch.fetch_dataset(cfg, apt=lambda pkg: "apt-get is not available", download=offline)
    msg = one_line(exc)
    assert "apt-get is not available" in msg and "URLError" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "nat2 fetch-data" in msg
    assert not (Path(cfg.root) / "FashionMNIST" / "raw").exists()


def test_fetch_data_command_prints_where_and_fails_with_exit_2(fetch_env, tmp_path, capsys):
    from nat2.cli import main

    _fetch, cfg, system, _calls = fetch_env
    params_file = write_params(tmp_path / "p.yaml", {"data.dataset": "fashion_mnist", "data.root": cfg.root})
    _fake_fmnist(system)
    assert main(["fetch-data", "--params", str(params_file)]) == 0
    assert capsys.readouterr().out.strip() == f"fashion_mnist: found in {system}"
    synthetic = write_params(tmp_path / "s.yaml", {"data.dataset": "synthetic"})
    assert main(["fetch-data", "--params", str(synthetic)]) == 0
    assert capsys.readouterr().out.strip() == "synthetic: found in synthetic"
    missing = write_params(tmp_path / "c.yaml", {"data.dataset": "cifar10", "data.root": str(tmp_path / "none")})
    assert main(["fetch-data", "--params", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cifar10") and "\n" not in err


# --------------------------------------------------------------------------------------------------------------
# Random erasing and images per epoch
# --------------------------------------------------------------------------------------------------------------


def test_random_erasing_zeroes_one_rectangle_and_keeps_the_other_streams(synth):
    p, source, split = synth
    plain = type(p.data.augment)(crop_scale_min=1.0, hflip=False, autoaugment=False, erasing=0.0)
    always = type(plain)(crop_scale_min=1.0, hflip=False, autoaugment=False, erasing=1.0)
    a = loader(p, source, split, augment=plain, resolutions=[32])
    b = loader(p, source, split, augment=always, resolutions=[32])
    (xa, ya), (xb, yb) = a.batch(1, 2), b.batch(1, 2)
    assert torch.equal(ya, yb)
    erased = (xb == 0).all(dim=1) & (xa != 0).any(dim=1)  # pixels zeroed in every channel by erasing only
    kept = xb == xa
    assert torch.all(kept | (xb == 0))  # erasing only ever writes zeros (the mean after normalisation)
    for i in range(len(xb)):
        rows, cols = torch.nonzero(erased[i], as_tuple=True)
        assert len(rows) > 0  # probability 1: every image has a rectangle
        area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert 0.02 * 32 * 32 - 64 <= area <= 32 * 32 / 3 + 64  # one rectangle of 2-33 % of the image
        assert erased[i, rows.min():rows.max() + 1, cols.min():cols.max() + 1].float().mean() > 0.9
    assert torch.equal(b.batch(1, 2)[0], xb)  # seeded: the same batch again


def test_images_per_epoch_draws_a_fresh_subset_each_epoch(synth):
    p, source, split = synth
    full, part = loader(p, source, split), loader(p, source, split, images_per_epoch=96)
    assert len(part) == 3 and len(full) == len(split.train_idx) // 32
    seen = []
    for e in range(2):
        order, _ = part._plan(e)
        seen.append(set(order[:96].tolist()))
        batches = list(part.epoch(e))
        assert len(batches) == 3
        torch.testing.assert_close(batches[1][0], part.batch(e, 1)[0])
    assert seen[0] != seen[1]  # other images in every epoch
    with pytest.raises(DataError, match="fewer than one batch"):
        loader(p, source, split, images_per_epoch=16)
