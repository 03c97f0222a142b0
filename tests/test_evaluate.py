"""The evaluation cache: keyed by everything that decides a number; damaged lines are recomputed, never trusted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from helpers import BASE_PARAMS, SYNTHETIC

from nat2.config import load_params
from nat2.data import EvalSet, load_source
from nat2.data.split import Split, make_split
from nat2.evaluate import EvalCache, eval_context_key


def _sets(**overrides: object) -> tuple[EvalSet, EvalSet]:
    params = load_params(BASE_PARAMS, overrides={**SYNTHETIC, **overrides})
    source = load_source(params.data, params.seed)
    split = Split.from_table(make_split(source, params.data, params.seed))
    calib = EvalSet(source, split, "calib", augment=params.data.augment, seed=params.seed)
    return calib, EvalSet(source, split, "val")


def _key(calib: EvalSet, val: EvalSet, ckpt: str = "abc", cbs: int = 64, ebs: int = 64) -> str:
    return eval_context_key(ckpt, calib, val, calib_batch_size=cbs, eval_batch_size=ebs,
                            memory_format=torch.channels_last, device="cpu")


def test_the_key_changes_with_everything_that_decides_top1(monkeypatch: pytest.MonkeyPatch) -> None:
    calib, val = _sets()
    base = _key(calib, val)
    assert _key(*_sets()) == base, "the same context must give the same key (the cache is reused)"
    others = {
        "weights": _key(calib, val, ckpt="abd"),
        "calibration batch size": _key(calib, val, cbs=32),
        "evaluation batch size": _key(calib, val, ebs=32),
        "calibration subset": _key(*_sets(**{"data.calib_size": 48})),
        "calibration augmentation": _key(*_sets(**{"data.augment.crop_scale_min": 0.5})),
        "validation split": _key(*_sets(**{"data.val_size": 40})),
        "seed (split and crops)": _key(*_sets(seed=1)),
    }
    import nat2.evaluate as ev

    monkeypatch.setattr(ev, "EVAL_CODE_MODULES", (*ev.EVAL_CODE_MODULES, "nat2.costs"))
    others["evaluation code"] = _key(calib, val)
    for what, key in others.items():
        assert key != base, f"changing the {what} kept the cache key"


def test_cache_round_trip_and_damaged_lines_are_recomputed(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    cache = EvalCache(tmp_path, "k1")
    cache.put("a" * 12, 81.25)
    cache.put("b" * 12, 77.5)
    cache.put("c" * 12, 70.0)
    assert EvalCache(tmp_path, "k1").get("a" * 12) == 81.25
    assert EvalCache(tmp_path, "k2").get("a" * 12) is None  # another context: another file
    lines = cache.path.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["top1"] = 99.0  # a hand-edited value: its checksum no longer matches
    nan = json.loads(lines[2])
    lines[1] = json.dumps(edited)
    lines[2] = json.dumps(nan).replace("70.0", "NaN")
    cache.path.write_text("\n".join([*lines, '{"id": "dddddddddddd", "top1": 5', "\x00\xff garbage"]) + "\n")
    with caplog.at_level(logging.WARNING):
        again = EvalCache(tmp_path, "k1")
    assert again.get("a" * 12) == 81.25
    assert again.get("b" * 12) is None and again.get("c" * 12) is None and again.get("d" * 12) is None
    assert "skipped 4 damaged" in caplog.text
    # a line copied from another context's file is foreign to this one
    other = EvalCache(tmp_path, "k3")
    other.put("e" * 12, 50.0)
    with open(again.path, "a") as f:
        f.write(other.path.read_text())
    assert EvalCache(tmp_path, "k1").get("e" * 12) is None


def test_binary_file_or_directory_in_place_of_the_cache(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "bin.jsonl").write_bytes(bytes(range(256)) * 8)
    with caplog.at_level(logging.WARNING):
        cache = EvalCache(tmp_path, "bin")
    assert cache.get("a" * 12) is None
    cache.put("a" * 12, 12.5)  # appends a good line after the garbage: read back next time
    assert EvalCache(tmp_path, "bin").get("a" * 12) == 12.5
    (tmp_path / "dir.jsonl").mkdir()
    with caplog.at_level(logging.WARNING):
        cache = EvalCache(tmp_path, "dir")
        cache.put("a" * 12, 12.5)
    assert cache.get("a" * 12) == 12.5  # kept in memory for this run
    assert "unreadable" in caplog.text
