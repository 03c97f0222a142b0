"""Integer genome of OFAv2 sub-networks: bounds, canonical form, repair, sampling and surrogate features.

The genome is the reference code's encoding (method.md §1.3)::

    [r_idx, w_idx, (nd_idx,) L1 .. L20]

``r_idx``/``w_idx`` index :attr:`SearchSpace.resolutions`/:attr:`SearchSpace.width_mults`, ``nd_idx = exit - 1``
exists only for early-exit variants, and each layer gene packs one layer's choices, 0 meaning "skipped"::

    non-parallel: code = 1 + 3·idx(e) + idx(ks)                 (1..9)
    parallel:     code = 1 + 9·pos(nw) + 3·idx(e) + idx(ks)     (1..63), pos = index in BRANCH_MASKS

Unlike the reference, every genome the pipeline stores is **canonical**, so that one network has exactly one
genome (and one :meth:`SearchSpace.arch_id`), and decoding is deterministic (the reference draws random kernels
for zero genes, method.md §7.2 item 3). Canonical means:

* every gene is an integer within its bounds (layers 1–2 of a stage are never 0);
* within a stage, zeros only trail, so the depth is the number of non-zero codes;
* early exit: the stages the exit skips (index >= exit) are written ``(1, 1, 0, 0)``;
* parallel: a layer whose mask lacks the MBConv bit carries kernel/expand index 0.

:meth:`SearchSpace.repair` maps any real vector to a canonical genome; it is what search operators call.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from nat2.config import SuperNetConfig
from nat2.space.arch import Arch
from nat2.space.codes import canonical_codes, layer_choice, layer_code, n_layer_codes
from nat2.space.macro import (
    MAX_DEPTH,
    MIN_DEPTH,
    N_EXITS,
    N_LAYERS,
    N_STAGES,
)
from nat2.space.variants import Variant

__all__ = ["ENCODINGS", "POLICIES", "REPAIR_MODES", "SearchSpace"]

REPAIR_MODES = ("fill", "push")
POLICIES = ("uniform", "arch_space", "uniform_depth")
ENCODINGS = ("integer", "one_hot")
_ID_LENGTH = 12


@dataclass(frozen=True)
class SearchSpace:
    """The genome space of one OFAv2 variant over given resolutions and width multipliers.

    Attributes:
        variant: the super-net variant (a name is accepted and converted).
        resolutions: candidate input resolutions, strictly increasing (``r_idx`` indexes them).
        width_mults: width multipliers, strictly increasing; each is its own super-net (``w_idx``).
    """

    variant: Variant
    resolutions: tuple[int, ...]
    width_mults: tuple[float, ...]
    _lb: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _ub: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _canon: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if isinstance(self.variant, str):
            set_(self, "variant", Variant.from_name(self.variant))
        if not isinstance(self.variant, Variant):
            raise ValueError(f"SearchSpace.variant: expected a Variant or a variant name, got {self.variant!r}")
        res = tuple(self.resolutions)
        if not res or any(isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1 for r in res):
            raise ValueError(f"SearchSpace.resolutions: expected positive integers, got {self.resolutions!r}")
        if any(b <= a for a, b in itertools.pairwise(res)):
            raise ValueError(f"SearchSpace.resolutions must be strictly increasing, got {res}")
        wms = tuple(self.width_mults)
        if not wms or any(isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0 for w in wms):
            raise ValueError(f"SearchSpace.width_mults: expected positive numbers, got {self.width_mults!r}")
        if any(b <= a for a, b in itertools.pairwise(wms)):
            raise ValueError(f"SearchSpace.width_mults must be strictly increasing, got {wms}")
        set_(self, "resolutions", tuple(int(r) for r in res))
        set_(self, "width_mults", tuple(float(w) for w in wms))
        head_lb = [0, 0] + ([0] if self.variant.early_exit else [])
        head_ub = [len(res) - 1, len(wms) - 1] + ([N_EXITS - 1] if self.variant.early_exit else [])
        stage_lb = [1] * MIN_DEPTH + [0] * (MAX_DEPTH - MIN_DEPTH)
        set_(self, "_lb", tuple(head_lb + stage_lb * N_STAGES))
        set_(self, "_ub", tuple(head_ub + [self.n_codes] * N_LAYERS))
        set_(self, "_canon", canonical_codes(self.variant.parallel))

    @classmethod
    def from_config(cls, cfg: SuperNetConfig) -> SearchSpace:
        """The space searched over the super-net that ``cfg`` describes."""
        return cls(Variant.from_name(cfg.variant, cfg.stem_stride), tuple(cfg.resolutions), tuple(cfg.width_mults))

    # -- shape -----------------------------------------------------------------------------------------------------

    @property
    def n_var(self) -> int:
        """Genome length: 22, or 23 with the exit gene."""
        return self.layer_offset + N_LAYERS

    @property
    def n_codes(self) -> int:
        """Largest layer code: 9, or 63 for parallel variants."""
        return n_layer_codes(self.variant.parallel)

    @property
    def layer_offset(self) -> int:
        """Index of the first layer gene (2, or 3 with the exit gene)."""
        return 3 if self.variant.early_exit else 2

    @property
    def exit_gene(self) -> int | None:
        """Index of the exit gene ``nd_idx``, or ``None`` for single-exit variants."""
        return 2 if self.variant.early_exit else None

    def lower_bound(self) -> npt.NDArray[np.int64]:
        """Inclusive lower bound of every gene (a fresh array)."""
        return np.array(self._lb, dtype=np.int64)

    def upper_bound(self) -> npt.NDArray[np.int64]:
        """Inclusive upper bound of every gene (a fresh array)."""
        return np.array(self._ub, dtype=np.int64)

    def gene_names(self) -> list[str]:
        """Readable name of each gene, for error messages and feature labels."""
        head = ["r_idx", "w_idx"] + (["nd_idx"] if self.variant.early_exit else [])
        return head + [f"L{i + 1}" for i in range(N_LAYERS)]

    # -- canonical form --------------------------------------------------------------------------------------------

    def _matrix(self, X: npt.ArrayLike, what: str) -> tuple[npt.NDArray[np.float64], bool]:
        arr = np.asarray(X)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(f"{what}: expected a numeric array, got dtype {arr.dtype}")
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.n_var:
            raise ValueError(f"{what}: expected shape [{self.n_var}] or [n, {self.n_var}] for {self.variant}, "
                             f"got {list(arr.shape)}")
        return np.atleast_2d(arr.astype(np.float64)), arr.ndim == 1

    def repair(self, X: npt.ArrayLike, mode: Literal["fill", "push"] = "fill") -> npt.NDArray[np.int64]:
        """Map genomes to canonical genomes (vectorised; idempotent; canonical genomes are unchanged).

        Steps: round and clip every gene to its bounds; per stage either ``push`` (move the non-zero codes to the
        front, keeping their order: NAT) or ``fill`` (zero everything after the first zero: NATv2); then write
        the stages an early exit skips as ``(1, 1, 0, 0)`` and drop the kernel/expand of MBConv-less masks.

        Args:
            X: one genome ``[n_var]`` or a batch ``[n, n_var]``, any real values.
            mode: ``"fill"`` or ``"push"``.

        Returns:
            Canonical int64 genomes with the shape of ``X``.

        Raises:
            ValueError: on a wrong shape, a non-finite value or an unknown mode.
        """
        if mode not in REPAIR_MODES:
            raise ValueError(f"repair mode must be one of {REPAIR_MODES}, got {mode!r}")
        G, one = self._matrix(X, "repair")
        if not np.isfinite(G).all():
            raise ValueError("repair: genomes contain NaN or infinite values")
        G = np.clip(np.rint(G), self.lower_bound(), self.upper_bound()).astype(np.int64)
        L = G[:, self.layer_offset:].reshape(-1, N_STAGES, MAX_DEPTH)
        if mode == "push":
            order = np.argsort(L == 0, axis=2, kind="stable")
            L = np.take_along_axis(L, order, axis=2)
        else:
            L = np.where(np.logical_or.accumulate(L == 0, axis=2), 0, L)
        if self.variant.early_exit:
            skipped = np.arange(N_STAGES)[None, :] >= G[:, self.exit_gene, None] + 1
            L = np.where(skipped[:, :, None], self._filler_stage()[None, None, :], L)
        G[:, self.layer_offset:] = np.asarray(self._canon, dtype=np.int64)[L.reshape(-1, N_LAYERS)]
        return G[0] if one else G

    @staticmethod
    def _filler_stage() -> npt.NDArray[np.int64]:
        return np.array([1] * MIN_DEPTH + [0] * (MAX_DEPTH - MIN_DEPTH), dtype=np.int64)

    def is_canonical(self, X: npt.ArrayLike) -> npt.NDArray[np.bool_] | np.bool_:
        """Whether each genome is canonical: bool ``[n]``, or a numpy bool for one 1-D genome.

        Raises:
            ValueError: on a wrong shape (a malformed batch is a bug, not a non-canonical genome).
        """
        G, one = self._matrix(X, "is_canonical")
        safe = np.where(np.isfinite(G), G, -1.0)  # -1 is below every bound, so repair changes it
        ok = (self.repair(safe) == G).all(axis=1)
        return ok[0] if one else ok

    def explain(self, genome: npt.ArrayLike) -> str:
        """Why a genome is not canonical ("canonical" when it is): names the first rule it breaks."""
        G, one = self._matrix(genome, "explain")
        if not one and G.shape[0] != 1:
            raise ValueError("explain: expects one genome")
        g = G[0]
        names, lb, ub = self.gene_names(), self._lb, self._ub
        for i, v in enumerate(g):
            if not math.isfinite(v) or v != round(v):
                return f"gene {names[i]} = {v!r} is not an integer"
            if not lb[i] <= v <= ub[i]:
                return f"gene {names[i]} = {int(v)} is outside [{lb[i]}, {ub[i]}]"
        codes = g[self.layer_offset:].astype(np.int64).reshape(N_STAGES, MAX_DEPTH)
        exit_ = int(g[self.exit_gene]) + 1 if self.variant.early_exit else N_STAGES
        for s in range(N_STAGES):
            stage = tuple(int(c) for c in codes[s])
            if s >= exit_ and stage != tuple(self._filler_stage()):
                return (f"stage {s} is not run with exit {exit_}, so its codes must be "
                        f"{tuple(int(c) for c in self._filler_stage())}, got {stage}")
            zero = [c == 0 for c in stage]
            if any(z and not later for j, z in enumerate(zero) for later in zero[j + 1:]):
                return f"stage {s} codes {stage} have a zero before a non-zero code (zeros must trail)"
            for j, c in enumerate(stage):
                if self._canon[c] != c:
                    return (f"layer L{s * MAX_DEPTH + j + 1} code {c} has a branch mask without MBConv; its "
                            f"canonical code is {self._canon[c]}")
        return "canonical"

    # -- genome <-> Arch -------------------------------------------------------------------------------------------

    def decode(self, genome: npt.ArrayLike) -> Arch:
        """The architecture of one canonical genome.

        Raises:
            ValueError: on a wrong length or a non-canonical genome (with the rule it breaks).
        """
        G, one = self._matrix(genome, "decode")
        if not one:
            raise ValueError(f"decode: expects one genome of length {self.n_var}; use decode_many for a batch")
        if not self.is_canonical(G[0]):
            raise ValueError(f"decode: genome {G[0].tolist()} is not canonical for {self.variant}: "
                             f"{self.explain(G[0])}; pass it through SearchSpace.repair first")
        g = G[0].astype(np.int64)
        layers = [layer_choice(int(c), self.variant.parallel) for c in g[self.layer_offset:]]
        return Arch(
            resolution=self.resolutions[g[0]],
            width_mult=self.width_mults[g[1]],
            exit=int(g[self.exit_gene]) + 1 if self.variant.early_exit else None,
            depths=tuple(int(d) for d in (g[self.layer_offset:].reshape(N_STAGES, MAX_DEPTH) > 0).sum(axis=1)),
            kernel_sizes=tuple(k for k, _, _ in layers),
            expand_ratios=tuple(e for _, e, _ in layers),
            branches=tuple(b for _, _, b in layers),
        )

    def decode_many(self, X: npt.ArrayLike) -> list[Arch]:
        """:meth:`decode` of every row of ``[n, n_var]``."""
        G, _ = self._matrix(X, "decode_many")
        return [self.decode(g) for g in G]

    def _encode_loose(self, arch: Arch) -> npt.NDArray[np.int64]:
        if not isinstance(arch, Arch):
            raise ValueError(f"encode: expected an Arch, got {type(arch).__name__}")
        if arch.resolution not in self.resolutions:
            raise ValueError(f"encode: resolution {arch.resolution} not in the space's {self.resolutions}")
        w_idx = [i for i, w in enumerate(self.width_mults) if math.isclose(w, arch.width_mult, rel_tol=1e-9)]
        if not w_idx:
            raise ValueError(f"encode: width multiplier {arch.width_mult} not in the space's {self.width_mults}")
        if (arch.exit is None) == self.variant.early_exit:
            need = "an exit in 1..5" if self.variant.early_exit else "exit=None"
            raise ValueError(f"encode: {self.variant} architectures need {need}, got exit={arch.exit}")
        head = [self.resolutions.index(arch.resolution), w_idx[0]]
        if self.variant.early_exit:
            head.append(arch.exit - 1)
        codes = []
        for i, (k, e, b) in enumerate(zip(arch.kernel_sizes, arch.expand_ratios, arch.branches, strict=True)):
            try:
                codes.append(0 if b == 0 else layer_code(k, e, b, self.variant.parallel))
            except ValueError as exc:
                raise ValueError(f"encode: layer {i} of a {self.variant} architecture: {exc}") from None
        return np.array(head + codes, dtype=np.int64)

    def encode(self, arch: Arch) -> npt.NDArray[np.int64]:
        """The canonical genome of an architecture (exact inverse of :meth:`decode`).

        Raises:
            ValueError: when ``arch`` does not belong to this space, or is not in canonical form (only possible
                for early exit: stages after the exit must be depth 2 of code 1; see :meth:`canonicalize`).
        """
        g = self._encode_loose(arch)
        if not self.is_canonical(g):
            raise ValueError(f"encode: architecture is not canonical for {self.variant}: {self.explain(g)}; "
                             "SearchSpace.canonicalize(arch) gives its canonical equivalent")
        return g

    def encode_many(self, archs: Iterable[Arch]) -> npt.NDArray[np.int64]:
        """:meth:`encode` of every architecture, as ``[n, n_var]``."""
        rows = [self.encode(a) for a in archs]
        return np.array(rows, dtype=np.int64).reshape(len(rows), self.n_var)

    def canonicalize(self, arch: Arch) -> Arch:
        """The canonical architecture computing the same network (only the exit-skipped stages can change).

        Raises:
            ValueError: when ``arch`` does not belong to this space.
        """
        return self.decode(self.repair(self._encode_loose(arch)))

    def active_genes(self, X: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Which genes of canonical genomes decide the network, as bool ``[n, n_var]`` (``[n_var]`` for one).

        Canonical genomes carry filler that no network reads: the stages an early exit skips are written
        ``(1, 1, 0, 0)``, and a stage's fourth layer gene is 0 whenever its third is (zeros trail). A statistic
        over genes, such as adaptation's distribution, must skip that filler, or the later stages look as if most
        networks chose the filler's codes and depths. Active are: the head genes (resolution, width, exit); in
        every stage the exit runs, the first two layer genes, and each further layer gene whose predecessors in
        the stage are all non-zero (the gene that decides whether the stage grows by one more layer).

        Raises:
            ValueError: on a wrong shape or a non-canonical genome.
        """
        G, one = self._integral(X, "active_genes")
        ok = self.is_canonical(G)
        if not np.all(ok):
            bad = int(np.flatnonzero(~np.atleast_1d(ok))[0])
            raise ValueError(f"active_genes: genome {bad} is not canonical: {self.explain(G[bad])}")
        L = G[:, self.layer_offset:].reshape(-1, N_STAGES, MAX_DEPTH)
        prefix_nonzero = np.ones_like(L, dtype=bool)
        prefix_nonzero[:, :, 1:] = np.logical_and.accumulate(L[:, :, :-1] != 0, axis=2)
        runs = np.ones((G.shape[0], N_STAGES), dtype=bool)
        if self.variant.early_exit:
            runs = np.arange(N_STAGES)[None, :] <= G[:, self.exit_gene, None]
        mask = np.ones(G.shape, dtype=bool)
        mask[:, self.layer_offset:] = (prefix_nonzero & runs[:, :, None]).reshape(-1, N_LAYERS)
        return mask[0] if one else mask

    # -- reference architectures -----------------------------------------------------------------------------------

    def min_genome(self) -> npt.NDArray[np.int64]:
        """Smallest resolution, first width, exit 1, every stage depth 2 of code 1 (the lower bound)."""
        return self.lower_bound()

    def max_genome(self) -> npt.NDArray[np.int64]:
        """Largest resolution and width, exit 5, every layer code ``n_codes`` (the upper bound)."""
        return self.upper_bound()

    def min_arch(self) -> Arch:
        """:meth:`min_genome` decoded."""
        return self.decode(self.min_genome())

    def max_arch(self) -> Arch:
        """:meth:`max_genome` decoded."""
        return self.decode(self.max_genome())

    # -- sampling --------------------------------------------------------------------------------------------------

    def sample(
        self,
        rng: np.random.Generator,
        n: int,
        policy: Literal["uniform", "arch_space", "uniform_depth"] = "arch_space",
    ) -> npt.NDArray[np.int64]:
        """Draw ``n`` canonical genomes (duplicates possible).

        Policies:

        * ``"uniform"`` (NAT): every gene uniform within its bounds, then ``push`` repair; stage depths come out
          about 1 %/18 %/81 % for 2/3/4.
        * ``"arch_space"`` (NATv2's initialisation): layers 3–4 of every stage are 0 with probability 1/3, else
          uniform over the non-zero codes; other genes uniform; then ``fill`` repair, so stage depths 2/3/4 come
          out 1/3, 2/9, 4/9.
        * ``"uniform_depth"``: each stage's depth uniform in {2, 3, 4}, its codes uniform.

        Canonicalisation then makes architectures with an early exit (or MBConv-less parallel masks) more likely
        than their share of codes suggests, as in the reference, where those genes are simply ignored.

        Args:
            rng: the only source of randomness.
            n: number of genomes.
            policy: one of :data:`POLICIES`.

        Returns:
            int64 ``[n, n_var]``.

        Raises:
            ValueError: on an unknown policy, a negative ``n`` or a ``rng`` that is not a numpy Generator.
        """
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"sample: rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"sample: n must be a non-negative integer, got {n!r}")
        if policy not in POLICIES:
            raise ValueError(f"sample: policy must be one of {POLICIES}, got {policy!r}")
        lb, ub = self.lower_bound(), self.upper_bound()
        X = rng.integers(lb, ub + 1, size=(int(n), self.n_var), dtype=np.int64)
        layers = X[:, self.layer_offset:].reshape(-1, N_STAGES, MAX_DEPTH)
        if policy == "uniform":
            return self.repair(X, "push")
        if policy == "arch_space":
            deep = layers[:, :, MIN_DEPTH:]
            deep[...] = np.where(rng.random(deep.shape) < 1 / 3, 0,
                                 rng.integers(1, self.n_codes + 1, size=deep.shape, dtype=np.int64))
        else:
            depth = rng.integers(MIN_DEPTH, MAX_DEPTH + 1, size=(int(n), N_STAGES, 1))
            codes = rng.integers(1, self.n_codes + 1, size=layers.shape, dtype=np.int64)
            layers[...] = np.where(np.arange(MAX_DEPTH)[None, None, :] < depth, codes, 0)
        X[:, self.layer_offset:] = layers.reshape(-1, N_LAYERS)
        return self.repair(X, "fill")

    # -- surrogate features and identity ---------------------------------------------------------------------------

    def _integral(self, X: npt.ArrayLike, what: str) -> tuple[npt.NDArray[np.int64], bool]:
        G, one = self._matrix(X, what)
        lb, ub = self.lower_bound(), self.upper_bound()
        if not (np.isfinite(G).all() and (G == np.rint(G)).all() and (G >= lb).all() and (G <= ub).all()):
            raise ValueError(f"{what}: genomes must be integers within the space's bounds; use repair first")
        return G.astype(np.int64), one

    def n_features(self, encoding: Literal["integer", "one_hot"] = "integer") -> int:
        """Width of :meth:`features` (one-hot: 195 base / 200 EE / 1275 parallel / 1280 EE parallel at 3 r, 2 w)."""
        if encoding not in ENCODINGS:
            raise ValueError(f"feature encoding must be one of {ENCODINGS}, got {encoding!r}")
        if encoding == "integer":
            return self.n_var
        return int((self.upper_bound() - self.lower_bound() + 1).sum())

    def features(
        self, X: npt.ArrayLike, encoding: Literal["integer", "one_hot"] = "integer"
    ) -> npt.NDArray[np.float64]:
        """Surrogate inputs: the genome as floats (NATv2), or per-gene one-hot over ``[lb..ub]`` (NAT).

        Args:
            X: ``[n, n_var]`` (or one genome) of in-bounds integers.
            encoding: ``"integer"`` or ``"one_hot"``.

        Returns:
            float64 ``[n, n_features(encoding)]`` (1-D for one genome).

        Raises:
            ValueError: on an unknown encoding, a wrong shape or out-of-bounds genes.
        """
        width = self.n_features(encoding)
        G, one = self._integral(X, "features")
        if encoding == "integer":
            out = G.astype(np.float64)
        else:
            lb = self.lower_bound()
            sizes = self.upper_bound() - lb + 1
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            out = np.zeros((G.shape[0], width), dtype=np.float64)
            out[np.arange(G.shape[0])[:, None], starts[None, :] + G - lb[None, :]] = 1.0
        return out[0] if one else out

    def arch_id(self, genome: npt.ArrayLike) -> str:
        """Stable id of a canonical genome: first 12 hex digits of sha256 of ``"g0,g1,...,gN"``.

        The id does not include the variant: archives are per super-net, and ``se_base`` and ``se_dense``
        genomes coincide.

        Raises:
            ValueError: when the genome is not canonical.
        """
        G, one = self._matrix(genome, "arch_id")
        if not one:
            raise ValueError("arch_id: expects one genome; use arch_ids for a batch")
        return self.arch_ids(G)[0]

    def arch_ids(self, X: npt.ArrayLike) -> list[str]:
        """:meth:`arch_id` of every row of ``[n, n_var]``."""
        G, _ = self._matrix(X, "arch_ids")
        ok = self.is_canonical(G)
        if not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            raise ValueError(f"arch_ids: genome {bad} is not canonical: {self.explain(G[bad])}")
        return [
            hashlib.sha256(",".join(str(v) for v in row).encode("ascii")).hexdigest()[:_ID_LENGTH]
            for row in G.astype(np.int64).tolist()
        ]
