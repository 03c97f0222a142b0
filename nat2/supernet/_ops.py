"""Dynamic primitive operations of the OFA MobileNetV3 super-net.

Each op owns ONE max-size parameter tensor and, at forward time, uses a prefix slice of it sized by the caller
(the active configuration is an argument, never state stored on the op). This is OFA's weight-sharing scheme
(Cai et al., "Once-for-All", ICLR 2020): a subnet with fewer channels uses the first channels of every tensor, and
a smaller depthwise kernel is the centre of the 7x7 kernel passed through learnt transformation matrices
(7->5, then 5->3), so the kernels of different sizes are related but not identical.

Sliced weights are made contiguous in the input's memory format before the convolution: slices of a max-size
weight are strided views, and handing such a view to a channels_last convolution sends PyTorch down a slow path
(the reason OFA's own dynamic forward is 1.34x its static subnet under channels_last on CPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nat2.space import KERNEL_SIZES

__all__ = [
    "DynamicBatchNorm2d",
    "DynamicConv2d",
    "DynamicDepthwiseConv2d",
    "DynamicSE",
    "build_act",
    "same_format",
]


def build_act(name: str) -> nn.Module:
    """Activation module by name (``relu``, ``h_swish``); h_swish = x * relu6(x + 3) / 6, as in MobileNetV3."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "h_swish":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


def same_format(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``weight`` as a dense tensor in ``x``'s memory format (no copy when it already is).

    The channels_last case writes the exact NHWC strides instead of trusting
    ``contiguous(memory_format=channels_last)``: for tensors with size-1 dims (a ``[C, 1, k, k]`` depthwise kernel)
    that call keeps the plain strides, PyTorch then guesses the plain format for the weight, and oneDNN reorders
    on every call (measured 17-40x slower depthwise convolutions on 1x1 feature maps).
    """
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        c, h, w = weight.shape[1:]
        strides = (h * w * c, 1, w * c, c)
        if weight.stride() == strides:
            return weight
        out = torch.empty_strided(weight.shape, strides, dtype=weight.dtype, device=weight.device)
        return out.copy_(weight)
    return weight.contiguous()


class DynamicConv2d(nn.Module):
    """A bias-free 1x1 convolution whose active weight is ``weight[:out_chs, :in_chs]``."""

    def __init__(self, max_in_chs: int, max_out_chs: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(max_out_chs, max_in_chs, 1, 1))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")

    def active_weight(self, in_chs: int, out_chs: int) -> torch.Tensor:
        """The weight a static subnet with these widths would own."""
        return self.weight[:out_chs, :in_chs]

    def forward(self, x: torch.Tensor, out_chs: int) -> torch.Tensor:
        """Convolve ``x`` (its channel count is the active input width) to ``out_chs`` channels."""
        w = same_format(self.active_weight(x.shape[1], out_chs), x)
        return F.conv2d(x, w, None, self.stride)


class DynamicDepthwiseConv2d(nn.Module):
    """Depthwise convolution with elastic kernel size through OFA's kernel transformation matrices.

    Parameter names (``weight``, ``7to5_matrix``, ``5to3_matrix``) follow OFA so official checkpoints map 1:1.
    """

    def __init__(self, max_chs: int, stride: int = 1, kernel_sizes: tuple[int, ...] = KERNEL_SIZES) -> None:
        super().__init__()
        self.stride = stride
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        k_max = self.kernel_sizes[-1]
        self.weight = nn.Parameter(torch.empty(max_chs, 1, k_max, k_max))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        for small, large in zip(self.kernel_sizes[:-1], self.kernel_sizes[1:], strict=True):
            self.register_parameter(self._matrix_name(large, small), nn.Parameter(torch.eye(small * small)))

    @staticmethod
    def _matrix_name(large: int, small: int) -> str:
        return f"{large}to{small}_matrix"

    def active_weight(self, chs: int, kernel_size: int) -> torch.Tensor:
        """The ``[chs, 1, k, k]`` kernel of the subnet: centre crops chained through the transform matrices."""
        w = self.weight[:chs]
        for large, small in zip(self.kernel_sizes[::-1], self.kernel_sizes[-2::-1], strict=False):
            if large <= kernel_size:
                break
            start = (large - small) // 2
            crop = w[:, :, start:start + small, start:start + small].reshape(chs, small * small)
            w = F.linear(crop, getattr(self, self._matrix_name(large, small))).view(chs, 1, small, small)
        if w.shape[-1] != kernel_size:
            raise ValueError(f"kernel size {kernel_size} not in {self.kernel_sizes}")
        return w

    def forward(self, x: torch.Tensor, kernel_size: int) -> torch.Tensor:
        """Depthwise-convolve ``x`` with the active ``kernel_size`` ("same" padding)."""
        chs = x.shape[1]
        w = same_format(self.active_weight(chs, kernel_size), x)
        return F.conv2d(x, w, None, self.stride, kernel_size // 2, 1, chs)


class DynamicBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the first ``C`` channels of the max-size statistics and affine parameters.

    Running statistics of a slice are updated in place, exactly as a static BN of that width would update them;
    ``momentum=None`` gives the cumulative average used by BN recalibration (see :mod:`nat2.supernet.bn`).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` with the statistics of its first ``x.shape[1]`` channels."""
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        factor = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
                            self.training, factor, self.eps)


class DynamicSE(nn.Module):
    """Squeeze-and-excitation on a prefix of the channels; hidden width ``make_divisible(C // 4, 8)``.

    Submodule names (``reduce``, ``expand``) follow OFA's ``se.fc.reduce/expand`` so checkpoints map directly.
    """

    def __init__(self, max_chs: int, max_mid: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(max_chs, max_mid, 1, bias=True)
        self.expand = nn.Conv2d(max_mid, max_chs, 1, bias=True)

    def active_weights(self, chs: int, mid: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(reduce.weight, reduce.bias, expand.weight, expand.bias)`` of the active widths."""
        return (self.reduce.weight[:mid, :chs], self.reduce.bias[:mid],
                self.expand.weight[:chs, :mid], self.expand.bias[:chs])

    def forward(self, x: torch.Tensor, mid: int) -> torch.Tensor:
        """Rescale ``x``'s channels by a gate computed from their global average."""
        rw, rb, ew, eb = self.active_weights(x.shape[1], mid)
        y = x.mean((2, 3), keepdim=True)
        y = F.relu(F.conv2d(y, rw.contiguous(), rb))
        y = F.hardsigmoid(F.conv2d(y, ew.contiguous(), eb))
        return x * y
