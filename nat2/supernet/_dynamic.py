"""Dynamic layers of the super-net: elastic MBConv, OFAv2 parallel levels, and stages with elastic depth.

Every dynamic module takes its active configuration as forward arguments and can emit the equivalent static
module (``to_static``), copying sliced / kernel-transformed weights and BN statistics, so extraction is generic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nat2.space import EXPAND_RATIOS, KERNEL_SIZES, make_divisible
from nat2.supernet._ops import (
    DynamicBatchNorm2d,
    DynamicConv2d,
    DynamicDepthwiseConv2d,
    DynamicSE,
    build_act,
)
from nat2.supernet._static import ConvBnAct, MBConv, ParallelLayer, Stage, Transformation, stage_forward

__all__ = ["DynamicLayer", "DynamicMBConv", "DynamicStage", "LayerCfg", "LayerSpec", "copy_bn"]

MBCONV_BIT, CONV1X1_BIT, TRANSFORM_BIT = 4, 2, 1


@dataclass(frozen=True)
class LayerSpec:
    """The fixed (non-elastic) shape of one layer position."""

    in_chs: int
    out_chs: int
    stride: int
    act: str
    use_se: bool


@dataclass(frozen=True)
class LayerCfg:
    """The elastic choices of one active layer: kernel size, expand ratio and parallel-branch mask."""

    kernel_size: int
    expand_ratio: int
    branches: int = MBCONV_BIT


def copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d) -> None:
    """Copy the first ``dst.num_features`` entries of ``src``'s affine parameters and running statistics."""
    c = dst.num_features
    with torch.no_grad():
        dst.weight.copy_(src.weight[:c])
        dst.bias.copy_(src.bias[:c])
        dst.running_mean.copy_(src.running_mean[:c])
        dst.running_var.copy_(src.running_var[:c])
        dst.num_batches_tracked.copy_(src.num_batches_tracked)
    dst.momentum, dst.eps = src.momentum, src.eps


class DynamicMBConv(nn.Module):
    """MBConv with elastic kernel size {3, 5, 7} and expand ratio {3, 4, 6} (OFA's DynamicMBConvLayer)."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__()
        self.spec = spec
        max_mid = self.mid_chs(max(EXPAND_RATIOS))
        self.expand_conv = DynamicConv2d(spec.in_chs, max_mid)
        self.expand_bn = DynamicBatchNorm2d(max_mid)
        self.expand_act = build_act(spec.act)
        self.dw_conv = DynamicDepthwiseConv2d(max_mid, spec.stride, KERNEL_SIZES)
        self.dw_bn = DynamicBatchNorm2d(max_mid)
        self.dw_act = build_act(spec.act)
        self.se = DynamicSE(max_mid, make_divisible(max_mid // 4)) if spec.use_se else None
        self.project_conv = DynamicConv2d(max_mid, spec.out_chs)
        self.project_bn = DynamicBatchNorm2d(spec.out_chs)
        self.residual = spec.stride == 1 and spec.in_chs == spec.out_chs

    def mid_chs(self, expand_ratio: int) -> int:
        """Hidden width for ``expand_ratio``: ``make_divisible(round(in * e), 8)``, as OFA."""
        return make_divisible(round(self.spec.in_chs * expand_ratio))

    def forward(self, x: torch.Tensor, kernel_size: int, expand_ratio: int) -> torch.Tensor:
        """Block output for the active kernel size and expand ratio."""
        mid = self.mid_chs(expand_ratio)
        y = self.expand_act(self.expand_bn(self.expand_conv(x, mid)))
        y = self.dw_act(self.dw_bn(self.dw_conv(y, kernel_size)))
        if self.se is not None:
            y = self.se(y, make_divisible(mid // 4))
        y = self.project_bn(self.project_conv(y, self.spec.out_chs))
        return y + x if self.residual else y

    def to_static(self, kernel_size: int, expand_ratio: int) -> MBConv:
        """The static MBConv of this configuration, with the kernel transformation baked into its weights."""
        s = self.spec
        mid = self.mid_chs(expand_ratio)
        se_mid = make_divisible(mid // 4) if s.use_se else None
        # built in the super-net's dtype/device so the copies below are exact
        block = MBConv(s.in_chs, s.out_chs, mid, kernel_size, s.stride, s.act, se_mid).to(self.project_conv.weight)
        with torch.no_grad():
            block.expand.conv.weight.copy_(self.expand_conv.active_weight(s.in_chs, mid))
            block.dw.conv.weight.copy_(self.dw_conv.active_weight(mid, kernel_size))
            block.project.conv.weight.copy_(self.project_conv.active_weight(mid, s.out_chs))
            if self.se is not None and block.se is not None:
                rw, rb, ew, eb = self.se.active_weights(mid, se_mid)
                block.se.reduce.weight.copy_(rw)
                block.se.reduce.bias.copy_(rb)
                block.se.expand.weight.copy_(ew)
                block.se.expand.bias.copy_(eb)
        copy_bn(block.expand.bn, self.expand_bn)
        copy_bn(block.dw.bn, self.dw_bn)
        copy_bn(block.project.bn, self.project_bn)
        return block

    @torch.no_grad()
    def reorder_channels(self, expand_stage: int = 0) -> None:
        """Sort hidden channels by importance (L1 norm of the projection weights), OFA's elastic-width step.

        After sorting, every expand ratio's prefix holds the most important channels. With ``expand_stage > 0``
        the channels already inside a smaller, trained width are kept inside it (large negative offsets make
        each nested segment sort only within itself), so earlier phases' subnets are not disturbed.
        """
        importance = self.project_conv.weight.abs().sum(dim=(0, 2, 3))
        if expand_stage > 0:
            widths = [self.mid_chs(e) for e in sorted(EXPAND_RATIOS, reverse=True)]
            right, base = importance.numel(), -len(widths) * 1e5
            for i in range(expand_stage + 1):
                left = widths[i]
                importance[left:right] += base
                base += 1e5
                right = left
        order = torch.argsort(importance, descending=True, stable=True)
        self.project_conv.weight.copy_(self.project_conv.weight[:, order])
        self.dw_conv.weight.copy_(self.dw_conv.weight[order])
        self.expand_conv.weight.copy_(self.expand_conv.weight[order])
        for bn in (self.dw_bn, self.expand_bn):
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                t.copy_(t[order])
        if self.se is not None:
            se = self.se
            se.expand.weight.copy_(se.expand.weight[order])
            se.expand.bias.copy_(se.expand.bias[order])
            se.reduce.weight.copy_(se.reduce.weight[:, order])
            se_order = torch.argsort(se.expand.weight.abs().sum(dim=(0, 2, 3)), descending=True, stable=True)
            se.expand.weight.copy_(se.expand.weight[:, se_order])
            se.reduce.weight.copy_(se.reduce.weight[se_order])
            se.reduce.bias.copy_(se.reduce.bias[se_order])


class DynamicLayer(nn.Module):
    """One layer position: an elastic MBConv, plus the two static OFAv2 branches in parallel variants."""

    def __init__(self, spec: LayerSpec, parallel: bool) -> None:
        super().__init__()
        self.spec = spec
        self.parallel = parallel
        self.mbconv = DynamicMBConv(spec)
        if parallel:
            self.conv1x1 = ConvBnAct(spec.in_chs, spec.out_chs, 1, spec.stride, act=spec.act)
            self.transform = Transformation(spec.in_chs, spec.out_chs, spec.stride, spec.act)

    def _check(self, cfg: LayerCfg) -> None:
        if not self.parallel and cfg.branches != MBCONV_BIT:
            raise ValueError(f"branch mask {cfg.branches} on a non-parallel super-net (only {MBCONV_BIT} allowed)")
        if not 1 <= cfg.branches <= 7:
            raise ValueError(f"branch mask {cfg.branches} outside 1..7")

    def forward(self, x: torch.Tensor, cfg: LayerCfg) -> torch.Tensor:
        """Sum of the active branches (just the MBConv in non-parallel variants)."""
        if not self.parallel:
            return self.mbconv(x, cfg.kernel_size, cfg.expand_ratio)
        out = None
        if cfg.branches & MBCONV_BIT:
            out = self.mbconv(x, cfg.kernel_size, cfg.expand_ratio)
        if cfg.branches & CONV1X1_BIT:
            y = self.conv1x1(x)
            out = y if out is None else out + y
        if cfg.branches & TRANSFORM_BIT:
            y = self.transform(x)
            out = y if out is None else out + y
        if out is None:
            raise ValueError("a parallel layer needs at least one active branch")
        return out

    def to_static(self, cfg: LayerCfg) -> nn.Module:
        """The static module of this configuration (a :class:`ParallelLayer` in parallel variants)."""
        self._check(cfg)
        if not self.parallel:
            return self.mbconv.to_static(cfg.kernel_size, cfg.expand_ratio)
        import copy

        branches: dict[str, nn.Module] = {}
        if cfg.branches & MBCONV_BIT:
            branches["mbconv"] = self.mbconv.to_static(cfg.kernel_size, cfg.expand_ratio)
        if cfg.branches & CONV1X1_BIT:
            branches["conv1x1"] = copy.deepcopy(self.conv1x1)
        if cfg.branches & TRANSFORM_BIT:
            branches["transform"] = copy.deepcopy(self.transform)
        return ParallelLayer(branches)


class DynamicStage(nn.Module):
    """Up to four layer positions; the first ``depth`` of them run (OFA's elastic depth)."""

    def __init__(self, specs: list[LayerSpec], parallel: bool, dense: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DynamicLayer(s, parallel) for s in specs)
        self.dense = dense

    def forward(self, x: torch.Tensor, cfgs: list[LayerCfg]) -> torch.Tensor:
        """Stage output with ``len(cfgs)`` active layers."""
        fns = [lambda h, layer=layer, cfg=cfg: layer(h, cfg) for layer, cfg in zip(self.layers, cfgs, strict=False)]
        return stage_forward(x, fns, self.dense)

    def to_static(self, cfgs: list[LayerCfg]) -> Stage:
        """The static stage of this configuration."""
        return Stage([layer.to_static(cfg) for layer, cfg in zip(self.layers, cfgs, strict=False)], self.dense)
