"""Two-step fine-tuning of extracted subnets: it really trains, uses validation (never test) to decide, resumes;
AEP multi-exit nets; exports that match the eager module; model cards equal to independent counts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import BASE_PARAMS, ROOT, SYNTHETIC, assert_same_tree, die_after_first_save, train_chain, write_params
from test_supernet import hook_count

import nat2
from nat2 import archive as arc
from nat2.config import load_params
from nat2.context import RunContext, build_evaluator
from nat2.costs import CostModel
from nat2.export import run_export
from nat2.live import read_rows
from nat2.space import Arch, SearchSpace
from nat2.stages import assemble_supernet, extract, finetune
from nat2.supernet import MultiExitNet


def _extracted(tmp_path: Path, overrides: dict, base: str | Path, phases: list[str]) -> tuple[Path, Path, Path]:
    """Train ``phases``, archive a few archs (max, min, sampled), extract the slots: (params, split, supernet)."""
    params_file = write_params(tmp_path / "p.yaml", overrides, base=base)
    split, ckpts = train_chain(tmp_path, params_file, phases)
    sn = tmp_path / "supernet.pt"
    assert assemble_supernet.main(["--params", str(params_file), "--phase-ckpt", str(ckpts[phases[-1]]), "--out",
                                   str(sn)]) == 0
    params = load_params(params_file)
    space = SearchSpace.from_config(params.supernet)
    ev = build_evaluator(RunContext.from_params(params, split), space, sn, cache_dir=None)
    G = np.stack([space.max_genome(), space.min_genome(), *space.sample(np.random.default_rng(0), 3, "arch_space")])
    archive = tmp_path / "archive.parquet"
    arc.write_archive(archive, arc.make_archive(ev.evaluate(G, iteration=0, origin="init", seed=0)))
    assert extract.main(["--params", str(params_file), "--archive", str(archive), "--supernet", str(sn),
                         "--split", str(split), "--out", str(tmp_path / "extract")]) == 0
    return params_file, split, sn


def _finetune_args(tmp_path: Path, params_file: Path, split: Path, sn: Path, out: Path, slot: int = 0) -> list[str]:
    return ["--params", str(params_file), "--slot", str(tmp_path / "extract" / f"slot_{slot}"), "--supernet",
            str(sn), "--split", str(split), "--out", str(out), "--partial-root", str(tmp_path / "partial")]


def _exported_program_count(path: Path) -> tuple[int, int]:
    """(params, MACs) read off a saved ``torch.export`` program: parameter tensors, and conv/linear node shapes."""
    program = torch.export.load(path)
    state = program.state_dict
    params = sum(state[name].numel() for name in program.graph_signature.parameters)
    macs = 0
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        name = str(node.target)
        if name.startswith("aten.conv2d"):
            w = node.args[1].meta["val"]
            out = node.meta["val"]
            macs += out[0].numel() * w.shape[1] * w.shape[2] * w.shape[3]
        elif name.startswith("aten.linear"):
            w = node.args[1].meta["val"]
            macs += w.shape[0] * w.shape[1]
    return params, macs


def _check_exports(out: Path, card: dict) -> None:
    module = nat2.load_subnet(out)
    r = card["resolution"]
    x = torch.randn(7, 3, r, r, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        eager = module(x).numpy()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(("model", "."))) == ["model.onnx", "model.pt2"]
    for name in ("model.onnx", "model.pt2"):
        got = run_export(out / name, x)
        assert np.abs(got - eager).max() <= 1e-4 * max(1.0, np.abs(eager).max()), name
    assert card["export"]["onnx"]["max_error"] <= 1e-4 and card["export"]["pt2"]["max_error"] <= 1e-4
    assert _exported_program_count(out / "model.pt2") == (card["params"], card["macs"])
    assert hook_count(module, r) == (card["params"], card["macs"])


@pytest.mark.slow
def test_finetuning_gains_test_accuracy_on_fashion_mnist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/usr/share/datasets/fashion-mnist").is_dir() and not (ROOT / "data/raw/FashionMNIST").is_dir():
        pytest.skip("Fashion-MNIST not installed")
    overrides = {"train.lineage": {}, "train.final": "full", "train.schedule.full.epochs": 1,
                 "train.val_subnets": 2, "train.checkpoint_every_steps": 0, "train.checkpoint_minutes": 0.0,
                 "postprocess.slots": [0], "postprocess.finetune.epochs": 4, "postprocess.finetune.patience": 2,
                 "postprocess.finetune.method": "standard"}
    params_file, split, sn = _extracted(tmp_path, overrides, "params/ci.yaml", ["full"])
    out = tmp_path / "ft" / "slot_0"
    args = _finetune_args(tmp_path, params_file, split, sn, out)
    assert finetune.main(args) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["test_top1_after"] >= card["test_top1_before"] + 3.0, card
    assert 1 <= card["finetune_epochs"] <= 4
    step1, step2 = read_rows(out / "live" / "step1"), read_rows(out / "live" / "step2")  # dvclive folders
    assert set(step1[0]) == {"epoch", "lr", "train_loss", "val_loss", "val_top1"}
    assert len(step2) == card["finetune_epochs"] and set(step2[0]) == {"epoch", "lr", "train_loss"}
    # the validation figure is step 1's best epoch, the one whose count step 2 retrains
    assert card["val_top1_finetuned"] == pytest.approx(max(r["val_top1"] for r in step1))
    costs = CostModel(SearchSpace.from_config(load_params(params_file).supernet), 10)(np.asarray(card["genome"]))
    assert (card["params"], card["macs"]) == (int(costs["params"]), int(costs["macs"]))
    _check_exports(out, card)
    # a folder that is not a subnet: one line, exit 2, nothing written
    capsys.readouterr()
    bad = list(args)
    bad[3], bad[9] = str(tmp_path), str(tmp_path / "x")
    assert finetune.main(bad) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


AEP = {**SYNTHETIC, "postprocess.slots": [0, 1], "postprocess.finetune.epochs": 2,
       "postprocess.finetune.patience": 2, "postprocess.finetune.method": "aep",
       "postprocess.finetune.ordering": "mix", "postprocess.finetune.optimizer": "adamw",
       "postprocess.finetune.lr": 1e-3, "postprocess.finetune.batch_size": 32}


def test_aep_multi_exit_finetuning_resumes_exports_and_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nat2.export as ex
    import nat2.finetune as ft

    params_file, split, sn = _extracted(tmp_path, AEP, BASE_PARAMS, ["full", "kernel"])

    # killed after the last epoch of step 2 (during the export): every epoch ran uninterrupted, and the rerun
    # trains nothing, only exports
    real_export, real_save = ex.export_slot, ft.save_checkpoint

    def dying_export(*args: object, **kwargs: object) -> None:
        monkeypatch.setattr(ex, "export_slot", real_export)
        raise KeyboardInterrupt

    monkeypatch.setattr(ex, "export_slot", dying_export)
    out = tmp_path / "ft" / "slot_0"
    with pytest.raises(KeyboardInterrupt):
        finetune.main(_finetune_args(tmp_path, params_file, split, sn, out))
    assert not out.exists()
    saves: list[int] = []
    monkeypatch.setattr(ft, "save_checkpoint", lambda *a, **k: saves.append(1) or real_save(*a, **k))
    assert finetune.main(_finetune_args(tmp_path, params_file, split, sn, out)) == 0
    assert saves == []  # resumed after the last epoch of both steps

    card = json.loads((out / "card.json").read_text())
    nd = Arch.from_json(card["arch"]).stages_run
    assert card["exits"] == "all" and card["loss_weights"] == [round(i / (nd * (nd + 1) / 2), 4)
                                                                for i in range(nd, 0, -1)]
    assert card["output_weights"] == card["loss_weights"][::-1]
    module = nat2.load_subnet(out)
    assert isinstance(module, MultiExitNet) and len(module.heads) == nd
    space = SearchSpace.from_config(load_params(params_file).supernet)
    model = CostModel(space, 10)
    every, single = model(np.asarray(card["genome"]), "all"), model(np.asarray(card["genome"]))
    assert (card["params"], card["macs"]) == (int(every["params"]), int(every["macs"]))
    assert (card["searched_params"], card["searched_macs"]) == (int(single["params"]), int(single["macs"]))
    assert card["params"] > card["searched_params"] or nd == 1
    _check_exports(out, card)

    # killed after step 1's first epoch: the rerun resumes and ends with the same bytes as the run above
    calls = die_after_first_save(monkeypatch, ft, real_save)
    resumed = tmp_path / "ft2" / "slot_0"
    with pytest.raises(KeyboardInterrupt):
        finetune.main(_finetune_args(tmp_path, params_file, split, sn, resumed))
    assert not resumed.exists() and len(list((tmp_path / "partial").glob("slot_0-*/step1.pt"))) == 1
    assert finetune.main(_finetune_args(tmp_path, params_file, split, sn, resumed)) == 0
    assert len(calls) > 1
    assert (resumed / "weights.pt").read_bytes() == (out / "weights.pt").read_bytes()
    assert_same_tree(out / "live", resumed / "live")  # dvclive, rebuilt in step with the checkpoint
    assert not list((tmp_path / "partial").glob("slot_0-*"))


def test_aep_needs_an_early_exit_variant(tmp_path: Path) -> None:
    from nat2.errors import ConfigError

    with pytest.raises(ConfigError, match=r"postprocess\.finetune\.method = 'aep': needs an early-exit variant"):
        write_params(tmp_path / "p.yaml", {"supernet.variant": "se_dense", "postprocess.finetune.method": "aep"})
