"""Static building blocks: what an extracted subnet is made of (plain ``nn.Conv2d``/``BatchNorm2d``/``Linear``).

The super-net uses the same classes for its fixed parts (stem, first block, exit heads, the static parallel
branches), so extraction of those parts is a plain copy, and the dense-connection rule is one function
(:func:`stage_forward`) shared by the dynamic and the static stage so both compute the same sums in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from nat2.supernet._ops import build_act

__all__ = [
    "ConvBnAct",
    "ExitHead",
    "MBConv",
    "MultiExitNet",
    "ParallelLayer",
    "SqueezeExcite",
    "Stage",
    "SubNet",
    "Transformation",
    "stage_forward",
]


def stage_forward(x: torch.Tensor, layers: Sequence[Callable[[torch.Tensor], torch.Tensor]],
                  dense: bool) -> torch.Tensor:
    """Run a stage's layers, with OFAv2 dense skip connections when ``dense``.

    With ``y_0`` the stage input and ``y_k`` layer k's output (1-based), layer k's input is
    ``y_{k-1} + y_1 + ... + y_{k-3}`` and the stage output for depth D is ``y_D + y_1 + ... + y_{D-2}``
    (``y_{k-2}`` is already carried by layer k-1's residual; ``y_0`` is never added since its shape differs).
    """
    outs: list[torch.Tensor] = []
    h = x
    for i, layer in enumerate(layers):
        if dense:
            for skip in outs[: max(i - 2, 0)]:
                h = h + skip
        h = layer(h)
        outs.append(h)
    if dense:
        for skip in outs[: max(len(outs) - 2, 0)]:
            h = h + skip
    return h


class ConvBnAct(nn.Sequential):
    """Convolution (no bias) + BatchNorm + optional activation, "same" padding."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
                 act: str | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        if act is not None:
            self.act = build_act(act)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: relu between two biased 1x1 convs, hard-sigmoid gate."""

    def __init__(self, chs: int, mid: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(chs, mid, 1, bias=True)
        self.expand = nn.Conv2d(mid, chs, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rescale the channels of ``x``."""
        y = x.mean((2, 3), keepdim=True)
        y = torch.nn.functional.relu(self.reduce(y))
        return x * torch.nn.functional.hardsigmoid(self.expand(y))


class MBConv(nn.Module):
    """Inverted-bottleneck block: 1x1 expand (absent when mid == in), depthwise kxk, optional SE, 1x1 project."""

    def __init__(self, in_chs: int, out_chs: int, mid_chs: int, kernel_size: int, stride: int, act: str,
                 se_mid: int | None, expand: bool = True) -> None:
        super().__init__()
        self.expand = ConvBnAct(in_chs, mid_chs, 1, act=act) if expand else None
        self.dw = ConvBnAct(mid_chs, mid_chs, kernel_size, stride, groups=mid_chs, act=act)
        self.se = SqueezeExcite(mid_chs, se_mid) if se_mid else None
        self.project = ConvBnAct(mid_chs, out_chs, 1)
        self.residual = stride == 1 and in_chs == out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Block output (with the identity shortcut when shapes allow)."""
        y = self.expand(x) if self.expand is not None else x
        y = self.dw(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return y + x if self.residual else y


class Transformation(nn.Module):
    """OFAv2's "TransformationLayer" branch: max-pool (stride > 1), 1x1 conv if widths differ, BN, activation."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, act: str) -> None:
        super().__init__()
        # ceil_mode keeps the pooled side equal to the strided convolutions' (H - 1) // s + 1 on odd sides
        self.pool = nn.MaxPool2d(stride, stride, ceil_mode=True) if stride > 1 else None
        self.conv = nn.Conv2d(in_chs, out_chs, 1, bias=False) if in_chs != out_chs else None
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = build_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cheap shape-matching path."""
        if self.pool is not None:
            x = self.pool(x)
        if self.conv is not None:
            x = self.conv(x)
        return self.act(self.bn(x))


class ParallelLayer(nn.Module):
    """An OFAv2 "level": the sum of its active branches (MBConv, 1x1 conv, transformation)."""

    def __init__(self, branches: dict[str, nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleDict(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of the branch outputs, in the fixed order mbconv, conv1x1, transform."""
        out = None
        for branch in self.branches.values():
            y = branch(x)
            out = y if out is None else out + y
        return out


class Stage(nn.Module):
    """A static stage: its layers, joined by dense skip connections when the variant has them."""

    def __init__(self, layers: Sequence[nn.Module], dense: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dense = dense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stage output."""
        return stage_forward(x, list(self.layers), self.dense)


class ExitHead(nn.Module):
    """Classifier head: 1x1 expand + BN + h_swish, global pool, 1x1 mix (no BN) + h_swish, dropout, linear."""

    def __init__(self, in_chs: int, feat_chs: int, last_chs: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.expand = ConvBnAct(in_chs, feat_chs, 1, act="h_swish")
        self.mix = nn.Conv2d(feat_chs, last_chs, 1, bias=False)
        self.mix_act = nn.Hardswish(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(last_chs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits."""
        x = self.expand(x).mean((2, 3), keepdim=True)
        x = self.mix_act(self.mix(x)).flatten(1)
        return self.classifier(self.dropout(x))


class SubNet(nn.Module):
    """A plain static network extracted from a super-net: stem, first block, stages, one exit head.

    ``arch`` (the JSON form of the :class:`nat2.space.Arch`) travels with the module so a saved subnet says what
    it is; it is not used by ``forward``.
    """

    def __init__(self, stem: nn.Module, first_block: nn.Module, stages: Sequence[nn.Module], head: nn.Module,
                 arch: dict) -> None:
        super().__init__()
        self.stem = stem
        self.first_block = first_block
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.arch = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the subnet's exit."""
        x = self.first_block(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


class MultiExitNet(nn.Module):
    """AEP's multi-exit network (method.md §2.6, §4.4): a subnet's body with every exit head ``1..nd`` attached.

    ``forward`` returns the deployed prediction, the weighted sum of the exits' logits (so the exported module and
    its MACs are those of exactly what runs); :meth:`forward_exits` returns each exit's logits for the joint loss.
    The body stops after stage ``nd`` (the reference's re-assembly runs all five stages: method.md §7.2 item 10).
    """

    def __init__(self, stem: nn.Module, first_block: nn.Module, stages: Sequence[nn.Module],
                 heads: Sequence[nn.Module], output_weights: Sequence[float], arch: dict) -> None:
        super().__init__()
        if len(heads) != len(stages) or len(output_weights) != len(heads):
            raise ValueError(f"{len(stages)} stages need as many heads and output weights, got {len(heads)} "
                             f"and {len(output_weights)}")
        self.stem = stem
        self.first_block = first_block
        self.stages = nn.ModuleList(stages)
        self.heads = nn.ModuleList(heads)
        self.output_weights = tuple(float(w) for w in output_weights)
        self.arch = arch

    def forward_exits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every exit, shallowest first."""
        x = self.first_block(self.stem(x))
        outs = []
        for stage, head in zip(self.stages, self.heads, strict=True):
            x = stage(x)
            outs.append(head(x))
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The ensemble logits ``sum_i w_i * logits_i``."""
        outs = self.forward_exits(x)
        y = outs[0] * self.output_weights[0]
        for logits, w in zip(outs[1:], self.output_weights[1:], strict=True):
            y = y + logits * w
        return y
