"""Helpers shared by tests: params files with overrides, and small runs of the training stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from nat2.config import load_params, read_params_dict

ROOT = Path(__file__).resolve().parents[1]
#: the fixed params every test builds on (never the working tree's params.yaml, which users edit)
BASE_PARAMS = Path(__file__).resolve().parent / "data" / "params_base.yaml"


def params_dict(base: str | Path = BASE_PARAMS, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    raw = read_params_dict(ROOT / base)  # a preset is merged onto the file it extends
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return json.loads(json.dumps(raw))


def write_params(path: Path, overrides: dict[str, Any] | None = None, base: str | Path = BASE_PARAMS) -> Path:
    """Write a validated params file: ``base`` with dotted-key overrides."""
    path.write_text(yaml.safe_dump(params_dict(base, overrides), sort_keys=False))
    load_params(path)  # fail early, with the one-line message, if the overrides are invalid
    return path


#: a tiny synthetic run: 256 training images of 32 px, 8 steps of 32 per epoch
SYNTHETIC = {
    "data.dataset": "synthetic",
    "data.val_size": 32,
    "data.train_size": 0,
    "data.test_size": 0,
    "data.calib_size": 64,
    "data.calib_batch_size": 64,
    "data.eval_batch_size": 64,
    "data.synthetic.train_images": 288,
    "data.synthetic.test_images": 64,
    "data.synthetic.image_size": 32,
    "supernet.resolutions": [24, 32],
    "train.batch_size": 32,
    "search.adapt.batch_size": 32,  # adaptation has its own; the same batches as train.batch_size
    "train.lineage": {"kernel": "full"},
    "train.final": "kernel",
    "train.val_subnets": 2,
    "train.checkpoint_every_steps": 0,
    "train.checkpoint_minutes": 0.0,
    "train.schedule.full.epochs": 1,
    "train.schedule.kernel.epochs": 2,
    "train.schedule.kernel.subnets_per_step": 2,
}


def train_chain(d: Path, params: Path, phases: list[str]) -> tuple[Path, dict[str, Path]]:
    """prepare_data, then the training stage for each phase in order (each continuing the previous one)."""
    from nat2.stages import prepare_data, train_supernet

    split = d / "split.parquet"
    assert prepare_data.main(["--params", str(params), "--out", str(split)]) == 0
    ckpts: dict[str, Path] = {}
    common = ["--params", str(params), "--split", str(split), "--partial-root", str(d / "partial")]
    for phase in phases:
        extra = [] if not ckpts else ["--init", str(ckpts[list(ckpts)[-1]]), "--full", str(ckpts[phases[0]])]
        ckpts[phase] = d / f"{phase}.pt"
        assert train_supernet.main([*common, "--phase", phase, "--out", str(ckpts[phase]), *extra]) == 0
    return split, ckpts


def assert_same_tree(a: Path, b: Path) -> None:
    """Two folders hold the same files with the same bytes (e.g. a resumed run's dvclive folder and a straight one)."""
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()), (a, b)
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def die_after_first_save(monkeypatch: Any, module: Any, real: Any) -> list[int]:
    """Make ``module.save_checkpoint`` (wrapping ``real``) raise KeyboardInterrupt right after its first save: a
    kill just after a checkpoint. Returns the list the calls are counted in."""
    calls: list[int] = []

    def dying_save(*args: object, **kwargs: object) -> None:
        real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(module, "save_checkpoint", dying_save)
    return calls
