"""Super-net correctness: exact extraction, OFA parity, BN recalibration, channel sorting, checkpoint import."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nat2.config import VARIANTS
from nat2.errors import Nat2Error
from nat2.space import SearchSpace, Variant
from nat2.supernet import SuperNet, SuperNetSet, load_ofa_state_dict, recalibrate_bn, recalibrated_bn
from nat2.supernet.compat import ofa_key

RESOLUTIONS = (24, 28, 32)
TOL = {"rtol": 1e-5, "atol": 1e-5}


@torch.no_grad()
def randomise(net: torch.nn.Module, seed: int, gamma: float = 1.0) -> None:
    """Non-trivial BN statistics/affines and kernel-transform matrices (fresh ones are identity / zero / one).

    ``gamma`` (BN scale) < 1 keeps the summed branches of parallel+dense nets at realistic magnitudes: with
    gamma 1 and random statistics they grow to ~1e3 and float32 noise alone exceeds the 1e-5 tolerance.
    """
    g = torch.Generator().manual_seed(seed)
    for name, t in net.state_dict().items():
        if name.endswith("running_var"):
            t.copy_(torch.rand(t.shape, generator=g) * 1.5 + 0.5)
        elif name.endswith("running_mean"):
            t.copy_(torch.randn(t.shape, generator=g) * 0.1)
        elif name.endswith("_matrix"):
            t.add_(torch.randn(t.shape, generator=g) * 0.05)
        elif ("bn." in name or "_bn." in name) and name.endswith(("weight", "bias")):
            base = gamma if name.endswith("weight") else 0.0
            t.copy_(base + torch.randn(t.shape, generator=g) * 0.1)


def build(variant: str, widths: tuple[float, ...] = (1.0, 1.2), seed: int = 0) -> tuple[SearchSpace, SuperNetSet]:
    space = SearchSpace(Variant.from_name(variant), RESOLUTIONS, widths)
    nets = SuperNetSet(space, num_classes=10, generator=torch.Generator().manual_seed(seed))
    randomise(nets, seed, gamma=0.5 if space.variant.parallel else 1.0)
    return space, nets.eval()


@pytest.mark.parametrize("variant", VARIANTS)
def test_extracted_subnet_equals_active_supernet(variant: str) -> None:
    space, nets = build(variant)
    # parallel + dense branch sums reach magnitudes where float32 rounding of two equally valid summation
    # schedules already differs by ~1e-5 relative; float64 checks the same equality without that noise
    dtype = torch.float64 if space.variant.parallel else torch.float32
    nets.to(dtype)
    rng = np.random.default_rng(1)
    genomes = np.concatenate([space.sample(rng, 48, "uniform"), space.min_genome()[None], space.max_genome()[None]])
    x_by_r = {r: torch.randn(2, 3, r, r, generator=torch.Generator().manual_seed(r), dtype=dtype)
              for r in RESOLUTIONS}
    for genome in genomes:
        arch = space.decode(genome)
        net = nets.net(arch)
        net.set_active(arch)
        x = x_by_r[arch.resolution]
        with torch.no_grad():
            sub = net.extract(arch).eval()
            assert not any("Dynamic" in type(m).__name__ for m in sub.modules())
            torch.testing.assert_close(sub(x), net(x), **TOL)


def test_channels_last_gives_the_same_outputs() -> None:
    space, nets = build("ee_dense", (1.0,))
    arch = space.decode(space.sample(np.random.default_rng(3), 1, "arch_space")[0])
    net = nets.net(arch)
    net.set_active(arch)
    x = torch.randn(4, 3, arch.resolution, arch.resolution)
    with torch.no_grad():
        ref = net(x)
        net.to(memory_format=torch.channels_last)
        out = net(x.contiguous(memory_format=torch.channels_last))
        sub = net.extract(arch).eval()
        out_sub = sub(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, **TOL)
    torch.testing.assert_close(out_sub, ref, **TOL)


@pytest.mark.parametrize("width", [1.0, 1.2])
def test_base_supernet_matches_the_ofa_package(width: float) -> None:
    ofa_nets = pytest.importorskip("ofa.imagenet_classification.elastic_nn.networks")
    torch.manual_seed(0)  # the ofa package initialises from the global RNG; tests may touch it, nat2 never does
    ofa = ofa_nets.OFAMobileNetV3(n_classes=10, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                                  depth_list=[2, 3, 4], width_mult=width)
    randomise(ofa, 7)
    space = SearchSpace(Variant.from_name("se_base"), (24, 32), (width,))
    net = SuperNet(space.variant, width, 10)
    report = load_ofa_state_dict(net, {"state_dict": ofa.state_dict()})
    assert report.loaded == len(net.state_dict()) and not report.initialised
    ofa.eval()
    net.eval()
    rng = np.random.default_rng(5)
    checked = set()
    for genome in space.sample(rng, 24, "uniform"):
        arch = space.decode(genome)
        d = arch.to_ofa_dict()
        ofa.set_active_subnet(ks=d["ks"], e=d["e"], d=d["d"])
        net.set_active(arch)
        x = torch.randn(3, 3, arch.resolution, arch.resolution)
        with torch.no_grad():
            torch.testing.assert_close(net(x), ofa(x), **TOL)
        checked.add(arch.resolution)
    assert checked == {24, 32}


def test_ofa_import_into_early_exit_variant_reports_new_exits() -> None:
    ofa_nets = pytest.importorskip("ofa.imagenet_classification.elastic_nn.networks")
    torch.manual_seed(0)
    ofa = ofa_nets.OFAMobileNetV3(n_classes=1000, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                                  depth_list=[2, 3, 4], width_mult=1.0)
    net = SuperNet(Variant.from_name("ee_dense_parallel"), 1.0, 10)
    report = load_ofa_state_dict(net, ofa.state_dict())
    assert len(report.resized) == 2  # classifier weight and bias: 1000 -> 10 classes
    assert any(k.startswith("heads.1.") for k in report.initialised)
    assert any(".conv1x1." in k for k in report.initialised)
    line = report.summary()
    assert "\n" not in line and "exit heads" in line and "parallel branches" in line
    torch.testing.assert_close(net.state_dict()["stages.2.layers.1.mbconv.dw_conv.weight"],
                               ofa.state_dict()["blocks.10.conv.depth_conv.conv.conv.weight"])


def test_ofa_import_refuses_other_widths_and_foreign_files(tmp_path) -> None:
    net = SuperNet(Variant.from_name("se_base"), 1.0, 10)
    wider = SuperNet(Variant.from_name("se_base"), 1.2, 10)
    state = {ofa_key(k): v for k, v in wider.state_dict().items()}
    with pytest.raises(Nat2Error, match="shape") as info:
        load_ofa_state_dict(net, state)
    assert "\n" not in str(info.value)
    with pytest.raises(Nat2Error, match="missing"):
        load_ofa_state_dict(net, {"foo": torch.zeros(1)})
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(Nat2Error, match="could not be read"):
        load_ofa_state_dict(net, bad)
    with pytest.raises(Nat2Error, match="not found"):
        load_ofa_state_dict(net, tmp_path / "absent.pth")


def test_recalibration_is_the_average_of_batch_statistics() -> None:
    space, nets = build("se_base", (1.0,))
    arch = space.decode(space.min_genome())
    sub = nets.extract(arch)
    batches = [torch.randn(8, 3, 24, 24, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    stem_means = [sub.stem.conv(b).mean((0, 2, 3)) for b in batches]
    recalibrate_bn(sub, batches)
    assert not sub.training
    torch.testing.assert_close(sub.stem.bn.running_mean, torch.stack(stem_means).mean(0), rtol=1e-5, atol=1e-6)
    assert sub.stem.bn.momentum == 0.1


def test_recalibration_context_restores_state_even_on_error() -> None:
    space, nets = build("ee_dense", (1.0,))
    arch = space.decode(space.max_genome())
    net = nets.net(arch)
    net.set_active(arch)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    batches = [torch.randn(4, 3, 24, 24)]
    with recalibrated_bn(net, batches) as calibrated:
        assert not calibrated.training
        changed = calibrated.stem.bn.running_mean.clone()
    assert not torch.equal(changed, before["stem.bn.running_mean"])
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert net.training

    def broken():
        yield torch.randn(4, 3, 24, 24)
        raise RuntimeError("loader died")

    with pytest.raises(RuntimeError, match="loader died"):
        recalibrate_bn(net, broken())
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert net.training and net.stem.bn.momentum == 0.1


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_channel_reordering_preserves_the_max_subnet(stage: int) -> None:
    space, nets = build("se_dense", (1.0,))
    arch = space.decode(space.max_genome())
    net = nets.net(arch)
    net.set_active(arch)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = net(x)
        net.reorder_channels(stage)
        after = net(x)
    torch.testing.assert_close(after, before, **TOL)
    imp = net.stages[1].layers[0].mbconv.project_conv.weight.abs().sum(dim=(0, 2, 3))
    if stage == 0:
        assert torch.all(imp[:-1] >= imp[1:])


def test_all_exits_teacher() -> None:
    space, nets = build("ee_base", (1.0,))
    arch = space.decode(space.max_genome())
    net = nets.net(arch)
    net.set_active(arch)
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        outs = net.forward_all_exits(x)
        assert len(outs) == 5
        torch.testing.assert_close(outs[-1], net(x))
        for e in range(1, 5):
            g = space.max_genome()
            g[space.exit_gene] = e - 1
            a = space.decode(space.repair(g))
            net.set_active(a)
            torch.testing.assert_close(net(x), net.forward_all_exits(x, arch)[e - 1])


def test_init_is_seeded_and_hash_identifies_weights() -> None:
    space = SearchSpace(Variant.from_name("ee_dense"), RESOLUTIONS, (1.0,))
    a = SuperNetSet(space, 10, generator=torch.Generator().manual_seed(1))
    b = SuperNetSet(space, 10, generator=torch.Generator().manual_seed(1))
    c = SuperNetSet(space, 10, generator=torch.Generator().manual_seed(2))
    assert a.content_hash() == b.content_hash() != c.content_hash()


def test_arch_of_another_width_or_variant_is_refused() -> None:
    space, nets = build("ee_base", (1.0, 1.2))
    arch = space.decode(space.max_genome())
    with pytest.raises(ValueError, match="width"):
        nets.net(1.0).set_active(arch)
    se_space = SearchSpace(Variant.from_name("se_base"), RESOLUTIONS, (1.2,))
    with pytest.raises(ValueError, match="exit"):
        nets.net(1.2).set_active(se_space.decode(se_space.max_genome()))


def hook_count(module: torch.nn.Module, resolution: int) -> tuple[int, int]:
    """(params, MACs) of a real module: parameter numel, and conv/linear MACs from forward hooks."""
    macs = 0

    def on_conv(m: torch.nn.Conv2d, inputs, out) -> None:
        nonlocal macs
        macs += out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def on_linear(m: torch.nn.Linear, inputs, out) -> None:
        nonlocal macs
        macs += m.in_features * m.out_features

    handles = [m.register_forward_hook(on_conv) for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    handles += [m.register_forward_hook(on_linear) for m in module.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        module.eval()(torch.zeros(1, 3, resolution, resolution))
    for h in handles:
        h.remove()
    return sum(p.numel() for p in module.parameters()), macs


def costed_population(variant: str, seed: int, n: int, policy: str) -> tuple:
    """(space, untrained super-nets, cost model, n sampled genomes + the min and max ones) at widths 1.0 and 1.2."""
    from nat2.costs import CostModel

    space = SearchSpace(Variant.from_name(variant), (24, 28, 32), (1.0, 1.2))
    rng = np.random.default_rng(seed)
    genomes = np.concatenate([space.sample(rng, n, policy), space.min_genome()[None], space.max_genome()[None]])
    return space, SuperNetSet(space, num_classes=10), CostModel(space, num_classes=10), genomes


@pytest.mark.parametrize("variant", VARIANTS)
def test_cost_model_equals_a_hook_count_of_the_extracted_module(variant: str) -> None:
    space, nets, model, genomes = costed_population(variant, 11, 98, "uniform_depth")
    costs = model(genomes)
    for genome, params, macs in zip(genomes, costs["params"], costs["macs"], strict=True):
        arch = space.decode(genome)
        assert hook_count(nets.extract(arch), arch.resolution) == (params, macs), arch


def test_supernet_set_samples_and_bounds() -> None:
    space, nets = build("ee_dense", (1.0, 1.2))
    rng = np.random.default_rng(0)
    archs = [nets.sample(rng, "arch_space") for _ in range(20)]
    assert all(space.is_canonical(space.encode(a)) for a in archs)
    assert {a.width_mult for a in archs} == {1.0, 1.2}
    assert nets.max_arch() == space.max_arch() and nets.min_arch().exit == 1
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        assert nets.extract(nets.min_arch())(x).shape == (2, 10)


EE_VARIANTS = [v for v in VARIANTS if v.startswith("ee_")]


@pytest.mark.parametrize("variant", ["ee_base", "ee_dense_parallel"])
def test_multi_exit_extraction_computes_the_supernet_exits(variant: str) -> None:
    from nat2.supernet import MultiExitNet

    space, nets = build(variant, (1.0,))
    nets.to(torch.float64)
    rng = np.random.default_rng(5)
    for genome in space.sample(rng, 12, "uniform"):
        arch = space.decode(genome)
        net = nets.net(arch)
        weights = [0.1 * (i + 1) for i in range(arch.stages_run)]
        x = torch.randn(2, 3, arch.resolution, arch.resolution, dtype=torch.float64)
        with torch.no_grad():
            multi = net.extract(arch, weights).eval()
            assert isinstance(multi, MultiExitNet) and len(multi.heads) == arch.stages_run
            ref = net.forward_all_exits(x, arch)[: arch.stages_run]
            got = multi.forward_exits(x)
            for a, b in zip(got, ref, strict=True):
                torch.testing.assert_close(a, b)
            torch.testing.assert_close(multi(x), sum(w * r for w, r in zip(weights, ref, strict=True)))
            net.set_active(arch)
            torch.testing.assert_close(got[-1], net(x))  # the deepest head is the searched subnet's


@pytest.mark.parametrize("variant", EE_VARIANTS)
def test_multi_exit_costs_equal_a_hook_count(variant: str) -> None:
    from nat2.costs import Cost

    space, nets, model, genomes = costed_population(variant, 12, 14, "uniform")
    every, single = model(genomes, exits="all"), model(genomes)
    for i, genome in enumerate(genomes):
        arch = space.decode(genome)
        multi = nets.extract(arch, [1.0 / arch.stages_run] * arch.stages_run)
        assert hook_count(multi, arch.resolution) == (every["params"][i], every["macs"][i]), arch
        assert model.arch_cost(arch, "all") == Cost(int(every["params"][i]), int(every["macs"][i]))
        # exactly the heads of exits 1..nd-1 are added
        extra = sum(p.numel() for e in range(arch.stages_run - 1) for p in multi.heads[e].parameters())
        assert every["params"][i] - single["params"][i] == extra
    assert np.all(every["macs"][genomes[:, space.exit_gene] == 0] == single["macs"][genomes[:, space.exit_gene] == 0])


def test_single_exit_variants_have_one_head_whatever_exits_says() -> None:
    from nat2.costs import CostModel

    space = SearchSpace(Variant.from_name("se_dense"), (24, 32), (1.0,))
    model = CostModel(space, num_classes=10)
    G = space.sample(np.random.default_rng(0), 10, "uniform")
    assert all(np.array_equal(model(G, "all")[k], model(G)[k]) for k in ("params", "macs"))
    with pytest.raises(ValueError, match="exits must be"):
        model(G, "some")
    with pytest.raises(ValueError, match="early-exit variant"):
        SuperNetSet(space, 10).extract(space.decode(G[0]), [1.0])


def test_ofa_import_accepts_the_older_key_spellings() -> None:
    """Released OFA checkpoints name blocks `.mobile_inverted_conv.`; OFA's load_state_dict renames them, so do we."""
    ofa_nets = pytest.importorskip("ofa.imagenet_classification.elastic_nn.networks")
    torch.manual_seed(0)
    ofa = ofa_nets.OFAMobileNetV3(n_classes=10, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                                  depth_list=[2, 3, 4], width_mult=1.0)
    randomise(ofa, 3)
    current = ofa.state_dict()
    old = {k.replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k: v
           for k, v in current.items()}
    assert sum(".mobile_inverted_conv." in k for k in old) > 100
    flat = {k.replace(".bn.bn.", ".bn."): v for k, v in old.items()}  # the flattened wrapper spelling too
    for state in (old, flat):
        net = SuperNet(Variant.from_name("se_base"), 1.0, 10)
        report = load_ofa_state_dict(net, {"state_dict": state})
        assert report.loaded == len(net.state_dict())
        ref = SuperNet(Variant.from_name("se_base"), 1.0, 10)
        load_ofa_state_dict(ref, current)
        for key, tensor in ref.state_dict().items():
            torch.testing.assert_close(net.state_dict()[key], tensor, rtol=0, atol=0)
    with pytest.raises(Nat2Error, match="twice"):
        load_ofa_state_dict(SuperNet(Variant.from_name("se_base"), 1.0, 10), {**current, **old})


@pytest.mark.parametrize("variant", ["se_base", "ee_dense", "ee_dense_parallel"])
def test_stem_stride_one_costs_and_extraction_are_exact(variant: str) -> None:
    """The small-image macro (stride-1 stem): counted costs, the extracted module and the super-net agree."""
    from nat2.costs import CostModel

    space = SearchSpace(Variant.from_name(variant, 1), (24, 28, 32), (1.0,))
    nets = SuperNetSet(space, num_classes=10, generator=torch.Generator().manual_seed(3))
    randomise(nets, 3, gamma=0.5 if space.variant.parallel else 1.0)
    nets.eval().to(torch.float64)
    model = CostModel(space, num_classes=10)
    rng = np.random.default_rng(4)
    genomes = np.concatenate([space.sample(rng, 12, "uniform"), space.min_genome()[None], space.max_genome()[None]])
    costs = model(genomes)
    stride2 = CostModel(SearchSpace(Variant.from_name(variant), (24, 28, 32), (1.0,)), num_classes=10)(genomes)
    for genome, params, macs in zip(genomes, costs["params"], costs["macs"], strict=True):
        arch = space.decode(genome)
        sub = nets.extract(arch)
        assert hook_count(sub.float(), arch.resolution) == (params, macs), arch
        sub.double()
        net = nets.net(arch)
        net.set_active(arch)
        x = torch.randn(2, 3, arch.resolution, arch.resolution, dtype=torch.float64)
        with torch.no_grad():
            torch.testing.assert_close(sub(x), net(x))
    # same weights, every map after the stem twice as wide: params equal, MACs 2-4x (the pooled tail does not grow)
    assert np.array_equal(costs["params"], stride2["params"])
    assert np.all(costs["macs"] > 2 * stride2["macs"]) and np.all(costs["macs"] <= 4 * stride2["macs"])


def test_stem_stride_round_trips_through_a_slot_folder_and_refuses_ofa(tmp_path) -> None:
    from nat2.errors import Nat2Error
    from nat2.slot_folder import load_subnet
    from nat2.train.phase_run import _init_weights

    space = SearchSpace(Variant.from_name("ee_dense", 1), (28,), (1.0,))
    nets = SuperNetSet(space, num_classes=10, generator=torch.Generator().manual_seed(0)).eval()
    arch = space.decode(space.sample(np.random.default_rng(0), 1, "uniform")[0])
    sub = nets.extract(arch).eval()
    torch.save(sub.state_dict(), tmp_path / "weights.pt")
    card = {"slot": 0, "variant": "ee_dense", "stem_stride": 1, "arch": arch.to_json(), "num_classes": 10}
    (tmp_path / "card.json").write_text(__import__("json").dumps(card))
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(load_subnet(tmp_path)(x), sub(x))
    assert load_subnet(tmp_path).stem.conv.stride == (1, 1)
    with pytest.raises(Nat2Error, match=r"stride-2 stem.*supernet.stem_stride: 2"):
        _init_weights(nets.net(1.0), "ofa:/nowhere/ofa_w{w}.pth")
    # same weights, another network: the content hash (and so every evaluation cache key) tells the strides apart
    stride2 = SuperNetSet(SearchSpace(Variant.from_name("ee_dense"), (28,), (1.0,)), num_classes=10)
    stride2.load_state_dict(nets.state_dict())
    assert stride2.content_hash() != nets.content_hash()
    (tmp_path / "card.json").write_text(__import__("json").dumps({**card, "stem_stride": 3}))
    with pytest.raises(Nat2Error, match="not a nat2 subnet folder"):
        load_subnet(tmp_path)
