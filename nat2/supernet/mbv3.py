"""The OFAv2 MobileNetV3 super-network (one width multiplier) and the set of widths a run trains.

Macro-structure (shared/design/method.md §1.1, OFA's ``OFAMobileNetV3``): a fixed stem and first block, five
elastic stages of up to four MBConv layers (kernel {3,5,7}, expand {3,4,6}, depth {2,3,4}), and a classifier
head. The OFAv2 variants (Sarti et al., "Enhancing Once-For-All", arXiv 2302.01888) add dense skip connections
inside stages (``dense``), two static branches in parallel with every MBConv (``parallel``) and an exit head
after every stage (``early exit``); see :class:`nat2.space.Variant`.

The active subnet is an explicit :class:`~nat2.space.Arch` set with :meth:`SuperNet.set_active` (instance state;
nothing is stored on classes or modules globally), and :meth:`SuperNet.extract` returns a plain static module that
computes exactly what the super-net computes for that arch.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from nat2.config import SuperNetConfig
from nat2.space import (
    MAX_DEPTH,
    N_STAGES,
    STAGE_ACTS,
    STAGE_SE,
    STAGE_STRIDES,
    Arch,
    SearchSpace,
    Variant,
    exit_widths,
    stage_widths,
    stem_width,
)
from nat2.supernet._dynamic import DynamicMBConv, DynamicStage, LayerCfg, LayerSpec
from nat2.supernet._static import ConvBnAct, ExitHead, MBConv, MultiExitNet, SubNet

__all__ = ["SuperNet", "SuperNetSet"]


class SuperNet(nn.Module):
    """The super-net of one width multiplier."""

    def __init__(self, variant: Variant, width_mult: float, num_classes: int, dropout: float = 0.1,
                 bn_momentum: float = 0.1, bn_eps: float = 1e-5, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.variant = variant
        self.width_mult = float(width_mult)
        self.num_classes = num_classes
        c0, widths = stem_width(width_mult), stage_widths(width_mult)
        self.stem = ConvBnAct(3, c0, 3, variant.stem_stride, act="h_swish")
        self.first_block = MBConv(c0, c0, c0, 3, 1, "relu", None, expand=False)
        stages = []
        in_chs = c0
        for s in range(N_STAGES):
            out = widths[s]
            specs = [LayerSpec(in_chs if j == 0 else out, out, STAGE_STRIDES[s] if j == 0 else 1, STAGE_ACTS[s],
                               STAGE_SE[s]) for j in range(MAX_DEPTH)]
            stages.append(DynamicStage(specs, variant.parallel, variant.dense))
            in_chs = out
        self.stages = nn.ModuleList(stages)
        exits = range(1, N_STAGES + 1) if variant.early_exit else (N_STAGES,)
        self.heads = nn.ModuleDict({
            str(e): ExitHead(widths[e - 1], *exit_widths(width_mult, e), num_classes, dropout) for e in exits
        })
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum, m.eps = bn_momentum, bn_eps
        self.reset_parameters(generator)
        self._active: Arch | None = None

    # ---------------------------------------------------------------- parameters
    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """OFA's "he_fout" initialisation, drawn from ``generator`` (never the global RNG when one is given)."""
        for m in self.modules():
            w = getattr(m, "weight", None)
            if isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
            elif isinstance(m, nn.Linear):
                bound = 1.0 / m.in_features ** 0.5
                m.weight.uniform_(-bound, bound, generator=generator)
                nn.init.zeros_(m.bias)
            elif isinstance(w, nn.Parameter) and w.dim() == 4:
                nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=generator)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
            for name, p in m.named_parameters(recurse=False):
                if name.endswith("_matrix"):
                    p.copy_(torch.eye(p.shape[0]))

    # ---------------------------------------------------------------- active subnet
    def _check_arch(self, arch: Arch) -> None:
        if abs(arch.width_mult - self.width_mult) > 1e-9:
            raise ValueError(f"arch has width {arch.width_mult}, this super-net is width {self.width_mult}")
        if (arch.exit is not None) != self.variant.early_exit:
            raise ValueError(f"arch exit {arch.exit!r} does not fit variant {self.variant.name}")

    def set_active(self, arch: Arch) -> None:
        """Make ``arch`` the subnet that :meth:`forward` computes."""
        self._check_arch(arch)
        self._active = arch

    @property
    def active(self) -> Arch:
        """The active arch (an error until :meth:`set_active` is called: no silent default subnet)."""
        if self._active is None:
            raise RuntimeError("no active arch: call set_active(arch) first")
        return self._active

    @staticmethod
    def layer_cfgs(arch: Arch, stage: int) -> list[LayerCfg]:
        """Elastic choices of the executed layers of ``stage``."""
        first = stage * MAX_DEPTH
        return [LayerCfg(arch.kernel_sizes[i], arch.expand_ratios[i], arch.branches[i])
                for i in range(first, first + arch.depths[stage])]

    def _body(self, x: torch.Tensor, arch: Arch) -> Iterator[torch.Tensor]:
        """Yield each executed stage's output."""
        x = self.first_block(self.stem(x))
        for s in range(arch.stages_run):
            x = self.stages[s](x, self.layer_cfgs(arch, s))
            yield x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the active subnet (single exit: the arch's exit for early-exit variants)."""
        arch = self.active
        *_, h = self._body(x, arch)
        return self.heads[str(arch.stages_run)](h)

    def forward_all_exits(self, x: torch.Tensor, arch: Arch | None = None) -> list[torch.Tensor]:
        """Logits of every exit (the ENS-KD teacher), running all five stages with ``arch``'s layer choices."""
        arch = arch or self.active
        full = arch if arch.exit in (None, N_STAGES) else dataclasses.replace(arch, exit=N_STAGES)
        outs = []
        for s, h in enumerate(self._body(x, full), start=1):
            if str(s) in self.heads:
                outs.append(self.heads[str(s)](h))
        return outs

    # ---------------------------------------------------------------- extraction
    def extract(self, arch: Arch | None = None, output_weights: Sequence[float] | None = None
                ) -> SubNet | MultiExitNet:
        """A static copy of ``arch`` (default: the active one) with no dynamic code.

        The copy owns sliced weights, the baked kernel transformations and the BN statistics of the super-net;
        recalibrate its BN before evaluating it. With ``output_weights`` (one per exit ``1..nd``; early-exit
        variants) the copy is AEP's :class:`MultiExitNet` with every exit head up to the arch's exit.
        """
        arch = arch or self.active
        self._check_arch(arch)
        stages = [self.stages[s].to_static(self.layer_cfgs(arch, s)) for s in range(arch.stages_run)]
        if output_weights is not None:
            if not self.variant.early_exit:
                raise ValueError(f"a multi-exit network needs an early-exit variant, not {self.variant.name}")
            heads = [copy.deepcopy(self.heads[str(e)]) for e in range(1, arch.stages_run + 1)]
            sub = MultiExitNet(copy.deepcopy(self.stem), copy.deepcopy(self.first_block), stages, heads,
                               output_weights, arch.to_json())
        else:
            sub = SubNet(copy.deepcopy(self.stem), copy.deepcopy(self.first_block), stages,
                         copy.deepcopy(self.heads[str(arch.stages_run)]), arch.to_json())
        p = next(self.parameters())
        sub.to(device=p.device, dtype=p.dtype)
        return sub.train(self.training)

    def reorder_channels(self, expand_stage: int = 0) -> None:
        """Importance-sort every MBConv's hidden channels (before each elastic-expand phase)."""
        for m in self.modules():
            if isinstance(m, DynamicMBConv):
                m.reorder_channels(expand_stage)


class SuperNetSet(nn.Module):
    """The super-nets of one run, one per width multiplier, with one checkpoint and one content hash."""

    def __init__(self, space: SearchSpace, num_classes: int, dropout: float = 0.1, bn_momentum: float = 0.1,
                 bn_eps: float = 1e-5, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.space = space
        self.num_classes = num_classes
        self.nets = nn.ModuleDict({
            self.key(w): SuperNet(space.variant, w, num_classes, dropout, bn_momentum, bn_eps, generator)
            for w in space.width_mults
        })

    @classmethod
    def from_config(cls, cfg: SuperNetConfig, num_classes: int,
                    generator: torch.Generator | None = None) -> SuperNetSet:
        """Build the super-nets that ``supernet`` params describe."""
        return cls(SearchSpace.from_config(cfg), num_classes, cfg.dropout, cfg.bn_momentum, cfg.bn_eps, generator)

    @staticmethod
    def key(width_mult: float) -> str:
        """ModuleDict key of a width: ``w100`` for 1.0, ``w120`` for 1.2 (module names cannot hold dots)."""
        return f"w{round(float(width_mult) * 100):03d}"

    def net(self, arch_or_width: Arch | float) -> SuperNet:
        """The super-net that serves an arch (or a width multiplier)."""
        w = arch_or_width.width_mult if isinstance(arch_or_width, Arch) else arch_or_width
        key = self.key(w)
        if key not in self.nets:
            raise ValueError(f"width {w} is not one of this run's width_mults {list(self.space.width_mults)}")
        return self.nets[key]

    def extract(self, arch: Arch, output_weights: Sequence[float] | None = None) -> SubNet | MultiExitNet:
        """Static subnet of ``arch`` from the super-net of its width (multi-exit with ``output_weights``)."""
        return self.net(arch).extract(arch, output_weights)

    def max_arch(self) -> Arch:
        """The largest subnet of the run (largest resolution and width, every dimension at its maximum)."""
        return self.space.max_arch()

    def min_arch(self) -> Arch:
        """The smallest subnet of the run."""
        return self.space.min_arch()

    def sample(self, rng: np.random.Generator, policy: str = "uniform") -> Arch:
        """One canonical subnet drawn with a :meth:`nat2.space.SearchSpace.sample` policy from ``rng``."""
        return self.space.decode(self.space.sample(rng, 1, policy)[0])

    def content_hash(self, length: int = 16) -> str:
        """sha256 of every parameter and buffer (names, shapes, dtypes, bytes): identifies trained weights."""
        h = hashlib.sha256()
        if self.space.variant.stem_stride != 2:  # same weights, other network: stride-2 hashes stay as they were
            h.update(f"stem_stride={self.space.variant.stem_stride};".encode())
        for name, t in sorted(self.state_dict().items()):
            t = t.detach().cpu().contiguous()
            h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()[:length]
