"""Two-step fine-tuning of extracted subnets: it really trains, uses validation (never test) to decide, resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, train_chain, write_params

import nat2
from nat2 import archive as arc
from nat2.config import load_params
from nat2.loop import build_evaluator
from nat2.space import SearchSpace
from nat2.stages import assemble_supernet, extract, finetune


@pytest.mark.slow
def test_finetuning_gains_test_accuracy_on_fashion_mnist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/usr/share/datasets/fashion-mnist").is_dir() and not (ROOT / "data/raw/FashionMNIST").is_dir():
        pytest.skip("Fashion-MNIST not installed")
    overrides = {"train.lineage": {}, "train.final": "full", "train.schedule.full.epochs": 1,
                 "train.val_subnets": 2, "train.checkpoint_every_steps": 0, "train.checkpoint_minutes": 0.0,
                 "postprocess.slots": [0], "postprocess.finetune.epochs": 4, "postprocess.finetune.patience": 2}
    params_file = write_params(tmp_path / "p.yaml", overrides, base="params/ci.yaml")
    split, ckpts = train_chain(tmp_path, params_file, ["full"])
    sn = tmp_path / "supernet.pt"
    assert assemble_supernet.main(["--params", str(params_file), "--phase-ckpt", str(ckpts["full"]), "--out",
                                   str(sn)]) == 0
    params = load_params(params_file)
    space = SearchSpace.from_config(params.supernet)
    ev = build_evaluator(params, sn, split, cache_dir=None)
    G = np.stack([space.max_genome(), space.min_genome(), *space.sample(np.random.default_rng(0), 3, "arch_space")])
    archive = tmp_path / "archive.parquet"
    arc.write_archive(archive, arc.make_archive(ev.evaluate(G, iteration=0, origin="init", seed=0)))
    assert extract.main(["--params", str(params_file), "--archive", str(archive), "--supernet", str(sn),
                         "--split", str(split), "--out", str(tmp_path / "extract")]) == 0
    out = tmp_path / "ft" / "slot_0"
    args = ["--params", str(params_file), "--slot", str(tmp_path / "extract" / "slot_0"), "--split", str(split),
            "--out", str(out), "--partial-root", str(tmp_path / "partial")]
    assert finetune.main(args) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["test_top1_after"] >= card["test_top1_before"] + 3.0, card
    assert 1 <= card["finetune_epochs"] <= 4
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,epoch,lr,train_loss,val_loss,val_top1"
    assert sum(r.startswith("step2,") for r in rows) == card["finetune_epochs"]
    module = nat2.load_subnet(out)
    assert not module.training
    # a folder that is not a subnet: one line, exit 2
    capsys.readouterr()
    assert finetune.main([*args[:3], str(tmp_path), *args[4:-3], str(tmp_path / "x"), *args[-2:]]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
