"""Fixed macro-architecture of the OFA / OFAv2 MobileNetV3 search space.

These constants are the one place the backbone's shape is written down: the encoding (:mod:`nat2.space.encoding`),
the analytic cost model (:mod:`nat2.costs`) and the super-net builder all read them, so a network and its counted
cost can never disagree about a width, a stride or where SE sits. Values follow OFA's ``OFAMobileNetV3`` (see
``design/method.md`` §1.1 and ``design/ofa-internals.md`` §1.1).
"""

from __future__ import annotations

__all__ = [
    "BRANCH_CONV1X1",
    "BRANCH_MASKS",
    "BRANCH_MBCONV",
    "BRANCH_TRANSFORM",
    "DEPTHS",
    "EXPAND_RATIOS",
    "EXIT_EXPAND_MULT",
    "EXIT_MIX_MULT",
    "FEATURE_MIX_WIDTH",
    "FINAL_EXPAND_WIDTH",
    "KERNEL_SIZES",
    "LAYER_STAGE",
    "MAX_DEPTH",
    "MIN_DEPTH",
    "N_EXITS",
    "N_LAYERS",
    "N_STAGES",
    "SE_REDUCTION",
    "STAGE_ACTS",
    "STAGE_SE",
    "STAGE_STRIDES",
    "STAGE_WIDTHS",
    "STEM_WIDTH",
    "exit_widths",
    "make_divisible",
    "output_side",
    "stage_widths",
    "stem_width",
]

KERNEL_SIZES: tuple[int, ...] = (3, 5, 7)
"""Elastic depthwise kernel sizes, in encoding order (``idx(ks)``)."""
EXPAND_RATIOS: tuple[int, ...] = (3, 4, 6)
"""Elastic MBConv expand ratios, in encoding order (``idx(e)``)."""
DEPTHS: tuple[int, ...] = (2, 3, 4)
"""Elastic stage depths: a stage keeps its first ``d`` layers."""
N_STAGES = 5
MIN_DEPTH = 2
MAX_DEPTH = 4
N_LAYERS = N_STAGES * MAX_DEPTH
N_EXITS = N_STAGES
LAYER_STAGE: tuple[int, ...] = tuple(layer // MAX_DEPTH for layer in range(N_LAYERS))
"""Stage index of each of the 20 elastic layer positions."""

BRANCH_MBCONV = 4
"""Mask bit of the MBConv branch of a parallel level."""
BRANCH_CONV1X1 = 2
"""Mask bit of the static 1×1 ConvLayer branch."""
BRANCH_TRANSFORM = 1
"""Mask bit of the TransformationLayer branch (max-pool, optional 1×1 conv, BN, act)."""
BRANCH_MASKS: tuple[int, ...] = (1, 2, 4, 3, 5, 6, 7)
"""Parallel branch masks in the reference code's order; ``pos(nw)`` in the layer code is an index into this."""

STEM_WIDTH = 16
"""Base width of the stem conv and of the fixed first block (scaled by the width multiplier)."""
STAGE_WIDTHS: tuple[int, ...] = (24, 40, 80, 112, 160)
STAGE_STRIDES: tuple[int, ...] = (2, 2, 2, 1, 2)
STAGE_ACTS: tuple[str, ...] = ("relu", "relu", "h_swish", "h_swish", "h_swish")
STAGE_SE: tuple[bool, ...] = (False, True, False, True, True)
SE_REDUCTION = 4
"""SE hidden width is ``make_divisible(mid // SE_REDUCTION)``."""

FINAL_EXPAND_WIDTH = 960
"""Base width of the last exit's 1×1 expand conv (scaled and rounded)."""
FEATURE_MIX_WIDTH = 1280
"""Base width of the last exit's feature-mix conv (scaled and rounded)."""
EXIT_EXPAND_MULT = 6
"""An early exit after stage of width ``C`` expands to ``6·C`` channels..."""
EXIT_MIX_MULT = 8
"""...and mixes to ``8·C`` channels (OFAv2's EE heads; the last exit uses the original tail instead)."""


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` the way OFA (and TF MobileNet) do.

    Rounds to the nearest multiple, never below ``divisor`` and never more than 10 % below ``v``. Every width of
    the network goes through this, so counts only match OFA's when the rule is bit-identical.

    Args:
        v: the unrounded channel count.
        divisor: the multiple to round to.

    Returns:
        The rounded channel count.

    Raises:
        ValueError: when ``divisor`` is not a positive integer.
    """
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
        raise ValueError(f"make_divisible: divisor must be a positive integer, got {divisor!r}")
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


def stem_width(width_mult: float) -> int:
    """Channels of the stem conv, which are also the fixed first block's input and output channels."""
    return make_divisible(STEM_WIDTH * width_mult)


def stage_widths(width_mult: float) -> tuple[int, ...]:
    """Output channels of the five body stages for one width multiplier."""
    return tuple(make_divisible(base * width_mult) for base in STAGE_WIDTHS)


def exit_widths(width_mult: float, exit: int) -> tuple[int, int]:
    """``(expand, mix)`` channels of the exit head that follows stage ``exit`` (1-based).

    The last exit (5) is OFA's original tail, ``make_divisible(960·w)`` and ``make_divisible(1280·w)``; earlier
    exits are OFAv2's heads of ``6·C`` and ``8·C`` channels, ``C`` the width of the stage they follow.
    Single-exit networks always use exit 5.

    Raises:
        ValueError: when ``exit`` is not in 1..5.
    """
    if isinstance(exit, bool) or not isinstance(exit, int) or not 1 <= exit <= N_EXITS:
        raise ValueError(f"exit must be an integer in 1..{N_EXITS}, got {exit!r}")
    if exit == N_EXITS:
        return make_divisible(FINAL_EXPAND_WIDTH * width_mult), make_divisible(FEATURE_MIX_WIDTH * width_mult)
    c = stage_widths(width_mult)[exit - 1]
    return EXIT_EXPAND_MULT * c, EXIT_MIX_MULT * c


def output_side(side: int, stride: int) -> int:
    """Spatial side after a stride-``stride`` conv with 'same' padding (or a ceil-mode pool of kernel = stride)."""
    return (side - 1) // stride + 1
