"""The OFAv2 MobileNetV3 search space: macro-architecture, variants, architectures and their integer genome.

Pure Python + numpy (no torch), so search, surrogates and the cost model can run without a deep-learning stack.

* :mod:`~nat2.space.macro`: fixed backbone constants (widths, strides, SE, elastic choices) and ``make_divisible``.
* :mod:`~nat2.space.variants`: :class:`Variant`, the eight OFAv2 super-net kinds.
* :mod:`~nat2.space.arch`: :class:`Arch`, a sub-network as values (the super-net's input).
* :mod:`~nat2.space.codes`: packing of one layer's choices into a gene.
* :mod:`~nat2.space.encoding`: :class:`SearchSpace`, the canonical genome, repair, sampling and features.
"""

from __future__ import annotations

from nat2.space.arch import Arch
from nat2.space.codes import canonical_codes, layer_choice, layer_code, n_layer_codes
from nat2.space.elastic import LEVEL_MASKS, ElasticChoices
from nat2.space.encoding import ENCODINGS, POLICIES, REPAIR_MODES, SearchSpace
from nat2.space.macro import (
    BRANCH_CONV1X1,
    BRANCH_MASKS,
    BRANCH_MBCONV,
    BRANCH_TRANSFORM,
    DEPTHS,
    EXIT_EXPAND_MULT,
    EXIT_MIX_MULT,
    EXPAND_RATIOS,
    FEATURE_MIX_WIDTH,
    FINAL_EXPAND_WIDTH,
    KERNEL_SIZES,
    LAYER_STAGE,
    MAX_DEPTH,
    MIN_DEPTH,
    N_EXITS,
    N_LAYERS,
    N_STAGES,
    SE_REDUCTION,
    STAGE_ACTS,
    STAGE_SE,
    STAGE_STRIDES,
    STAGE_WIDTHS,
    STEM_WIDTH,
    exit_widths,
    make_divisible,
    output_side,
    stage_widths,
    stem_width,
)
from nat2.space.variants import Variant

__all__ = [
    "Arch",
    "BRANCH_CONV1X1",
    "BRANCH_MASKS",
    "BRANCH_MBCONV",
    "BRANCH_TRANSFORM",
    "DEPTHS",
    "ENCODINGS",
    "ElasticChoices",
    "LEVEL_MASKS",
    "EXIT_EXPAND_MULT",
    "EXIT_MIX_MULT",
    "EXPAND_RATIOS",
    "FEATURE_MIX_WIDTH",
    "FINAL_EXPAND_WIDTH",
    "KERNEL_SIZES",
    "LAYER_STAGE",
    "MAX_DEPTH",
    "MIN_DEPTH",
    "N_EXITS",
    "N_LAYERS",
    "N_STAGES",
    "POLICIES",
    "REPAIR_MODES",
    "SE_REDUCTION",
    "STAGE_ACTS",
    "STAGE_SE",
    "STAGE_STRIDES",
    "STAGE_WIDTHS",
    "STEM_WIDTH",
    "SearchSpace",
    "Variant",
    "canonical_codes",
    "exit_widths",
    "layer_choice",
    "layer_code",
    "make_divisible",
    "n_layer_codes",
    "output_side",
    "stage_widths",
    "stem_width",
]
