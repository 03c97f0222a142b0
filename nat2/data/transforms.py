"""Batched image transforms: the training crop/flip, AutoAugment, the evaluation resize and normalisation.

Training augmentation is done for a whole batch at once: each image's random-resized crop and horizontal flip
become one 2x3 affine matrix, and a single ``affine_grid`` + ``grid_sample`` call crops, flips and resamples the
batch straight to the batch's resolution ``r x r`` (no per-image PIL work, runs on the GPU when the batch is
there). All parameters are drawn on the CPU from an explicit ``torch.Generator``, so a batch is the same on every
device and every rank.

Crop convention (documented choice): the crop area fraction ``s`` is uniform in ``[crop_scale_min, 1]`` and the
aspect ratio is log-uniform in ``[3/4, 4/3]`` intersected with ``[s, 1/s]``, the ratios for which a crop of area
``s`` still fits inside the image. torchvision instead rejects and retries impossible crops; intersecting keeps
the sampling one vectorised step, and makes ``crop_scale_min = 1`` the exact full image (ratio 1:1, as the
reference's CIFAR pipeline, whose crop is 1:1 with scale 1.0). Grayscale images are cropped on their single
channel and expanded to 3 channels only by the normalisation that writes the output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["apply_crops", "apply_erasing", "autoaugment", "eval_resize", "normalize", "sample_crops", "sample_erasing",
           "to_float"]

_RATIO_MIN, _RATIO_MAX = 3 / 4, 4 / 3
#: random erasing's rectangle: area fraction and log-uniform aspect ratio bounds (Zhong et al. 2020; torchvision's)
ERASE_AREA = (0.02, 1 / 3)
ERASE_RATIO = (0.3, 1 / 0.3)


def sample_crops(n: int, scale_min: float, hflip: bool, generator: torch.Generator) -> torch.Tensor:
    """Affine matrices ``[n, 2, 3]`` (float32, CPU) of random-resized crops with optional horizontal flips.

    Always draws the same five uniforms per image, whatever the options, so the stream stays aligned across
    configurations. The matrices map output coordinates to input coordinates in ``affine_grid``'s normalised
    ``[-1, 1]`` frame: ``x_in = flip * w * x_out + cx`` with ``|cx| <= 1 - w``.
    """
    u = torch.rand((5, n), generator=generator, dtype=torch.float64)
    area = scale_min + (1.0 - scale_min) * u[0]
    lo = torch.log(torch.clamp(area, min=_RATIO_MIN))
    hi = torch.log(torch.clamp(1.0 / area, max=_RATIO_MAX))
    ratio = torch.exp(lo + (hi - lo) * u[1])
    w = torch.clamp(torch.sqrt(area * ratio), max=1.0)
    h = torch.clamp(torch.sqrt(area / ratio), max=1.0)
    cx = (2 * u[2] - 1) * (1 - w)
    cy = (2 * u[3] - 1) * (1 - h)
    flip = torch.where(u[4] < 0.5, -1.0, 1.0) if hflip else torch.ones(n, dtype=torch.float64)
    theta = torch.zeros((n, 2, 3), dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 2] = flip * w, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    return theta.float()


def apply_crops(x: torch.Tensor, theta: torch.Tensor, resolution: int) -> torch.Tensor:
    """Crop, flip and resample float images ``[B, C, H, W]`` to ``[B, C, r, r]`` in one bilinear ``grid_sample``."""
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], resolution, resolution], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def autoaugment(images: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
    """Apply torchvision's AutoAugment (CIFAR-10 policy) to uint8 ``[B, C, H, W]``, one policy draw per image.

    torchvision draws its policy from the global torch RNG, so each image runs inside
    ``torch.random.fork_rng`` with the CPU generator seeded from ``seeds[i]`` (drawn from the batch's own
    generator): the result is a pure function of the seeds and the caller's global RNG state is restored.
    Only the CPU default generator is reseeded (``torch.manual_seed`` would also reseed, and not restore, CUDA
    generators).
    """
    from torchvision.transforms import AutoAugment, AutoAugmentPolicy

    policy = AutoAugment(AutoAugmentPolicy.CIFAR10)
    out = torch.empty_like(images, memory_format=torch.contiguous_format)
    with torch.random.fork_rng(devices=[]):
        for i, s in enumerate(seeds):
            torch.default_generator.manual_seed(int(s))
            out[i] = policy(images[i])
    return out


def sample_erasing(n: int, prob: float, generator: torch.Generator) -> torch.Tensor:
    """Random-erasing rectangles ``[n, 4]`` (x0, y0, x1, y1 as fractions of the side; empty when not erased).

    Always draws five uniforms per image, so the stream does not depend on ``prob``. The aspect ratio is clipped
    so the rectangle fits (one vectorised draw, no retries, as :func:`sample_crops`).
    """
    u = torch.rand((5, n), generator=generator, dtype=torch.float64)
    area = ERASE_AREA[0] + (ERASE_AREA[1] - ERASE_AREA[0]) * u[0]
    lo, hi = math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1])
    ratio = torch.exp(lo + (hi - lo) * u[1])
    w = torch.clamp(torch.sqrt(area * ratio), max=1.0)
    h = torch.clamp(area / w, max=1.0)
    x0, y0 = (1 - w) * u[2], (1 - h) * u[3]
    on = (u[4] < prob).double()
    return torch.stack([x0, y0, x0 + w * on, y0 + h * on], dim=1).float()


def apply_erasing(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Set each image's rectangle to 0 (the dataset mean, after normalisation) in normalised ``[B, C, r, r]``.

    Pixel ``i`` (centre ``(i + 0.5) / r``) is erased when its centre lies inside ``[x0, x1) x [y0, y1)``, so a
    rectangle covers the same fraction of the image at every resolution.
    """
    r = x.shape[-1]
    centre = (torch.arange(r, device=x.device, dtype=torch.float32) + 0.5) / r
    b = boxes.to(x.device)
    cols = (centre[None, :] >= b[:, 0:1]) & (centre[None, :] < b[:, 2:3])
    rows = (centre[None, :] >= b[:, 1:2]) & (centre[None, :] < b[:, 3:4])
    keep = ~(rows[:, :, None] & cols[:, None, :])
    return x.mul_(keep[:, None].to(x.dtype))


def to_float(images: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 NHWC (numpy) or NCHW (tensor) images -> float32 NCHW on ``device``, values still in [0, 255]."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return images.to(device=device, non_blocking=True).float()


def eval_resize(x: torch.Tensor, resolution: int, crop: float = 1.0) -> torch.Tensor:
    """The evaluation transform of float images ``[B, C, H, W]``.

    ``crop = 1``: bilinear resize to ``r x r`` (antialiased when shrinking, skipped when already that size).
    ``crop < 1`` (Tiny ImageNet, 0.875): resize to ``ceil(r / crop)`` then take the central ``r x r``.
    """
    side = resolution if crop >= 1.0 else math.ceil(resolution / crop)
    if tuple(x.shape[-2:]) != (side, side):
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False,
                          antialias=side < max(x.shape[-2:]))
    if side != resolution:
        top = (side - resolution) // 2
        x = x[..., top:top + resolution, top:top + resolution]
    return x


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              memory_format: torch.memory_format = torch.channels_last) -> torch.Tensor:
    """``(x / 255 - mean) / std`` as a new 3-channel float32 tensor in ``memory_format``.

    Single-channel input is broadcast to the 3 output channels here, the one place a copy is made anyway.
    """
    b, _, h, w = x.shape
    scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std, strict=True)], dtype=torch.float32,
                         device=x.device).view(1, 3, 1, 1)
    out = torch.empty((b, 3, h, w), dtype=torch.float32, device=x.device, memory_format=memory_format)
    torch.mul(x.expand(b, 3, h, w), scale, out=out)
    return out.sub_(shift)
