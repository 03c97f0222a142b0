"""Tests of nat2.costs: hand counts, OFA reference counts, vectorised vs per-part totals, no torch import."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from nat2.config import VARIANTS
from nat2.costs import Cost, CostModel
from nat2.space import Arch, SearchSpace, Variant


def model(variant: str, res: tuple[int, ...] = (24, 28, 32), widths: tuple[float, ...] = (1.0, 1.2),
          num_classes: int = 10) -> CostModel:
    return CostModel(SearchSpace(Variant.from_name(variant), res, widths), num_classes)


def test_min_arch_se_base_by_hand():
    # se_base, w=1.0, r=224, 1000 classes; every layer k3 e3, every stage depth 2.
    # Widths: stem/first block 16, stages 24/40/80/112/160. Sides: stem 112; stages (in->out) 112->56, 56->28,
    # 28->14, 14->14, 14->7. mid = md(3*C_in); SE hidden = md(mid // 4). Each conv's BN adds 2*C_out params.
    parts = [  # (params, MACs)
        (3 * 16 * 9 + 2 * 16, 3 * 16 * 9 * 112**2),                # stem 3x3/2
        (16 * 9 + 2 * 16, 16 * 9 * 112**2),                        # first block depthwise
        (16 * 16 + 2 * 16, 16 * 16 * 112**2),                      # first block pointwise
        # stage 0 (no SE), layer 0: 16 -> 24, stride 2, mid 48
        (16 * 48 + 96, 16 * 48 * 112**2), (48 * 9 + 96, 48 * 9 * 56**2), (48 * 24 + 48, 48 * 24 * 56**2),
        # stage 0, layer 1: 24 -> 24, mid 72
        (24 * 72 + 144, 24 * 72 * 56**2), (72 * 9 + 144, 72 * 9 * 56**2), (72 * 24 + 48, 72 * 24 * 56**2),
        # stage 1 (SE), layer 0: 24 -> 40, stride 2, mid 72, SE hidden md(18) = 24
        (24 * 72 + 144, 24 * 72 * 56**2), (72 * 9 + 144, 72 * 9 * 28**2),
        (72 * 24 + 24, 72 * 24), (24 * 72 + 72, 24 * 72), (72 * 40 + 80, 72 * 40 * 28**2),
        # stage 1, layer 1: 40 -> 40, mid 120, SE hidden md(30) = 32
        (40 * 120 + 240, 40 * 120 * 28**2), (120 * 9 + 240, 120 * 9 * 28**2),
        (120 * 32 + 32, 120 * 32), (32 * 120 + 120, 32 * 120), (120 * 40 + 80, 120 * 40 * 28**2),
        # stage 2 (no SE), layer 0: 40 -> 80, stride 2, mid 120
        (40 * 120 + 240, 40 * 120 * 28**2), (120 * 9 + 240, 120 * 9 * 14**2), (120 * 80 + 160, 120 * 80 * 14**2),
        # stage 2, layer 1: 80 -> 80, mid 240
        (80 * 240 + 480, 80 * 240 * 14**2), (240 * 9 + 480, 240 * 9 * 14**2), (240 * 80 + 160, 240 * 80 * 14**2),
        # stage 3 (SE), layer 0: 80 -> 112, stride 1, mid 240, SE hidden md(60) = 64
        (80 * 240 + 480, 80 * 240 * 14**2), (240 * 9 + 480, 240 * 9 * 14**2),
        (240 * 64 + 64, 240 * 64), (64 * 240 + 240, 64 * 240), (240 * 112 + 224, 240 * 112 * 14**2),
        # stage 3, layer 1: 112 -> 112, mid 336, SE hidden md(84) = 88
        (112 * 336 + 672, 112 * 336 * 14**2), (336 * 9 + 672, 336 * 9 * 14**2),
        (336 * 88 + 88, 336 * 88), (88 * 336 + 336, 88 * 336), (336 * 112 + 224, 336 * 112 * 14**2),
        # stage 4 (SE), layer 0: 112 -> 160, stride 2, mid 336, SE hidden 88
        (112 * 336 + 672, 112 * 336 * 14**2), (336 * 9 + 672, 336 * 9 * 7**2),
        (336 * 88 + 88, 336 * 88), (88 * 336 + 336, 88 * 336), (336 * 160 + 320, 336 * 160 * 7**2),
        # stage 4, layer 1: 160 -> 160, mid 480, SE hidden md(120) = 120
        (160 * 480 + 960, 160 * 480 * 7**2), (480 * 9 + 960, 480 * 9 * 7**2),
        (480 * 120 + 120, 480 * 120), (120 * 480 + 480, 120 * 480), (480 * 160 + 320, 480 * 160 * 7**2),
        # tail: 1x1 160 -> 960 + BN at 7x7; 1x1 960 -> 1280 on 1x1 (no BN); linear 1280 -> 1000 with bias
        (160 * 960 + 1920, 160 * 960 * 7**2), (960 * 1280, 960 * 1280), (1280 * 1000 + 1000, 1280 * 1000),
    ]
    params, macs = (sum(p[i] for p in parts) for i in (0, 1))
    assert (params, macs) == (3_410_792, 121_278_672)  # = ofa 0.1.0's count_parameters / flops_counter.profile
    cm = model("se_base", (224,), (1.0,), 1000)
    out = cm(cm.space.min_genome())
    assert (int(out["params"]), int(out["macs"])) == (params, macs)
    breakdown = cm.cost_breakdown(cm.space.min_arch())
    assert len(breakdown) == len(parts)
    assert [(c.params, c.macs) for c in breakdown.values()] == parts


def test_min_arch_ee_dense_by_hand():
    # ee_dense, w=1.0, r=28, 10 classes, exit 1: stem, first block, stage 0 (k3 e3, depth 2), exit-1 head 144/192.
    # Sides: stem (28-1)//2+1 = 14, stage 0 14 -> 7.
    params = ((3 * 16 * 9 + 32) + (16 * 9 + 32) + (16 * 16 + 32)
              + (16 * 48 + 96) + (48 * 9 + 96) + (48 * 24 + 48)
              + (24 * 72 + 144) + (72 * 9 + 144) + (72 * 24 + 48)
              + (24 * 144 + 288) + 144 * 192 + (192 * 10 + 10))
    macs = ((3 * 16 * 9 + 16 * 9 + 16 * 16) * 14**2
            + 16 * 48 * 14**2 + (48 * 9 + 48 * 24) * 7**2
            + (24 * 72 + 72 * 9 + 72 * 24) * 7**2
            + 24 * 144 * 7**2 + 144 * 192 + 192 * 10)
    cm = model("ee_dense", (28,), (1.0,), 10)
    out = cm(cm.space.min_genome())
    assert (int(out["params"]), int(out["macs"])) == (params, macs) == (41_282, 791_224)


# Reference counts of OFA's own OFAMobileNetV3 sub-networks (ofa 0.1.0: count_parameters and
# flops_counter.profile on get_active_subnet), computed once; the profiler accumulates in float32, so MACs above
# 2**24 may differ from the exact count by a few ulps.
OFA_REFERENCE = [
    # (w, classes, r, ks, e, d, params, macs)
    (1.0, 1000, 224, [7] * 20, [6] * 20, [4] * 5, 7_664_760, 566_170_688),
    (1.0, 10, 32, [3, 5, 7, 3, 5, 7, 3, 5, 7, 3, 5, 7, 3, 5, 7, 3, 5, 7, 3, 5],
     [3, 4, 6, 6, 4, 3, 6, 4, 6, 6, 3, 3, 4, 4, 6, 3, 6, 3, 4, 6], [2, 3, 4, 3, 4], 4_406_490, 8_180_096),
    (1.2, 100, 64, [7, 5, 3, 3, 3, 3, 5, 7, 5, 5, 5, 5, 7, 3, 7, 3, 3, 7, 5, 5],
     [6, 6, 3, 4, 4, 4, 6, 3, 3, 6, 4, 4, 6, 3, 3, 6, 4, 6, 3, 3], [4, 2, 3, 4, 3], 5_729_740, 42_654_080),
    (1.2, 1000, 160, [5] * 20, [4] * 20, [3, 4, 2, 3, 4], 6_816_464, 208_074_528),
]


@pytest.mark.parametrize("case", OFA_REFERENCE, ids=lambda c: f"w{c[0]}-r{c[2]}-d{''.join(map(str, c[5]))}")
def test_matches_ofa_reference_counts(case):
    w, classes, r, ks, e, d, params, macs = case
    cm = model("se_base", (r,), (w,), classes)
    arch = Arch.from_ofa_dict({"r": r, "w": w, "ks": ks, "e": e, "d": d}, cm.space)
    out = cm(cm.space.encode(arch))
    assert int(out["params"]) == params
    assert int(out["macs"]) == pytest.approx(macs, rel=1e-7)


def test_parallel_branch_parts_by_hand():
    # se_parallel, w=1.0, r=32: stem side 16, stage 0 16 -> 8 (stride 2, 16 -> 24 channels).
    cm = model("se_parallel", (32,), (1.0,))
    sp = cm.space
    mask3 = 1 + 9 * 3  # pos(3) = 3: conv1x1 + transformation branches, kernel/expand index 0
    mask1 = 1  # transformation only
    genome = np.array([0, 0, mask3, mask1, 0, 0] + [1, 1, 0, 0] * 4)
    parts = cm.cost_breakdown(sp.decode(genome))
    assert parts["stage0.layer0.conv1x1"] == Cost(16 * 24 + 48, 16 * 24 * 8**2)
    assert parts["stage0.layer0.transform.conv"] == Cost(16 * 24 + 48, 16 * 24 * 8**2)  # channels change: 1x1 conv
    assert parts["stage0.layer1.transform.bn"] == Cost(48, 0)  # stride 1, 24 -> 24: max-pool skipped, BN only
    assert not any(name.startswith("stage0.layer0.mbconv") for name in parts)
    total = cm.arch_cost(sp.decode(genome))
    out = cm(genome)
    assert (int(out["params"]), int(out["macs"])) == (total.params, total.macs)


@pytest.mark.parametrize("variant", VARIANTS)
def test_vectorised_equals_breakdown_and_monotone(variant):
    cm = model(variant)
    sp = cm.space
    X = np.vstack([sp.sample(np.random.default_rng(5), 100, "uniform"),
                   sp.sample(np.random.default_rng(6), 100, "arch_space")])
    out = cm(X)
    assert out["params"].dtype == np.int64 and out["macs"].dtype == np.int64 and out["params"].shape == (200,)
    totals = [cm.arch_cost(a) for a in sp.decode_many(X)]
    assert out["params"].tolist() == [t.params for t in totals]
    assert out["macs"].tolist() == [t.macs for t in totals]
    lo, hi = cm(sp.min_genome()), cm(sp.max_genome())
    for key in ("params", "macs"):
        assert (out[key] >= lo[key]).all() and (out[key] <= hi[key]).all() and lo[key] < hi[key]


def test_variant_equivalences():
    base, dense, ee = model("se_base"), model("se_dense"), model("ee_base")
    X = base.space.sample(np.random.default_rng(1), 300, "uniform_depth")
    assert all((base(X)[k] == dense(X)[k]).all() for k in ("params", "macs"))  # dense adds additions only
    # an early-exit network with exit 5 is the single-exit network
    X_ee = np.insert(X, 2, 4, axis=1)
    assert all((base(X)[k] == ee(X_ee)[k]).all() for k in ("params", "macs"))
    # a parallel layer with mask 4 (pos 2) is the plain MBConv layer
    par = model("se_parallel")
    X_par = X.copy()
    X_par[:, 2:] = np.where(X[:, 2:] > 0, X[:, 2:] + 18, 0)
    assert all((base(X)[k] == par(X_par)[k]).all() for k in ("params", "macs"))


def test_early_exit_drops_later_stages():
    cm = model("ee_base", (32,), (1.0,), 10)
    sp = cm.space
    g = sp.max_genome()
    costs = []
    for x in range(1, 6):
        g[2] = x - 1
        arch = sp.decode(sp.repair(g))
        parts = cm.cost_breakdown(arch)
        assert {int(name[5]) for name in parts if name.startswith("stage")} == set(range(x))
        costs.append(cm(sp.encode(arch))["params"])
        g = sp.max_genome()
    assert costs == sorted(costs)


def test_bad_input():
    cm = model("se_base")
    with pytest.raises(ValueError, match="not canonical"):
        cm(np.array([[0, 0] + [1, 1, 0, 2] + [1, 1, 0, 0] * 4]))
    with pytest.raises(ValueError, match="expected shape"):
        cm(np.zeros((2, 23), dtype=int))
    with pytest.raises(ValueError, match="num_classes"):
        CostModel(cm.space, 0)
    with pytest.raises(ValueError, match="resolution"):
        cm.cost_breakdown(model("se_base", (64,)).space.min_arch())
    assert cm._layers[0].flags.writeable is False
    single = cm(cm.space.min_genome())
    assert single["params"].shape == () and single["macs"].shape == ()


def test_costs_do_not_import_torch():
    code = textwrap.dedent("""
        import sys

        class BlockTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
                return None

        sys.meta_path.insert(0, BlockTorch())
        import numpy as np
        import nat2.costs, nat2.space
        sp = nat2.space.SearchSpace("ee_dense_parallel", (24, 28, 32), (1.0, 1.2))
        out = nat2.costs.CostModel(sp, 10)(sp.sample(np.random.default_rng(0), 50))
        assert out["params"].shape == (50,) and (out["macs"] > 0).all()
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
