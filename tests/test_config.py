"""params.yaml validation: every key rejects a wrong type and an out-of-range value with one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml
from helpers import BASE_PARAMS

from nat2.cli import main as cli_main
from nat2.config import iter_keys, load_params, params_hash, read_params_dict
from nat2.errors import ConfigError
from nat2.presets import overlay_redundancies, use_preset

ROOT = Path(__file__).resolve().parents[1]
PARAMS = BASE_PARAMS  # the fixed test base; tests about the repository's own file say REPO_PARAMS
REPO_PARAMS = ROOT / "params.yaml"
KEYS = list(iter_keys())


def _wrong_type(tp: typing.Any) -> typing.Any:
    if typing.get_origin(tp) in (tuple, dict):
        return 5  # a scalar where a list or mapping belongs
    return {bool: "maybe", int: "abc", float: "abc", str: 123}[tp]


def _out_of_range(tp: typing.Any, spec: typing.Any) -> list[typing.Any]:
    """Values that have the right type but break the key's constraints."""
    if typing.get_origin(tp) is dict:
        return [{"zzz_not_allowed": "full"}, {"kernel": "zzz_not_allowed"}]
    is_list = typing.get_origin(tp) is tuple
    item = typing.get_args(tp)[0] if is_list else tp
    bad: list[typing.Any] = []
    if spec.choices is not None:
        bad.append("zzz_not_allowed")
    if spec.ge is not None:
        bad.append(item(spec.ge) - 1)
    if spec.gt is not None:
        bad.append(item(spec.gt))
    if spec.le is not None:
        bad.append(item(spec.le) + 1)
    if is_list:
        values = [[v] for v in bad]
        if spec.min_len:
            values.append([])
        return values
    return bad


def _expect_one_line_error(overrides: dict, path: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_params(PARAMS, overrides=overrides)
    msg = str(info.value)
    assert "\n" not in msg
    assert f" {path}" in msg, msg
    return msg


def test_repository_params_validate() -> None:
    params = load_params(REPO_PARAMS)
    assert params.supernet.variant == "ee_dense"
    assert params.search.objectives == ("error", "macs")
    assert params.supernet.resolutions == (24, 28) and params.supernet.stem_stride == 1  # the small-image regime


@pytest.mark.parametrize(("path", "tp"), [(p, t) for p, t, _ in KEYS], ids=[p for p, _, _ in KEYS])
def test_every_key_rejects_wrong_type(path: str, tp: typing.Any) -> None:
    msg = _expect_one_line_error({path: _wrong_type(tp)}, path)
    assert "must be" in msg


RANGE_CASES = [(p, v) for p, t, s in KEYS for v in _out_of_range(t, s)]


@pytest.mark.parametrize(("path", "value"), RANGE_CASES, ids=[f"{p}={v!r}" for p, v in RANGE_CASES])
def test_every_key_rejects_out_of_range(path: str, value: typing.Any) -> None:
    _expect_one_line_error({path: value}, path)


def test_every_constrained_key_has_a_range_case() -> None:
    constrained = {p for p, _, s in KEYS if s.choices or s.ge is not None or s.gt is not None or s.le is not None}
    assert constrained <= {p for p, _ in RANGE_CASES}
    assert len(RANGE_CASES) >= 25


def test_unknown_and_missing_keys(tmp_path: Path) -> None:
    raw = yaml.safe_load(PARAMS.read_text())
    raw["data"]["val_sise"] = 3
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"data\.val_sise: unknown key"):
        load_params(f)
    raw = yaml.safe_load(PARAMS.read_text())
    del raw["supernet"]["dropout"]
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"supernet\.dropout: missing key"):
        load_params(f)


def test_list_rules() -> None:
    _expect_one_line_error({"supernet.resolutions": [32, 24]}, "supernet.resolutions")
    _expect_one_line_error({"supernet.width_mults": [1.0, 1.0]}, "supernet.width_mults")
    _expect_one_line_error({"search.objectives": ["macs", "error"]}, "search.objectives")


def test_bool_is_not_an_int_and_int_is_a_float() -> None:
    _expect_one_line_error({"seed": True}, "seed")
    assert load_params(PARAMS, overrides={"supernet.dropout": 0}).supernet.dropout == 0.0


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("seed: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(f)
    with pytest.raises(ConfigError, match="file not found"):
        load_params(tmp_path / "absent.yaml")


@pytest.mark.parametrize("preset", sorted((ROOT / "params").glob("*.yaml")), ids=lambda p: p.name)
def test_presets_are_short_overlays_that_validate(preset: Path, tmp_path: Path) -> None:
    load_params(preset)
    assert yaml.safe_load(preset.read_text())["extends"] == "../params.yaml"
    assert overlay_redundancies(preset) == [], "an overlay holds only the keys that differ from params.yaml"
    # `make use` writes the same merge into params.yaml, keeping every comment of params.yaml
    shutil.copyfile(REPO_PARAMS, tmp_path / "params.yaml")
    assert use_preset(preset, tmp_path / "params.yaml") is True
    assert read_params_dict(tmp_path / "params.yaml") == read_params_dict(preset)
    assert use_preset(preset, tmp_path / "params.yaml") is False  # already there
    comments = [line.split("#", 1)[1] for line in REPO_PARAMS.read_text().splitlines() if "#" in line]
    written = tmp_path.joinpath("params.yaml").read_text()
    assert sum(c in written for c in comments) >= 0.9 * len(comments)


def test_an_overlay_merges_sections_and_replaces_mapping_values_whole(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(REPO_PARAMS.read_text())
    (tmp_path / "p.yaml").write_text("extends: base.yaml\ntrain:\n  lineage: {kernel: full}\n  final: kernel\n"
                                     "  schedule: {full: {epochs: 7}}\n")
    p = load_params(tmp_path / "p.yaml")
    assert dict(p.train.lineage) == {"kernel": "full"} and p.train.final == "kernel"
    assert p.train.schedule.full.epochs == 7
    assert p.train.schedule.full.lr == load_params(REPO_PARAMS).train.schedule.full.lr
    (tmp_path / "bad.yaml").write_text("extends: base.yaml\ntrain:\n  shedule: {}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train.shedule'"):
        load_params(tmp_path / "bad.yaml")
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\nseed: 1\n")
    with pytest.raises(ConfigError, match="a preset itself"):
        load_params(tmp_path / "loop.yaml")
    (tmp_path / "p2.yaml").write_text("extends: p.yaml\nseed: 1\n")
    with pytest.raises(ConfigError, match="a preset itself"):
        load_params(tmp_path / "p2.yaml")


def test_presets_never_stack_on_a_params_yaml_that_holds_one(tmp_path: Path) -> None:
    """`nat2 use` writes a preset into params.yaml; a second preset must not silently keep the first one's values."""
    (tmp_path / "params").mkdir()
    shutil.copyfile(REPO_PARAMS, tmp_path / "params.yaml")
    for name in ("ci", "full"):
        shutil.copyfile(ROOT / "params" / f"{name}.yaml", tmp_path / "params" / f"{name}.yaml")
    assert use_preset(tmp_path / "params/ci.yaml", tmp_path / "params.yaml") is True
    assert use_preset(tmp_path / "params/ci.yaml", tmp_path / "params.yaml") is False  # already holds it
    before = (tmp_path / "params.yaml").read_bytes()
    with pytest.raises(ConfigError, match=r"holds .*ci.yaml \(written by `nat2 use`\), not the defaults"):
        use_preset(tmp_path / "params/full.yaml", tmp_path / "params.yaml")
    assert (tmp_path / "params.yaml").read_bytes() == before  # nothing written


def test_every_key_is_commented_in_params_yaml() -> None:
    for line in REPO_PARAMS.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not stripped.endswith(":"):
            assert "#" in line, f"params.yaml line without a comment: {line!r}"


def test_params_hash_is_stable() -> None:
    assert params_hash(load_params(PARAMS)) == params_hash(load_params(PARAMS))
    assert params_hash(load_params(PARAMS)) != params_hash(load_params(PARAMS, overrides={"seed": 1}))


def test_cli_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["validate", str(PARAMS)]) == 0
    text = PARAMS.read_text()
    for old, new, key in [("val_size: 5000", "val_size: -3", "data.val_size"),
                          ("threads: 2", "threads: two", "runtime.threads"),
                          ("seed: 0", "seed: 0\nbogus: 1", "bogus")]:
        f = tmp_path / "bad.yaml"
        f.write_text(text.replace(old, new, 1))
        capsys.readouterr()
        assert cli_main(["validate", str(f)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and key in err


def test_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "nat2.cli", "info", "--params", str(PARAMS)],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "ee_dense" in out


def test_latency_objective_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for objectives in (["error", "latency"], ["error", "macs", "latency"]):
        params = load_params(PARAMS, overrides={"search.objectives": objectives})
        assert params.search.objectives == tuple(objectives)
    raw = yaml.safe_load(PARAMS.read_text())
    raw["search"]["objectives"] = ["error", "macs", "latency"]
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(raw, sort_keys=False))
    capsys.readouterr()
    assert cli_main(["validate", str(f)]) == 0
    assert "valid" in capsys.readouterr().out
    params = load_params(f)
    assert params.search.objectives == ("error", "macs", "latency")
    assert (params.latency.backend, params.latency.rounds, params.latency.validate_subnets) == ("torch", 5, 50)


@pytest.mark.parametrize(("key", "value", "expect"), [
    ("latency.backend", "tflite", "latency.backend = 'tflite': must be one of torch, onnxruntime"),
    ("latency.rounds", 0, "latency.rounds = 0: must be an integer >= 1"),
    ("latency.fit_subnets", 1, "latency.fit_subnets = 1: must be an integer >= 2"),
])
def test_bad_latency_key_is_one_line(key: str, value: object, expect: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert expect in _expect_one_line_error({key: value}, key)
    raw = yaml.safe_load(PARAMS.read_text())
    section, name = key.split(".")
    raw[section][name] = value
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(raw, sort_keys=False))
    capsys.readouterr()
    assert cli_main(["validate", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
