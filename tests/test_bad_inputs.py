"""Bad input a user (or a damaged disk) hands a stage: one row a case, each a one-line error, exit 2, nothing written.

Every row names the stage, how its input is spoiled, and the words the one-line message must contain. The tiny
chain they start from (a 1-epoch synthetic super-net, an initial archive, one fitted surrogate) is built once.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import BASE_PARAMS, SYNTHETIC, train_chain, write_params

from nat2 import archive as arc
from nat2.cli import main as cli_main
from nat2.io import clean_stale_temporaries, write_bytes
from nat2.stages import (
    adapt_supernet,
    assemble_supernet,
    evaluate,
    extract,
    fit_surrogate,
    init_archive,
    sample_initial,
    search,
    update_archive,
)

CHAIN = {**SYNTHETIC, "train.lineage": {}, "train.final": "full", "search.iterations": {"1": "0"},
         "search.final": "1", "search.archive_size": 12, "search.candidates": 3, "search.preprocess_mult": 2,
         "search.pop_size": 16, "search.generations": 3, "search.top_n": 6, "search.surrogate_folds": 3,
         "search.shards": [0], "search.adapt.epochs": 0, "postprocess.slots": [0, 1]}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    params = write_params(d / "params.yaml", CHAIN)
    split, ckpts = train_chain(d, params, ["full"])
    base = ["--params", str(params)]
    files = {"params": params, "split": split, "full": ckpts["full"], "supernet": d / "supernet.pt",
             "design": d / "iter_0" / "design.parquet", "shard": d / "iter_0" / "evals" / "shard_0.parquet",
             "archive": d / "iter_0" / "archive.parquet", "iter0_supernet": d / "iter_0" / "supernet.pt",
             "surrogate": d / "iter_1" / "surrogate.model.json", "candidates": d / "iter_1" / "candidates.parquet"}
    assert assemble_supernet.main([*base, "--phase-ckpt", str(ckpts["full"]), "--out", str(files["supernet"])]) == 0
    assert sample_initial.main([*base, "--out", str(files["design"])]) == 0
    assert evaluate.main([*base, "--genomes", str(files["design"]), "--supernet", str(files["supernet"]),
                          "--split", str(split), "--shard", "0", "--out", str(files["shard"]),
                          "--cache-dir", str(d / "cache")]) == 0
    assert init_archive.main([*base, "--evals", str(files["shard"].parent), "--supernet", str(files["supernet"]),
                              "--split", str(split), "--out", str(files["archive"]), "--out-supernet",
                              str(files["iter0_supernet"]), "--stats", str(d / "iter_0" / "stats.json")]) == 0
    assert fit_surrogate.main([*base, "--iteration", "1", "--archive", str(files["archive"]), "--out",
                               str(files["surrogate"]), "--report", str(d / "iter_1" / "surrogate.json")]) == 0
    assert search.main([*base, "--iteration", "1", "--archive", str(files["archive"]), "--surrogate",
                        str(files["surrogate"]), "--split", str(split), "--out", str(files["candidates"]),
                        "--stats", str(d / "iter_1" / "search.json")]) == 0
    return files


# -- ways to spoil an input (each returns the spoiled copy) ------------------------------------------------------------


def garble(src: Path, dst: Path, at: float = 0.6, n: int = 64) -> Path:
    """``n`` bytes inside the file (inside a tensor's data for a checkpoint) replaced by garbage."""
    data = bytearray(src.read_bytes())
    i = int(len(data) * at)
    data[i:i + n] = bytes((b ^ 0x5A) for b in data[i:i + n])
    dst.write_bytes(bytes(data))
    return dst


def put(path: Path, data: bytes) -> Path:
    write_bytes(path, data)
    return path


def retag_archive(src: Path, dst: Path, checkpoint_hash: str) -> Path:
    df = arc.read_archive(src)
    df["checkpoint_hash"] = checkpoint_hash
    arc.write_archive(dst, arc.make_archive(df))
    return dst


def empty_archive(src: Path, dst: Path) -> Path:
    arc.write_archive(dst, arc.make_archive(arc.read_archive(src).iloc[:0]))
    return dst


class _Boom:
    """A pickle payload that, if ever unpickled, writes a marker file (stands for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.write_text, (self.marker, "pwned"))


def edit_json(src: Path, dst: Path, edit: Callable[[dict], None]) -> Path:
    data = json.loads(src.read_text())
    edit(data)
    dst.write_text(json.dumps(data))
    return dst


def _rehash(data: dict) -> None:
    from nat2.surrogate.storage import _digest

    data.pop("digest", None)
    data["digest"] = _digest(data)


# -- the table ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad input: the stage, its argv built from the chain's files and a scratch folder, the expected words."""

    name: str
    stage: Callable[[list[str]], int]
    argv: Callable[[dict[str, Path], Path], list[str]]
    expect: str
    outputs: tuple[str, ...]  # names under the scratch folder that must not exist afterwards


def _update(f: dict[str, Path], t: Path, archive: Path | None = None, supernet: Path | None = None,
            iteration: str = "1") -> list[str]:
    return ["--params", str(f["params"]), "--iteration", iteration, "--archive", str(archive or f["archive"]),
            "--candidates", str(f["candidates"]), "--supernet", str(supernet or f["iter0_supernet"]),
            "--split", str(f["split"]), "--out", str(t / "updated.parquet"), "--stats", str(t / "update.json"),
            "--cache-dir", str(t / "cache")]


def _search(f: dict[str, Path], t: Path, surrogate: Path, archive: Path | None = None,
            iteration: str = "1") -> list[str]:
    return ["--params", str(f["params"]), "--iteration", iteration, "--archive", str(archive or f["archive"]),
            "--surrogate", str(surrogate), "--split", str(f["split"]), "--out", str(t / "candidates.parquet"),
            "--stats", str(t / "search.json")]


def _fit(f: dict[str, Path], t: Path, archive: Path | None = None, iteration: str = "1") -> list[str]:
    return ["--params", str(f["params"]), "--iteration", iteration, "--archive", str(archive or f["archive"]),
            "--out", str(t / "surrogate.model.json"), "--report", str(t / "surrogate.json")]


def _evaluate(f: dict[str, Path], t: Path, supernet: Path) -> list[str]:
    return ["--params", str(f["params"]), "--genomes", str(f["design"]), "--supernet", str(supernet), "--split",
            str(f["split"]), "--shard", "0", "--out", str(t / "shard_0.parquet"), "--cache-dir", str(t / "cache")]


def _extract(f: dict[str, Path], t: Path, archive: Path) -> list[str]:
    return ["--params", str(f["params"]), "--archive", str(archive), "--supernet", str(f["iter0_supernet"]),
            "--split", str(f["split"]), "--out", str(t / "extract")]


def _adapt(f: dict[str, Path], t: Path, archive: Path) -> list[str]:
    return ["--params", str(f["params"]), "--iteration", "1", "--archive", str(archive), "--supernet",
            str(f["iter0_supernet"]), "--split", str(f["split"]), "--full", str(f["full"]), "--out-supernet",
            str(t / "supernet.pt"), "--out-archive", str(t / "archive.parquet"), "--stats", str(t / "adapt.json"),
            "--partial-root", str(t / "partial"), "--cache-dir", str(t / "cache")]


CASES = [
    Case("super-net with 64 garbled bytes inside a tensor", evaluate.main,
         lambda f, t: _evaluate(f, t, garble(f["supernet"], t / "garbled.pt")), "digest", ("shard_0.parquet",)),
    Case("super-net cut short", evaluate.main,
         lambda f, t: _evaluate(f, t, put(t / "cut.pt", f["supernet"].read_bytes()[:5000])),
         "corrupt", ("shard_0.parquet",)),
    Case("archive measured on another super-net", update_archive.main,
         lambda f, t: _update(f, t, archive=retag_archive(f["archive"], t / "a.parquet", "0123456789abcdef")),
         "was evaluated on super-net 0123456789abcdef", ("updated.parquet", "update.json")),
    Case("later archive with the pre-adaptation super-net (extract)", extract.main,
         lambda f, t: _extract(f, t, retag_archive(f["archive"], t / "a.parquet", "feedfacefeedface")),
         "pass the super-net of the same iteration", ("extract",)),
    Case("archive of another super-net given to adaptation", adapt_supernet.main,
         lambda f, t: _adapt(f, t, retag_archive(f["archive"], t / "a.parquet", "feedfacefeedface")),
         "was evaluated on super-net", ("supernet.pt", "archive.parquet", "adapt.json")),
    Case("empty archive", fit_surrogate.main,
         lambda f, t: _fit(f, t, archive=empty_archive(f["archive"], t / "empty.parquet")),
         "holds no architecture", ("surrogate.model.json", "surrogate.json")),
    Case("--iteration outside the chain", fit_surrogate.main, lambda f, t: _fit(f, t, iteration="7"),
         "--iteration 7 is not in the search.iterations chain", ("surrogate.model.json", "surrogate.json")),
    Case("--iteration outside the chain (update)", update_archive.main, lambda f, t: _update(f, t, iteration="3"),
         "--iteration 3 is not in the search.iterations chain", ("updated.parquet",)),
    Case("malicious pickle as the surrogate", search.main,
         lambda f, t: _search(f, t, put(t / "evil.json", pickle.dumps(_Boom(t / "PWNED")))),
         "not a nat2 surrogate", ("candidates.parquet", "search.json", "PWNED")),
    Case("surrogate with an edited prediction", search.main,
         lambda f, t: _search(f, t, edit_json(f["surrogate"], t / "s.json",
                                              lambda d: d["predictions"].__setitem__(0, 0.5))),
         "digest", ("candidates.parquet", "search.json")),
    Case("surrogate file without a model", search.main,
         lambda f, t: _search(f, t, edit_json(f["surrogate"], t / "s.json",
                                              lambda d: (d.pop("model"), _rehash(d)))),
         "holds no usable model", ("candidates.parquet", "search.json")),
    Case("surrogate of another model than params ask for", search.main,
         lambda f, t: _search(f, t, edit_json(f["surrogate"], t / "s.json",
                                              lambda d: (d.__setitem__("model", "cart"), _rehash(d)))),
         "refitting does not reproduce", ("candidates.parquet", "search.json")),
    Case("binary file as the surrogate", search.main,
         lambda f, t: _search(f, t, put(t / "bin.json", bytes(range(256)))),
         "not a nat2 surrogate", ("candidates.parquet", "search.json")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_written(case: Case, chain: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    argv = case.argv(chain, tmp_path)
    before = {p for p in tmp_path.rglob("*")}
    capsys.readouterr()
    assert case.stage(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and case.expect in err[0], err
    for name in case.outputs:
        assert not (tmp_path / name).exists(), f"{name} was written"
    left = {p for p in tmp_path.rglob("*")} - before
    assert not [p for p in left if p.name.startswith(".")], f"temporaries left: {left}"


# -- params files that validate no longer: nat2 validate, one line, exit 2 ---------------------------------------------


def _params_text(overrides: dict) -> str:
    from helpers import params_dict

    return yaml.safe_dump(params_dict(BASE_PARAMS, {**CHAIN, **overrides}), sort_keys=False)


PARAMS_CASES = [
    ("surrogate folds the archive cannot support",
     lambda p: p.write_text(_params_text({"search.archive_size": 6, "search.surrogate_folds": 2})),
     "search.archive_size = 6: is too small to fit and cross-validate the lgb surrogate with "
     "search.surrogate_folds = 2 (needs >= 8)"),
    ("archive below the surrogate's minimum",
     lambda p: p.write_text(_params_text({"search.archive_size": 4, "postprocess.slots": [0]})),
     "search.archive_size = 4"),
    ("more slots than the archive holds",
     lambda p: p.write_text(_params_text({"search.archive_size": 12,
                                          "postprocess.slots": list(range(13))})),
     "postprocess.slots"),
    ("calibration subset larger than the train split",
     lambda p: p.write_text(_params_text({"data.train_size": 100, "data.calib_size": 200})),
     "data.calib_size = 200: exceeds data.train_size (100)"),
    ("a key written twice", lambda p: p.write_text(_params_text({}) + "seed: 3\n"),
     "key 'seed' appears twice"),
    ("a binary params file", lambda p: p.write_bytes(bytes(range(256)) * 4), "not a text file"),
    ("a directory as the params file", lambda p: p.mkdir(), "is a directory"),
    ("an unknown latency backend", lambda p: p.write_text(_params_text({"latency.backend": "tflite"})),
     "latency.backend = 'tflite': must be one of torch, onnxruntime"),
    ("no latency rounds", lambda p: p.write_text(_params_text({"latency.rounds": 0})),
     "latency.rounds = 0: must be an integer >= 1"),
]


@pytest.mark.parametrize(("make", "expect"), [c[1:] for c in PARAMS_CASES], ids=[c[0] for c in PARAMS_CASES])
def test_bad_params_file_is_refused_by_validate(make: Callable[[Path], None], expect: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "params.yaml"
    make(p)
    capsys.readouterr()
    assert cli_main(["validate", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err


def test_latency_objective_params_file_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Latency is measured now (profile_latency): the objective that used to be refused validates."""
    p = tmp_path / "params.yaml"
    p.write_text(_params_text({"search.objectives": ["error", "macs", "latency"]}))
    capsys.readouterr()
    assert cli_main(["validate", str(p)]) == 0
    assert capsys.readouterr().err.strip() == ""


def test_full_disk_is_one_line(chain: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    import nat2.io

    def no_space(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nat2.io.os, "replace", no_space)
    capsys.readouterr()
    assert fit_surrogate.main(_fit(chain, tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"no space left on {tmp_path}" in err[0], err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path: Path) -> None:
    dest = tmp_path / "supernet.pt"
    dead = tmp_path / f".supernet.pt.{2**22 + 12345}.abc.tmp"  # beyond pid_max: never a live process
    live = tmp_path / f".supernet.pt.{os.getppid()}.def.tmp"  # a running writer's: left alone
    old_dir = tmp_path / f".supernet.pt.old.{2**22 + 7}.xyz"
    other = tmp_path / f".archive.parquet.{2**22 + 1}.q.tmp"  # another output's: not this writer's business
    for f in (dead, live, other):
        f.write_bytes(b"x" * 1000)
    old_dir.mkdir()
    (old_dir / "supernet.pt").write_bytes(b"y")
    write_bytes(dest, b"new")
    assert dest.read_bytes() == b"new"
    assert not dead.exists() and not old_dir.exists()
    assert live.exists() and other.exists()
    assert clean_stale_temporaries(tmp_path / "archive.parquet") == [other]


def test_identical_runs_write_byte_identical_checkpoints(chain: dict[str, Path], tmp_path: Path) -> None:
    """Two assemblies of the same phase checkpoint: same md5 (the temporary name is no longer inside the zip)."""
    digests = []
    for k in range(2):
        out = tmp_path / f"run{k}" / "supernet.pt"
        assert assemble_supernet.main(["--params", str(chain["params"]), "--phase-ckpt", str(chain["full"]),
                                       "--out", str(out)]) == 0
        digests.append(hashlib.md5(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1] == hashlib.md5(chain["supernet"].read_bytes()).hexdigest()
    shutil.rmtree(tmp_path / "run0")


def test_evaluation_cache_damage_is_recomputed_with_identical_bytes(chain: dict[str, Path], tmp_path: Path) -> None:
    """A killed (cut), tampered or replaced evaluation cache never changes the shard's bytes; a fresh run equals."""
    cache = tmp_path / "cache"

    def run(name: str) -> str:
        out = tmp_path / name / "shard_0.parquet"
        argv = _evaluate(chain, tmp_path / name, chain["supernet"])
        argv[argv.index("--cache-dir") + 1] = str(cache)
        assert evaluate.main(argv) == 0
        return hashlib.md5(out.read_bytes()).hexdigest()

    fresh = run("fresh")
    assert fresh == hashlib.md5(chain["shard"].read_bytes()).hexdigest()  # two identical runs, same bytes
    (cache_file,) = cache.glob("*.jsonl")
    lines = cache_file.read_text().splitlines()
    assert len(lines) == len(pd.read_parquet(chain["design"]))
    cache_file.write_text("\n".join(lines[: len(lines) // 2]) + "\n" + lines[len(lines) // 2][:17])  # a kill
    assert run("resumed") == fresh
    tampered = [json.dumps({**json.loads(x), "top1": 99.9}) for x in cache_file.read_text().splitlines()
                if x.endswith("}")]
    cache_file.write_text("\n".join(tampered) + "\n")
    assert run("tampered") == fresh
    cache_file.unlink()
    cache_file.mkdir()
    assert run("directory") == fresh
