"""Analytic parameter and MAC counts of OFAv2 sub-networks, vectorised over a population of genomes.

Search evaluates the ``params`` and ``macs`` objectives for thousands of candidate genomes per iteration, so the
counts are computed without building any network (and without torch): every per-layer cost is tabulated once per
(width multiplier, resolution, layer position, layer code), and a population's costs are table look-ups and sums.

Definitions (what the numbers mean; these are raw counts, not millions):

* **MACs**: multiply-accumulates of every convolution and linear layer of the extracted single-exit sub-network,
  *including* the two 1×1 convs of each SE module (on a 1×1 map, ``mid·se_mid`` each). Element-wise work is
  excluded: activations, BatchNorm, residual/dense/branch additions, pooling and the SE multiply. This is OFA's
  analytic count (``count_flops_given_config``, ofa-internals.md §1.8), **not** ``torchprofile.profile_macs``,
  which the thesis reports as "flops" and which also counts some element-wise ops, so thesis numbers are slightly
  higher.
* **params**: every learnable parameter of the extracted network: conv weights, BatchNorm affine weight and bias,
  SE conv biases, classifier weight and bias. BatchNorm running statistics are buffers and are not counted.

The network counted (the super-net builds exactly this; ``md`` = ``make_divisible(·, 8)``, ``w`` = width
multiplier, sides follow ``(H - 1) // stride + 1``):

* stem 3×3 conv, stride ``supernet.stem_stride`` (OFA: 2), 3→``md(16w)`` + BN; fixed first block: depthwise 3×3
  + BN, pointwise 1×1 + BN, identity residual;
* per executed layer with ``C_in → C_out``: MBConv (when the mask has bit 4; always in non-parallel variants):
  1×1 expand to ``mid = md(round(C_in·e))`` at the input side, depthwise k×k at the output side, SE
  (``md(mid // 4)`` hidden, biased convs) in SE stages, 1×1 project to ``C_out``, each conv followed by BN;
  parallel bit 2: 1×1 conv (stride s) + BN; parallel bit 1: max-pool, a 1×1 conv only when ``C_in ≠ C_out``, BN;
* exit head after the last executed stage: 1×1 conv to ``F`` + BN, global pool, 1×1 conv ``F → L`` (no BN),
  linear ``L → num_classes`` with bias; ``(F, L) = exit_widths(w, exit)``. Early-exit sub-networks contain only
  the stages up to their exit and that exit's head. Dense connections add nothing.
* ``exits="all"`` costs the AEP multi-exit network of fine-tuning (method.md §4.4): the same body, truncated after
  the arch's exit stage ``nd`` (unlike the reference, whose re-assembled net runs all five stages: §7.2 item 10),
  with every exit head ``1..nd`` attached; all heads run at inference since the prediction is their weighted sum.

:meth:`CostModel.cost_breakdown` names every part (``stem.conv``, ``stage2.layer0.mbconv.expand``,
``exit.classifier``...; stages and layers 0-based) so that a disagreement with a hook-based count on the real
network points at one module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from nat2.space import (
    BRANCH_CONV1X1,
    BRANCH_MBCONV,
    BRANCH_TRANSFORM,
    LAYER_STAGE,
    MAX_DEPTH,
    N_EXITS,
    N_LAYERS,
    N_STAGES,
    SE_REDUCTION,
    STAGE_SE,
    STAGE_STRIDES,
    Arch,
    SearchSpace,
    exit_widths,
    layer_choice,
    make_divisible,
    output_side,
    stage_widths,
    stem_width,
)

if TYPE_CHECKING:
    from nat2.latency import LatencyModel

__all__ = ["Cost", "CostModel", "Geometry"]

_STEM_KERNEL = 3
_FIRST_BLOCK_KERNEL = 3
_IN_CHANNELS = 3


@dataclass(frozen=True)
class Cost:
    """Parameters and multiply-accumulates of one part (or a sum of parts)."""

    params: int
    macs: int

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs)


def _conv(c_in: int, c_out: int, kernel: int, side: int, *, groups: int = 1, bias: bool = False,
          bn: bool = True) -> Cost:
    """A conv (optionally followed by BN) producing a ``side × side`` map."""
    weights = c_out * (c_in // groups) * kernel * kernel
    params = weights + (c_out if bias else 0) + (2 * c_out if bn else 0)
    return Cost(params, weights * side * side)


@dataclass(frozen=True)
class Geometry:
    """Channel widths and spatial sides of the backbone for one (width multiplier, resolution)."""

    width_mult: float
    resolution: int
    stem_stride: int = 2

    @property
    def stem(self) -> int:
        """Channels of the stem and the fixed first block."""
        return stem_width(self.width_mult)

    @property
    def widths(self) -> tuple[int, ...]:
        """Output channels of the five stages."""
        return stage_widths(self.width_mult)

    @property
    def stem_side(self) -> int:
        """Side of the stem's output map (stride 2 as OFA, or 1 in the small-image regime)."""
        return output_side(self.resolution, self.stem_stride)

    def stage_sides(self) -> tuple[tuple[int, int], ...]:
        """``(input side, output side)`` of each stage (independent of depths: only layer 0 strides)."""
        sides, h = [], self.stem_side
        for stride in STAGE_STRIDES:
            sides.append((h, output_side(h, stride)))
            h = sides[-1][1]
        return tuple(sides)

    def layer_io(self, stage: int, pos: int) -> tuple[int, int, int, int]:
        """``(c_in, c_out, side_in, side_out)`` of layer ``pos`` of ``stage``."""
        widths = self.widths
        h_in, h_out = self.stage_sides()[stage]
        if pos == 0:
            return (widths[stage - 1] if stage else self.stem), widths[stage], h_in, h_out
        return widths[stage], widths[stage], h_out, h_out


def _stem_parts(geo: Geometry) -> list[tuple[str, Cost]]:
    c, h = geo.stem, geo.stem_side
    return [
        ("stem.conv", _conv(_IN_CHANNELS, c, _STEM_KERNEL, h)),
        ("first_block.depthwise", _conv(c, c, _FIRST_BLOCK_KERNEL, h, groups=c)),
        ("first_block.pointwise", _conv(c, c, 1, h)),
    ]


def _layer_parts(geo: Geometry, stage: int, pos: int, kernel: int, expand: int,
                 branch: int) -> list[tuple[str, Cost]]:
    c_in, c_out, h_in, h_out = geo.layer_io(stage, pos)
    prefix = f"stage{stage}.layer{pos}."
    parts: list[tuple[str, Cost]] = []
    if branch & BRANCH_MBCONV:
        mid = make_divisible(round(c_in * expand))
        parts += [
            ("mbconv.expand", _conv(c_in, mid, 1, h_in)),
            ("mbconv.depthwise", _conv(mid, mid, kernel, h_out, groups=mid)),
        ]
        if STAGE_SE[stage]:
            se_mid = make_divisible(mid // SE_REDUCTION)
            parts += [
                ("mbconv.se_reduce", _conv(mid, se_mid, 1, 1, bias=True, bn=False)),
                ("mbconv.se_expand", _conv(se_mid, mid, 1, 1, bias=True, bn=False)),
            ]
        parts.append(("mbconv.project", _conv(mid, c_out, 1, h_out)))
    if branch & BRANCH_CONV1X1:
        parts.append(("conv1x1", _conv(c_in, c_out, 1, h_out)))
    if branch & BRANCH_TRANSFORM:
        if c_in != c_out:
            parts.append(("transform.conv", _conv(c_in, c_out, 1, h_out)))
        else:
            parts.append(("transform.bn", Cost(2 * c_out, 0)))
    return [(prefix + name, cost) for name, cost in parts]


def _exit_parts(geo: Geometry, exit: int, num_classes: int) -> list[tuple[str, Cost]]:
    c, h = geo.widths[exit - 1], geo.stage_sides()[exit - 1][1]
    expand, mix = exit_widths(geo.width_mult, exit)
    return [
        ("exit.final_expand", _conv(c, expand, 1, h)),
        ("exit.feature_mix", _conv(expand, mix, 1, 1, bn=False)),
        ("exit.classifier", Cost(mix * num_classes + num_classes, mix * num_classes)),
    ]


def _total(parts: list[tuple[str, Cost]]) -> Cost:
    return sum((cost for _, cost in parts), Cost(0, 0))


def _readonly(a: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class CostModel:
    """Vectorised params/MACs of the sub-networks of one search space (see the module doc for definitions).

    Attributes:
        space: the search space whose genomes are costed.
        num_classes: classifier outputs of the target task.
        latency: the measured-latency model of the same space (:mod:`nat2.latency`); with it, every call also
            returns ``latency`` (predicted milliseconds).
    """

    space: SearchSpace
    num_classes: int
    latency: LatencyModel | None = field(default=None, repr=False, compare=False)
    _base: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] = field(init=False, repr=False, compare=False)
    _layers: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] = field(init=False, repr=False, compare=False)
    _heads: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] = field(init=False, repr=False, compare=False)
    _all_heads: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] = field(init=False, repr=False,
                                                                              compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.space, SearchSpace):
            raise ValueError(f"CostModel.space: expected a SearchSpace, got {type(self.space).__name__}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, (int, np.integer)) \
                or self.num_classes < 1:
            raise ValueError(f"CostModel.num_classes must be a positive integer, got {self.num_classes!r}")
        object.__setattr__(self, "num_classes", int(self.num_classes))
        if self.latency is not None and (self.latency.space != self.space
                                         or self.latency.num_classes != self.num_classes):
            raise ValueError("CostModel.latency: the latency model covers another space or class count")
        self._build_tables()

    def _build_tables(self) -> None:
        # Tables are [width, resolution, ...]; params do not depend on the resolution, but one shape keeps the
        # look-ups uniform. Code 0 (skipped layer) costs nothing.
        sp = self.space
        n_w, n_r, n_c = len(sp.width_mults), len(sp.resolutions), sp.n_codes + 1
        base = np.zeros((2, n_w, n_r), dtype=np.int64)
        layers = np.zeros((2, n_w, n_r, N_LAYERS, n_c), dtype=np.int64)
        heads = np.zeros((2, n_w, n_r, N_EXITS), dtype=np.int64)
        choices = [layer_choice(code, sp.variant.parallel) for code in range(1, n_c)]
        for wi, w in enumerate(sp.width_mults):
            for ri, r in enumerate(sp.resolutions):
                geo = Geometry(w, r, sp.variant.stem_stride)
                base[:, wi, ri] = _as_pair(_total(_stem_parts(geo)))
                for i in range(N_LAYERS):
                    stage, pos = divmod(i, MAX_DEPTH)
                    for code, (k, e, b) in enumerate(choices, start=1):
                        layers[:, wi, ri, i, code] = _as_pair(_total(_layer_parts(geo, stage, pos, k, e, b)))
                for x in range(1, N_EXITS + 1):
                    heads[:, wi, ri, x - 1] = _as_pair(_total(_exit_parts(geo, x, self.num_classes)))
        object.__setattr__(self, "_base", (_readonly(base[0]), _readonly(base[1])))
        object.__setattr__(self, "_layers", (_readonly(layers[0]), _readonly(layers[1])))
        object.__setattr__(self, "_heads", (_readonly(heads[0]), _readonly(heads[1])))
        all_heads = np.cumsum(heads, axis=-1)  # [..., x-1] = heads of exits 1..x
        object.__setattr__(self, "_all_heads", (_readonly(all_heads[0]), _readonly(all_heads[1])))

    def __call__(self, X: npt.ArrayLike, exits: str = "single") -> dict[str, npt.NDArray[np.int64]]:
        """Params and MACs of the sub-network each canonical genome describes.

        Args:
            X: canonical genomes ``[n, n_var]`` (a single ``[n_var]`` genome gives numpy int64 scalars).
            exits: ``"single"`` (the searched network: one head, at its exit) or ``"all"`` (the AEP multi-exit
                network: heads ``1..nd``; equal to ``"single"`` for single-exit variants).

        Returns:
            ``{"params": int64[n], "macs": int64[n]}``, plus ``"latency": float64[n]`` (milliseconds) with a
            latency model.

        Raises:
            ValueError: on a wrong shape or a non-canonical genome (repair it first).
        """
        sp = self.space
        multi = _multi_exit(exits) and sp.variant.early_exit  # single-exit variants have one head whatever
        heads = self._all_heads if multi else self._heads
        ok = sp.is_canonical(X)
        G = np.atleast_2d(np.asarray(X)).astype(np.int64)
        if not np.all(ok):
            bad = int(np.flatnonzero(np.atleast_1d(~ok))[0])
            raise ValueError(f"CostModel: genome {bad} is not canonical ({sp.explain(G[bad])}); repair it first")
        n = G.shape[0]
        r, w = G[:, 0], G[:, 1]
        nd = G[:, sp.exit_gene] + 1 if sp.exit_gene is not None else np.full(n, N_STAGES, dtype=np.int64)
        codes = G[:, sp.layer_offset:]
        active = np.asarray(LAYER_STAGE)[None, :] < nd[:, None]  # layers of stages past the exit never run
        pos = np.arange(N_LAYERS)[None, :]
        out = {}
        for k, name in enumerate(("params", "macs")):
            layer = self._layers[k][w[:, None], r[:, None], pos, codes]
            out[name] = self._base[k][w, r] + np.where(active, layer, 0).sum(axis=1) + heads[k][w, r, nd - 1]
        if self.latency is not None:
            out["latency"] = self.latency(G, exits)
        if np.ndim(ok) == 0:
            return {name: v[0] for name, v in out.items()}
        return out

    def cost_breakdown(self, arch: Arch, exits: str = "single") -> dict[str, Cost]:
        """Per-part costs of one architecture in forward order (pure Python, for debugging and cross-checks).

        Each conv's entry includes its BatchNorm's parameters. Parts of layers that do not run are absent. With
        ``exits="all"`` the heads are named ``exit1.…`` to ``exit<nd>.…``.

        Raises:
            ValueError: when ``arch`` does not belong to this cost model's space.
        """
        arch = self.space.canonicalize(arch)  # validates membership; costs never depend on the skipped stages
        geo = Geometry(arch.width_mult, arch.resolution, self.space.variant.stem_stride)
        parts = _stem_parts(geo)
        for stage, pos, i in arch.active_layers():
            parts += _layer_parts(geo, stage, pos, arch.kernel_sizes[i], arch.expand_ratios[i], arch.branches[i])
        if _multi_exit(exits) and arch.exit is not None:
            for x in range(1, arch.stages_run + 1):
                parts += [(f"exit{x}" + name[len("exit"):], c) for name, c in _exit_parts(geo, x, self.num_classes)]
        else:
            parts += _exit_parts(geo, arch.stages_run, self.num_classes)
        return dict(parts)

    def arch_cost(self, arch: Arch, exits: str = "single") -> Cost:
        """Total of :meth:`cost_breakdown`."""
        return _total(list(self.cost_breakdown(arch, exits).items()))


def _multi_exit(exits: str) -> bool:
    """Whether ``exits`` asks for the AEP multi-exit network (``"all"``) rather than the searched one."""
    if exits not in ("single", "all"):
        raise ValueError(f"CostModel: exits must be 'single' or 'all', got {exits!r}")
    return exits == "all"


def _as_pair(cost: Cost) -> tuple[int, int]:
    return cost.params, cost.macs
