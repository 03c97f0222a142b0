"""The phenotype: a concrete sub-network of an OFAv2 super-net, written as values rather than gene indices.

:class:`Arch` is what the super-net, the extractor and the reports consume; :mod:`nat2.space.encoding` maps it to
and from the integer genome that search and surrogates use. It is pure, hashable data so it can key dicts and
caches, and it validates the invariants that hold for every variant on construction, so a malformed architecture
fails where it is made and not deep inside a forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from nat2.space.macro import (
    BRANCH_MASKS,
    BRANCH_MBCONV,
    DEPTHS,
    EXPAND_RATIOS,
    KERNEL_SIZES,
    MAX_DEPTH,
    N_EXITS,
    N_LAYERS,
    N_STAGES,
)

if TYPE_CHECKING:
    from nat2.space.encoding import SearchSpace

__all__ = ["Arch"]

_SKIP_KS = 3
_SKIP_E = 3


def _as_int(name: str, value: Any) -> int:
    # numpy integers are accepted (genomes are numpy arrays); bools and non-integral floats are not.
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"Arch.{name}: expected an integer, got {value!r}")
    return int(value)


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
        raise ValueError(f"Arch.{name}: expected a number, got {value!r}")
    return float(value)


def _int_tuple(name: str, value: Any, length: int) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not (isinstance(value, Sequence) or hasattr(value, "tolist")):
        raise ValueError(f"Arch.{name}: expected a sequence of {length} integers, got {value!r}")
    items = value.tolist() if hasattr(value, "tolist") else list(value)
    if len(items) != length:
        raise ValueError(f"Arch.{name}: expected {length} values, got {len(items)}")
    return tuple(_as_int(f"{name}[{i}]", v) for i, v in enumerate(items))


@dataclass(frozen=True)
class Arch:
    """One sub-network: input resolution, width multiplier, exit and per-layer choices.

    Layers are indexed globally 0..19 (stage ``s`` owns ``4s..4s+3``). A layer beyond its stage's depth has
    kernel, expand and branch all 0, so two equal networks always compare equal; for the same reason a layer
    whose branch mask lacks the MBConv bit (parallel variants) carries kernel 3 and expand 3, which it ignores.
    Non-parallel variants use branch 4 (MBConv only) on every present layer.

    Attributes:
        resolution: input image side in pixels.
        width_mult: width multiplier of the super-net the sub-network lives in.
        exit: for early-exit variants the exit used, 1..5, which is also the number of body stages run;
            ``None`` for single-exit variants (all 5 stages, then the final tail).
        depths: layers kept in each of the 5 stages, each in ``DEPTHS``.
        kernel_sizes: depthwise kernel of each of the 20 layers (``KERNEL_SIZES`` or 0 when skipped).
        expand_ratios: MBConv expand ratio of each layer (``EXPAND_RATIOS`` or 0 when skipped).
        branches: parallel branch mask of each layer (``BRANCH_MASKS`` or 0 when skipped).
    """

    resolution: int
    width_mult: float
    exit: int | None
    depths: tuple[int, ...]
    kernel_sizes: tuple[int, ...]
    expand_ratios: tuple[int, ...]
    branches: tuple[int, ...]

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise numpy/list inputs to plain ints and tuples once, here
        set_(self, "resolution", _as_int("resolution", self.resolution))
        if self.resolution < 1:
            raise ValueError(f"Arch.resolution must be >= 1, got {self.resolution}")
        set_(self, "width_mult", _as_float("width_mult", self.width_mult))
        if not math.isfinite(self.width_mult) or self.width_mult <= 0:
            raise ValueError(f"Arch.width_mult must be a positive number, got {self.width_mult}")
        if self.exit is not None:
            set_(self, "exit", _as_int("exit", self.exit))
            if not 1 <= self.exit <= N_EXITS:
                raise ValueError(f"Arch.exit must be None or in 1..{N_EXITS}, got {self.exit}")
        set_(self, "depths", _int_tuple("depths", self.depths, N_STAGES))
        for name in ("kernel_sizes", "expand_ratios", "branches"):
            set_(self, name, _int_tuple(name, getattr(self, name), N_LAYERS))
        self._check_layers()

    def _check_layers(self) -> None:
        for s, d in enumerate(self.depths):
            if d not in DEPTHS:
                raise ValueError(f"Arch.depths[{s}] = {d}: must be one of {DEPTHS}")
            for j in range(MAX_DEPTH):
                i = s * MAX_DEPTH + j
                k, e, b = self.kernel_sizes[i], self.expand_ratios[i], self.branches[i]
                where = f"Arch layer {i} (stage {s}, position {j})"
                if j >= d:
                    if (k, e, b) != (0, 0, 0):
                        raise ValueError(f"{where} is beyond the stage depth {d}: kernel/expand/branch must be "
                                         f"0/0/0, got {k}/{e}/{b}")
                    continue
                if k not in KERNEL_SIZES:
                    raise ValueError(f"{where}: kernel size {k} not in {KERNEL_SIZES}")
                if e not in EXPAND_RATIOS:
                    raise ValueError(f"{where}: expand ratio {e} not in {EXPAND_RATIOS}")
                if b not in BRANCH_MASKS:
                    raise ValueError(f"{where}: branch mask {b} not in {BRANCH_MASKS}")
                if not b & BRANCH_MBCONV and (k, e) != (_SKIP_KS, _SKIP_E):
                    raise ValueError(f"{where}: branch mask {b} has no MBConv branch, so kernel/expand must be the "
                                     f"canonical {_SKIP_KS}/{_SKIP_E}, got {k}/{e}")

    # ------------------------------------------------------------------------------------------------------------

    @property
    def stages_run(self) -> int:
        """Number of body stages executed: the exit for early-exit networks, else all 5."""
        return N_STAGES if self.exit is None else self.exit

    def active_layers(self) -> list[tuple[int, int, int]]:
        """The layers that execute, as ``(stage, position_in_stage, global_index)`` in forward order."""
        return [
            (s, j, s * MAX_DEPTH + j)
            for s in range(self.stages_run)
            for j in range(self.depths[s])
        ]

    # ------------------------------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able form with the full field names (the archive and report format)."""
        return {
            "resolution": self.resolution,
            "width_mult": self.width_mult,
            "exit": self.exit,
            "depths": list(self.depths),
            "kernel_sizes": list(self.kernel_sizes),
            "expand_ratios": list(self.expand_ratios),
            "branches": list(self.branches),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Arch:
        """Inverse of :meth:`to_json`; unknown or missing keys are errors, not silently dropped.

        Raises:
            ValueError: on a missing or unknown key or an invalid value.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"Arch.from_json: expected a mapping, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        unknown = [str(k) for k in data if k not in names]
        if missing or unknown:
            raise ValueError(f"Arch.from_json: missing keys {missing}, unknown keys {unknown}; expected {names}")
        return cls(**{n: data[n] for n in names})

    def to_ofa_dict(self, parallel: bool | None = None) -> dict[str, Any]:
        """The reference code's phenotype dict ``{'r', 'w', ['nd'], 'ks', 'e', ['nw'], 'd'}``.

        OFA's ``set_active_subnet`` wants a kernel and expand for all 20 blocks, so skipped layers are given 3/3
        (and branch 4); they are ignored because of ``d``.

        Args:
            parallel: whether to include ``'nw'``. Pass ``space.variant.parallel`` when known; ``None`` includes it
                only when some present layer has a branch mask other than 4, which cannot tell a parallel
                network whose masks are all 4 from a base one.

        Returns:
            The dict, with plain Python values.

        Raises:
            ValueError: when ``parallel`` is False but a present layer uses a mask other than 4.
        """
        non_mb = any(b not in (0, BRANCH_MBCONV) for b in self.branches)
        if parallel is None:
            parallel = non_mb
        elif not parallel and non_mb:
            raise ValueError("Arch.to_ofa_dict(parallel=False): the architecture uses parallel branch masks")
        out: dict[str, Any] = {"r": self.resolution, "w": self.width_mult}
        if self.exit is not None:
            out["nd"] = self.exit
        out["ks"] = [k or _SKIP_KS for k in self.kernel_sizes]
        out["e"] = [e or _SKIP_E for e in self.expand_ratios]
        if parallel:
            out["nw"] = [b or BRANCH_MBCONV for b in self.branches]
        out["d"] = list(self.depths)
        return out

    @classmethod
    def from_ofa_dict(cls, d: Mapping[str, Any], space: SearchSpace) -> Arch:
        """Read a reference-code phenotype dict into the canonical :class:`Arch` of ``space``.

        Values that cannot matter are normalised rather than rejected, because OFA dicts carry them: kernels and
        expands of skipped layers and of MBConv-less parallel layers, and the stages after an early exit.

        Args:
            d: the dict, as produced by :meth:`to_ofa_dict` or the reference code.
            space: the search space it belongs to (decides whether ``nd``/``nw`` are expected, and checks ``r``/``w``).

        Returns:
            The canonical architecture.

        Raises:
            ValueError: on missing/unknown keys, wrong lengths or values outside ``space``.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"Arch.from_ofa_dict: expected a mapping, got {type(d).__name__}")
        expected = {"r", "w", "ks", "e", "d"}
        if space.variant.early_exit:
            expected.add("nd")
        allowed = expected | {"nw"}
        missing = sorted(expected - set(d))
        if space.variant.parallel and "nw" not in d:
            missing.append("nw")
        unknown = sorted(str(k) for k in d if k not in allowed)
        if missing or unknown:
            raise ValueError(f"Arch.from_ofa_dict ({space.variant}): missing keys {missing}, unknown keys {unknown}")
        depths = _int_tuple("d", d["d"], N_STAGES)
        ks = _int_tuple("ks", d["ks"], N_LAYERS)
        es = _int_tuple("e", d["e"], N_LAYERS)
        nw = _int_tuple("nw", d["nw"], N_LAYERS) if "nw" in d else (BRANCH_MBCONV,) * N_LAYERS
        exit_ = _as_int("nd", d["nd"]) if space.variant.early_exit else None
        kernel_sizes, expand_ratios, branches = [], [], []
        for i in range(N_LAYERS):
            s, j = divmod(i, MAX_DEPTH)
            if j >= depths[s]:
                kernel_sizes.append(0)
                expand_ratios.append(0)
                branches.append(0)
            elif nw[i] & BRANCH_MBCONV or nw[i] not in BRANCH_MASKS:  # invalid masks are reported by Arch
                kernel_sizes.append(ks[i])
                expand_ratios.append(es[i])
                branches.append(nw[i])
            else:
                kernel_sizes.append(_SKIP_KS)
                expand_ratios.append(_SKIP_E)
                branches.append(nw[i])
        arch = cls(
            resolution=d["r"], width_mult=d["w"], exit=exit_, depths=depths, kernel_sizes=tuple(kernel_sizes),
            expand_ratios=tuple(expand_ratios), branches=tuple(branches),
        )
        return space.canonicalize(arch)
