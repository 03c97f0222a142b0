"""Baselines: counted as the cost model counts, seeded, trained with the slots' recipe, resumable, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SYNTHETIC, die_after_first_save, write_params
from test_supernet import hook_count

from nat2.baseline import PlainCNN, build_baseline, count_costs, read_baseline
from nat2.costs import CostModel
from nat2.errors import Nat2Error
from nat2.live import read_rows
from nat2.space import SearchSpace, Variant
from nat2.stages import baseline, prepare_data
from nat2.supernet import SuperNetSet


@pytest.mark.parametrize("stem_stride", [1, 2])
def test_count_costs_equals_the_cost_model_on_subnets(stem_stride: int) -> None:
    # the baselines' counts and the slots' counts are one convention: checked on extracted subnets
    space = SearchSpace(Variant.from_name("ee_dense", stem_stride), (24, 32), (1.0,))
    nets = SuperNetSet(space, num_classes=10)
    model = CostModel(space, 10)
    genomes = np.concatenate([space.sample(np.random.default_rng(0), 6, "uniform"), space.max_genome()[None]])
    costs = model(genomes)
    for genome, params, macs in zip(genomes, costs["params"], costs["macs"], strict=True):
        arch = space.decode(genome)
        assert count_costs(nets.extract(arch), arch.resolution) == {"params": params, "macs": macs}


def test_baseline_models_by_hand_and_seeded() -> None:
    cnn = build_baseline("cnn", 10, torch.Generator().manual_seed(0))
    assert isinstance(cnn, PlainCNN)
    # convs 3->32 @28, 32->64 @14, 64->128 @7 (3x3, no bias), BN (2 per channel), linear 128->10
    params = 3 * 32 * 9 + 32 * 64 * 9 + 64 * 128 * 9 + 2 * (32 + 64 + 128) + 128 * 10 + 10
    macs = 3 * 32 * 9 * 28**2 + 32 * 64 * 9 * 14**2 + 64 * 128 * 9 * 7**2 + 128 * 10
    assert count_costs(cnn, 28) == {"params": params, "macs": macs} == dict(zip(("params", "macs"),
                                                                              hook_count(cnn, 28), strict=True))
    mb = build_baseline("mobilenet_v3_small", 10, torch.Generator().manual_seed(0))
    assert count_costs(mb, 32)["params"] == 1_528_106  # torchvision's, with a 10-class classifier
    again = build_baseline("mobilenet_v3_small", 10, torch.Generator().manual_seed(0))
    other = build_baseline("mobilenet_v3_small", 10, torch.Generator().manual_seed(1))
    state, same, diff = mb.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(state[k], same[k]) for k in state)
    assert not all(torch.equal(state[k], diff[k]) for k in state)
    before = torch.get_rng_state()
    build_baseline("cnn", 10, torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is left alone
    with pytest.raises(Nat2Error, match="unknown baseline 'resnet'"):
        build_baseline("resnet", 10, torch.Generator())


def _args(params: Path, split: Path, out: Path, partial: Path, model: str = "cnn") -> list[str]:
    return ["--params", str(params), "--model", model, "--split", str(split), "--out", str(out),
            "--partial-root", str(partial)]


def test_baseline_stage_trains_with_the_slots_recipe_and_resumes(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import nat2.finetune as ft

    params = write_params(tmp_path / "p.yaml", {**SYNTHETIC, "postprocess.finetune.epochs": 3,
                                                 "postprocess.finetune.patience": 3, "baseline.models": ["cnn"],
                                                 "baseline.resolution": 0, "postprocess.finetune.lr": 0.05})
    split = tmp_path / "split.parquet"
    assert prepare_data.main(["--params", str(params), "--out", str(split)]) == 0
    out = tmp_path / "baseline" / "cnn"
    assert baseline.main(_args(params, split, out, tmp_path / "partial")) == 0
    card = read_baseline(out)
    assert card["resolution"] == 32  # 0: the largest of supernet.resolutions (24, 28, 32)
    assert card["finetune"]["epochs"] == 3 and 1 <= card["finetune_epochs"] <= 3
    step1, step2 = read_rows(out / "live" / "step1"), read_rows(out / "live" / "step2")
    assert len(step1) == 3 and len(step2) == card["finetune_epochs"]
    assert card["val_top1_finetuned"] == pytest.approx(max(r["val_top1"] for r in step1))
    assert step1[-1]["train_loss"] < step1[0]["train_loss"]  # it trains
    module = PlainCNN(10)
    module.load_state_dict(torch.load(out / "weights.pt", weights_only=True))
    assert count_costs(module, 32) == {"params": card["params"], "macs": card["macs"]}
    assert not list((tmp_path / "partial").iterdir())  # checkpoints cleaned up

    # killed after step 1's first epoch: the rerun resumes and writes the same weights
    calls = die_after_first_save(monkeypatch, ft, ft.save_checkpoint)
    resumed = tmp_path / "resumed" / "cnn"
    with pytest.raises(KeyboardInterrupt):
        baseline.main(_args(params, split, resumed, tmp_path / "partial"))
    assert not resumed.exists()
    assert baseline.main(_args(params, split, resumed, tmp_path / "partial")) == 0
    assert len(calls) > 1
    assert (resumed / "weights.pt").read_bytes() == (out / "weights.pt").read_bytes()
    assert json.loads((resumed / "card.json").read_text()) == json.loads((out / "card.json").read_text())


def test_baseline_bad_inputs_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nat2.errors import ConfigError

    with pytest.raises(ConfigError, match=r"baseline\.models"):
        write_params(tmp_path / "p.yaml", {"baseline.models": ["resnet50"]})
    with pytest.raises(ConfigError, match=r"baseline\.models"):
        write_params(tmp_path / "p.yaml", {"baseline.models": []})
    params = write_params(tmp_path / "p.yaml", SYNTHETIC)
    capsys.readouterr()
    assert baseline.main(_args(params, tmp_path / "missing.parquet", tmp_path / "o", tmp_path / "partial")) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    with pytest.raises(Nat2Error, match="not a baseline card"):
        read_baseline(tmp_path)
    folder = tmp_path / "cnn"
    folder.mkdir()
    card = {"baseline": "cnn", "params": 1, "macs": 2, "test_top1": 80.0, "val_top1_finetuned": 81.0,
            "finetune_epochs": 2, "resolution": 28}
    (folder / "card.json").write_text(json.dumps(card))
    assert read_baseline(folder) == card
    for bad in ({**card, "baseline": "mobilenet_v3_small"}, {**card, "macs": "many"},
                {k: v for k, v in card.items() if k != "finetune_epochs"}):
        (folder / "card.json").write_text(json.dumps(bad))
        with pytest.raises(Nat2Error, match="rerun the baseline stage"):
            read_baseline(folder)
    # a model params.yaml does not list is refused in one line
    capsys.readouterr()
    split = tmp_path / "split.parquet"
    assert prepare_data.main(["--params", str(params), "--out", str(split)]) == 0
    assert baseline.main(_args(params, split, tmp_path / "o", tmp_path / "partial", "resnet50")) == 2
    assert "not in baseline.models" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_choose_slots_puts_the_accurate_members_first() -> None:
    from nat2.selection import choose_slots, high_tradeoff

    rng = np.random.default_rng(0)
    top1 = rng.uniform(70, 90, 40)
    params = rng.integers(50_000, 2_000_000, 40)
    macs = params * 3
    F = np.stack([1 - top1 / 100, macs], axis=1)
    idx, why = choose_slots(F, top1, params, 4)
    assert why == ["tradeoff"] * 4 and list(idx) == list(high_tradeoff(F, 4))
    idx, why = choose_slots(F, top1, params, 4, accurate=2, max_params=500_000)
    fits = np.flatnonzero(params <= 500_000)
    best_two = fits[np.argsort(-top1[fits])][:2]
    assert list(idx[:2]) == list(best_two) and why == ["accurate", "accurate", "tradeoff", "tradeoff"]
    assert len(set(idx)) == 4 and all(i not in best_two for i in idx[2:])
    idx, why = choose_slots(F, top1, params, 2, accurate=1, max_params=10)  # nothing fits: the smallest stands in
    assert idx[0] == int(np.argmin(params)) and why[0] == "accurate"
    idx, _ = choose_slots(F, top1, params, 3, accurate=1)  # no cap: the most accurate of all
    assert idx[0] == int(np.argmax(top1))
