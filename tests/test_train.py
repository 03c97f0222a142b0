"""Super-net training: resume exactness, real learning, ENS-KD, allowed-set sampling, data parallelism."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import BASE_PARAMS, ROOT, SYNTHETIC, assert_same_tree, train_chain, write_params

from nat2.checkpoint import load_checkpoint
from nat2.config import load_params
from nat2.data import EvalSet, load_source, read_split
from nat2.errors import Nat2Error
from nat2.evaluate import evaluate_arch
from nat2.live import read_rows
from nat2.space import ElasticChoices, SearchSpace
from nat2.stages import prepare_data, train_supernet
from nat2.train.losses import ensemble_logits
from nat2.train.phase_run import build_width_net, load_phase_weights
from nat2.train.progressive import phase_teacher_targets

PY = sys.executable


def stage_cmd(params: Path, phase: str, out: Path, split: Path, partial: Path, init: Path | None = None) -> list[str]:
    cmd = ["-m", "nat2.stages.train_supernet", "--params", str(params), "--phase", phase,
           "--split", str(split), "--out", str(out), "--partial-root", str(partial)]
    if init is not None:
        cmd += ["--init", str(init), "--full", str(init)]
    return cmd


@pytest.fixture(scope="module")
def synthetic_full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A synthetic split and a `full`-phase checkpoint trained on it (shared by the tests below)."""
    d = tmp_path_factory.mktemp("synthetic")
    split, ckpts = train_chain(d, write_params(d / "params.yaml", SYNTHETIC), ["full"])
    return d, split, ckpts["full"]


def _wait_for(root: Path, pattern: str, predicate, timeout: float, proc: subprocess.Popen) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in root.glob(pattern):
            p = f / "progress.json"
            if p.is_file():
                try:
                    info = json.loads(p.read_text())
                except json.JSONDecodeError:
                    continue
                if predicate(info):
                    return info
        if proc.poll() is not None:
            raise AssertionError("the run finished before it could be killed")
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared in time")


def test_killed_phase_resumes_bitwise_identically(synthetic_full: tuple[Path, Path, Path]) -> None:
    d, split, full = synthetic_full
    params = write_params(d / "resume.yaml", {**SYNTHETIC, "train.checkpoint_every_steps": 1})
    ref, out = d / "ref" / "kernel.pt", d / "killed" / "kernel.pt"
    subprocess.run([PY, *stage_cmd(params, "kernel", ref, split, d / "pref", full)], check=True, cwd=ROOT,
                   capture_output=True)
    cmd = [PY, *stage_cmd(params, "kernel", out, split, d / "pkill", full)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info = _wait_for(d / "pkill", "kernel-*/w100", lambda i: i["epoch"] == 1 and i["batch"] >= 2, 240, proc)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not out.exists()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    assert "resuming at epoch 1" in result.stderr, (info, result.stderr[-2000:])
    assert hashlib.md5(ref.read_bytes()).hexdigest() == hashlib.md5(out.read_bytes()).hexdigest()
    assert "dvclive: resuming" in result.stderr  # its folder held the checkpoint's epoch: dvclive's resume=True
    assert_same_tree(ref.with_name("kernel.live"), out.with_name("kernel.live"))

    a, b = load_checkpoint(ref, "phase")["widths"]["w100"], load_checkpoint(out, "phase")["widths"]["w100"]
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k]["momentum_buffer"], sb[k]["momentum_buffer"]), k
    assert a["state"] == b["state"]
    assert torch.equal(a["torch_rng"], b["torch_rng"])
    assert a["validation"] == b["validation"]
    # the next batch either run would draw has the same resolution
    p = load_params(params)
    source = load_source(p.data, p.seed)
    from nat2.data import TrainLoader

    loader = TrainLoader(source, read_split(split), batch_size=p.train.batch_size,
                         resolutions=p.supernet.resolutions, augment=p.data.augment, seed=p.seed, iteration=1)
    nxt = a["state"]["epoch"], a["state"]["batch"]
    assert loader.resolution_schedule(nxt[0])[nxt[1]] == loader.resolution_schedule(b["state"]["epoch"])[
        b["state"]["batch"]]
    assert not list((d / "pkill").glob("kernel-*")), "the partial folder is removed after success"


def test_every_sampled_subnet_is_in_the_phase_set(synthetic_full: tuple[Path, Path, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    d, split, full = synthetic_full
    seen = []
    from nat2.supernet import SuperNet

    original = SuperNet.set_active

    def record(self: SuperNet, arch) -> None:
        if self.training:  # the student (the teacher is in eval mode)
            seen.append(arch)
        original(self, arch)

    monkeypatch.setattr(SuperNet, "set_active", record)
    overrides = {**SYNTHETIC, "train.lineage": {"kernel": "full", "exit_4": "kernel", "depth_2": "exit_4"},
                 "train.final": "depth_2",
                 "train.schedule.exit_4.epochs": 1, "train.schedule.depth_2.epochs": 1,
                 "train.schedule.depth_2.subnets_per_step": 3}
    params = write_params(d / "sampling.yaml", overrides)
    out = d / "sampling" / "exit_4.pt"
    assert train_supernet.main(stage_cmd(params, "exit_4", out, split, d / "ps", full)[2:]) != 0  # kernel first
    kernel = d / "sampling" / "kernel.pt"
    assert train_supernet.main(stage_cmd(params, "kernel", kernel, split, d / "ps", full)[2:]) == 0
    seen.clear()
    cmd = stage_cmd(params, "depth_2", d / "sampling" / "depth_2.pt", split, d / "ps", kernel)[2:]
    assert train_supernet.main(cmd) == 2  # its init must be the previous phase's checkpoint (exit_4)
    assert train_supernet.main(stage_cmd(params, "exit_4", out, split, d / "ps", kernel)[2:]) == 0
    p = load_params(params)
    space = SearchSpace.from_config(p.supernet)
    choices = ElasticChoices.from_phase(p.train.schedule.exit_4, space)
    assert len(seen) == 8 * 2  # 8 steps x 2 subnets per step
    assert all(choices.contains(a) for a in seen)
    assert {a.exit for a in seen} > {5}, "exits other than the last are sampled"
    kernel_only = ElasticChoices.from_phase(p.train.schedule.kernel, space)
    assert not all(kernel_only.contains(a) for a in seen)


def test_allowed_set_sampling_covers_exactly_the_set() -> None:
    p = load_params(BASE_PARAMS)
    space = SearchSpace.from_config(dataclasses.replace(p.supernet, variant="ee_dense_parallel"))
    rng = np.random.default_rng(0)
    for phase in ("kernel", "level_1", "exit_2", "depth_1", "expand_2"):
        cfg = getattr(p.train.schedule, phase)
        choices = ElasticChoices.from_phase(cfg, space)
        archs = [choices.sample(rng, space, 1.0, 28) for _ in range(300)]
        assert all(choices.contains(a) for a in archs)
        assert {a.exit for a in archs} == set(cfg.exits)
        ks = {a.kernel_sizes[i] for a in archs for _s, _j, i in a.active_layers() if a.branches[i] & 4}
        assert ks == set(cfg.kernel_sizes)
        levels = {bin(a.branches[i]).count("1") for a in archs for _s, _j, i in a.active_layers()}
        assert levels == set(cfg.levels)
        assert {d for a in archs for d in a.depths[: a.stages_run]} == set(cfg.depths)


def test_ens_kd_targets_are_the_weighted_exit_logits() -> None:
    p = load_params(BASE_PARAMS)
    space = SearchSpace.from_config(p.supernet)
    teacher = build_width_net(p.supernet, p.seed, space, 1.0, 10).eval()
    teacher.set_active(space.max_arch())
    x = torch.randn(4, 3, 28, 28)
    targets = phase_teacher_targets(teacher, True, p.train.exit_weights)(x)
    with torch.no_grad():
        outs = teacher.forward_all_exits(x)
    manual = sum(w * o for w, o in zip(p.train.exit_weights, outs, strict=True))
    torch.testing.assert_close(targets, torch.softmax(manual, 1))
    torch.testing.assert_close(ensemble_logits(outs, p.train.exit_weights), manual)
    assert len(outs) == 5


def test_bad_phase_invocations_fail_with_one_line(synthetic_full: tuple[Path, Path, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    d, split, full = synthetic_full
    params = d / "params.yaml"
    capsys.readouterr()
    assert train_supernet.main(stage_cmd(params, "depth_1", d / "x.pt", split, d / "p", full)[2:]) == 2
    assert "not in the train.lineage chain" in capsys.readouterr().err
    assert train_supernet.main(stage_cmd(params, "kernel", d / "x.pt", split, d / "p")[2:]) == 2
    assert "--init" in capsys.readouterr().err
    bad = d / "corrupt.pt"
    bad.write_bytes(b"\x00garbage")
    assert train_supernet.main(stage_cmd(params, "kernel", d / "x.pt", split, d / "p", bad)[2:]) == 2
    err = capsys.readouterr().err.strip()
    assert "corrupt" in err and len(err.splitlines()) == 1
    assert not (d / "x.pt").exists()
    with pytest.raises(Nat2Error, match="phase"):
        load_phase_weights(build_width_net(load_params(params).supernet, load_params(params).seed,
                                           SearchSpace.from_config(load_params(params).supernet), 1.0, 10),
                           full, "kernel")


def test_schedule_rules_fail_validation(tmp_path: Path) -> None:
    def bad(match: str, lineage: dict | None = None, final: str | None = None, **extra: object) -> None:
        overrides = dict(extra)
        if lineage is not None:
            overrides["train.lineage"] = lineage
            overrides["train.final"] = final or list(lineage)[-1]
        with pytest.raises(Nat2Error, match=match):
            write_params(tmp_path / "p.yaml", overrides)

    bad("full is the first phase", {"full": "kernel"}, "full")
    bad("level_1 needs a parallel", {"level_1": "full"})
    bad("exit_1 needs an early-exit", {"exit_1": "full"}, **{"supernet.variant": "se_dense"})
    bad(r"train\.schedule\.depth_1\.kernel_sizes.*previous phase kernel", {"kernel": "full", "depth_1": "kernel"},
        **{"train.schedule.depth_1.kernel_sizes": [5, 7]})
    bad("both continue from full", {"kernel": "full", "depth_1": "full"})
    bad("depth_1 not reachable", {"kernel": "full", "depth_1": "depth_2"}, "kernel")
    bad(r"train\.final.*last phase", {"kernel": "full", "depth_1": "kernel"}, "kernel")
    bad(r"train\.schedule\.full\.depths", **{"train.schedule.full.depths": [2, 4]})
    bad("unknown key", **{"train.schedule.kernel.epochz": 1})
    bad(r"train\.lineage", {"shrink": "full"})


@pytest.mark.slow
def test_training_really_learns_on_fashion_mnist(tmp_path: Path) -> None:
    if not Path("/usr/share/datasets/fashion-mnist").is_dir() and not (ROOT / "data/raw/FashionMNIST").is_dir():
        pytest.skip("Fashion-MNIST not installed")
    overrides = {"train.lineage": {"kernel": "full"}, "train.final": "kernel", "train.schedule.full.epochs": 2,
                 "train.schedule.kernel.epochs": 1, "train.val_subnets": 2, "train.checkpoint_every_steps": 0,
                 "train.checkpoint_minutes": 0.0}
    params = write_params(tmp_path / "p.yaml", overrides, base="params/ci.yaml")
    split = tmp_path / "split.parquet"
    assert prepare_data.main(["--params", str(params), "--out", str(split)]) == 0
    full, kernel = tmp_path / "full.pt", tmp_path / "kernel.pt"
    assert train_supernet.main(stage_cmd(params, "full", full, split, tmp_path / "p")[2:]) == 0
    assert train_supernet.main(stage_cmd(params, "kernel", kernel, split, tmp_path / "p", full)[2:]) == 0

    p = load_params(params)
    space = SearchSpace.from_config(p.supernet)
    source = load_source(p.data, p.seed)
    calib = EvalSet(source, read_split(split), "calib", augment=p.data.augment, seed=p.seed)
    val = EvalSet(source, read_split(split), "val")
    max_arch = space.max_arch()
    min_kernel = dataclasses.replace(max_arch, kernel_sizes=tuple(3 if k else 0 for k in max_arch.kernel_sizes))
    top1 = {}
    for name, ckpt in (("full", full), ("kernel", kernel)):
        net = build_width_net(p.supernet, p.seed, space, 1.0, source.num_classes)
        load_phase_weights(net, ckpt)
        net.to(memory_format=torch.channels_last)
        top1[name] = {a: evaluate_arch(net, arch, calib, val, calib_batch_size=100, eval_batch_size=250)
                      for a, arch in (("max", max_arch), ("min_kernel", min_kernel))}
    assert top1["full"]["max"] >= 60.0, top1
    assert top1["kernel"]["min_kernel"] >= top1["full"]["min_kernel"] + 5.0, top1
    rows = read_rows(tmp_path / "kernel.live" / "w100")  # dvclive: one step per epoch
    assert len(rows) == 1 and set(rows[0]) == {"epoch", "lr", "train_loss", "train_top1", "val_top1"}
    assert rows[0]["val_top1"] == pytest.approx(load_checkpoint(kernel, "phase")["widths"]["w100"]["validation"]
                                                ["mean_top1"])


@pytest.mark.slow
def test_data_parallel_equals_accumulated_half_batches(synthetic_full: tuple[Path, Path, Path]) -> None:
    d, _, full = synthetic_full
    common = {**SYNTHETIC, "runtime.threads": 1, "supernet.dropout": 0.0, "data.synthetic.train_images": 192,
              "train.schedule.kernel.epochs": 1}
    # the kernel phase's init is the synthetic `full` checkpoint; a split with 160 training images gives 5 steps
    single = write_params(d / "single.yaml", {**common, "train.micro_batches": 2})
    ddp = write_params(d / "ddp.yaml", {**common, "train.micro_batches": 1})
    split5 = d / "split5.parquet"
    assert prepare_data.main(["--params", str(single), "--out", str(split5)]) == 0
    a, b = d / "single" / "kernel.pt", d / "ddp" / "kernel.pt"
    assert train_supernet.main(stage_cmd(single, "kernel", a, split5, d / "pa", full)[2:]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([PY, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                    *stage_cmd(ddp, "kernel", b, split5, d / "pb", full)], check=True, cwd=ROOT, env=env,
                   capture_output=True)
    ca, cb = load_checkpoint(a, "phase")["widths"]["w100"], load_checkpoint(b, "phase")["widths"]["w100"]
    assert ca["state"]["step"] == cb["state"]["step"] == 5
    names = dict(build_width_net(load_params(single).supernet, load_params(single).seed,
                                 SearchSpace.from_config(load_params(single).supernet), 1.0, 10).named_parameters())
    for k in names:
        torch.testing.assert_close(ca["model"][k], cb["model"][k], rtol=1e-5, atol=1e-5, msg=k)
    start = load_checkpoint(full, "phase")["widths"]["w100"]["model"]
    assert any(not torch.equal(ca["model"][k], start[k]) for k in names)


@pytest.mark.slow
def test_transfer_warmup_chain_from_ofa_weights(tmp_path: Path) -> None:
    """init: ofa:<path with {w}> for two widths, full -> warmup, KD from the widest max net."""
    ofa_nets = pytest.importorskip("ofa.imagenet_classification.elastic_nn.networks")
    torch.manual_seed(0)  # the ofa package initialises from the global RNG
    for w in (1.0, 1.2):
        ofa = ofa_nets.OFAMobileNetV3(n_classes=1000, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                                      depth_list=[2, 3, 4], width_mult=w)
        torch.save({"state_dict": ofa.state_dict()}, tmp_path / f"ofa_w{w:.1f}.pth")
    overrides = {**SYNTHETIC, "supernet.width_mults": [1.0, 1.2], "supernet.variant": "ee_base",
                 "supernet.init": f"ofa:{tmp_path}/ofa_w{{w}}.pth", "train.lineage": {"warmup": "full"},
                 "train.final": "warmup", "train.teacher": "widest", "train.schedule.warmup.epochs": 1,
                 "data.synthetic.train_images": 96}
    params = write_params(tmp_path / "p.yaml", overrides)
    split = tmp_path / "split.parquet"
    assert prepare_data.main(["--params", str(params), "--out", str(split)]) == 0
    full, warm = tmp_path / "full.pt", tmp_path / "warmup.pt"
    assert train_supernet.main(stage_cmd(params, "full", full, split, tmp_path / "p")[2:]) == 0
    assert train_supernet.main(stage_cmd(params, "warmup", warm, split, tmp_path / "p", full)[2:]) == 0
    data = load_checkpoint(warm, "phase")
    assert set(data["widths"]) == {"w100", "w120"}
    assert [len(read_rows(tmp_path / "warmup.live" / w)) for w in ("w100", "w120")] == [1, 1]  # an epoch a width

    from nat2.checkpoint import load_supernet
    from nat2.stages import assemble_supernet

    out = tmp_path / "supernet.pt"
    assert assemble_supernet.main(["--params", str(params), "--phase-ckpt", str(warm), "--out", str(out)]) == 0
    p = load_params(params)
    nets, meta = load_supernet(out, SearchSpace.from_config(p.supernet), num_classes=10)
    assert meta["content_hash"] == nets.content_hash() and meta["phases"] == ["full", "warmup"]
    assert assemble_supernet.main(["--params", str(params), "--phase-ckpt", str(full), "--out",
                                   str(tmp_path / "x.pt")]) == 2  # not train.final
    assert not (tmp_path / "x.pt").exists()


def test_init_from_ofa_loads_the_body_and_keeps_a_fresh_classifier(tmp_path: Path) -> None:
    from nat2.train.phase_run import _init_weights

    ofa_nets = pytest.importorskip("ofa.imagenet_classification.elastic_nn.networks")
    torch.manual_seed(0)
    ofa = ofa_nets.OFAMobileNetV3(n_classes=1000, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                                  depth_list=[2, 3, 4], width_mult=1.0)
    torch.save(ofa.state_dict(), tmp_path / "ofa_w1.0.pth")
    p = load_params(BASE_PARAMS)
    net = build_width_net(p.supernet, p.seed, SearchSpace.from_config(p.supernet), 1.0, 10)
    fresh = net.heads["5"].classifier.weight.clone()
    _init_weights(net, f"ofa:{tmp_path}/ofa_w{{w}}.pth")
    torch.testing.assert_close(net.stages[4].layers[3].mbconv.dw_conv.weight,
                               ofa.state_dict()["blocks.20.conv.depth_conv.conv.conv.weight"])
    assert torch.equal(net.heads["5"].classifier.weight, fresh)


def test_aep_weights_follow_the_four_orderings() -> None:
    from nat2.train.losses import aep_weights

    assert aep_weights(3, "asc") == ((0.1667, 0.3333, 0.5), (0.1667, 0.3333, 0.5))
    assert aep_weights(3, "desc") == ((0.5, 0.3333, 0.1667), (0.5, 0.3333, 0.1667))
    assert aep_weights(3, "mix") == ((0.5, 0.3333, 0.1667), (0.1667, 0.3333, 0.5))
    assert aep_weights(4, "unif") == ((0.25,) * 4, (0.25,) * 4)
    assert aep_weights(5, "asc")[0] == (0.0667, 0.1333, 0.2, 0.2667, 0.3333)
    assert aep_weights(1, "mix") == ((1.0,), (1.0,))
    with pytest.raises(ValueError, match="ordering"):
        aep_weights(3, "ASC")


def test_each_torchrun_rank_gets_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """LOCAL_RANK picks the GPU (every rank took cuda:0 before); NCCL is bound to it; CPU stays gloo."""
    import torch.distributed as tdist

    from nat2.errors import Nat2Error
    from nat2.runtime import select_device
    from nat2.train import distributed

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert select_device("auto", {"LOCAL_RANK": "2"}) == torch.device("cuda", 2)
    assert select_device("cuda", {}) == torch.device("cuda", 0)
    assert select_device("cpu", {"LOCAL_RANK": "3"}) == torch.device("cpu")
    with pytest.raises(Nat2Error, match="LOCAL_RANK = 4 but this node has 4 GPU"):
        select_device("auto", {"LOCAL_RANK": "4"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto", {"LOCAL_RANK": "1"}) == torch.device("cpu")
    with pytest.raises(Nat2Error, match="no CUDA device"):
        select_device("cuda", {})

    calls: list[tuple] = []
    monkeypatch.setattr(tdist, "is_initialized", lambda: False)
    monkeypatch.setattr(tdist, "init_process_group", lambda backend, **kw: calls.append((backend, kw)))
    monkeypatch.setattr(tdist, "get_rank", lambda: 1)
    monkeypatch.setattr(tdist, "get_world_size", lambda: 2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    info = distributed.init_distributed(torch.device("cuda", 1))
    assert (info.rank, info.world_size) == (1, 2)
    assert calls[-1] == ("nccl", {"device_id": torch.device("cuda", 1)})
    distributed.init_distributed(torch.device("cpu"))
    assert calls[-1] == ("gloo", {})
