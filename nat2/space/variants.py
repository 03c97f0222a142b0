"""The eight OFAv2 super-network variants and the flags each name implies.

A variant name is ``{se|ee}_{base|dense|parallel|dense_parallel}`` (``nat2.config.VARIANTS``). Only two of its
three flags change the search space: early exit adds the exit gene, parallel widens every layer code to the
branch mask. Dense skip connections add no parameters and no genes (method.md §1.2), so ``se_base`` and
``se_dense`` share one encoding.

The stem stride (``supernet.stem_stride``) belongs here too because it is part of the macro-architecture every
consumer must agree on: the super-net, the static subnet rebuilt from a card, the cost model and the latency table.
OFA's stride-2 stem halves a 224 px image; at 28-32 px five stride-2 steps leave a 1x1 map before the last stage,
so stride 1 keeps every later map four times larger (the small-image regime, as in CIFAR ResNets).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nat2.config import VARIANTS

__all__ = ["STEM_STRIDES", "Variant", "recorded_stem_stride"]

#: allowed strides of the stem conv (OFA: 2)
STEM_STRIDES = (1, 2)


def recorded_stem_stride(record: Mapping[str, Any]) -> Any:
    """The stem stride a saved record (checkpoint, LUT metadata, model card) states.

    Records written before the stride was a setting carry none; their networks had OFA's stride 2.
    """
    return record.get("stem_stride", 2)


@dataclass(frozen=True)
class Variant:
    """One OFAv2 variant, identified by its config name.

    Attributes:
        name: one of ``nat2.config.VARIANTS``.
        stem_stride: stride of the stem conv: 2 (OFA) or 1 (small images).
    """

    name: str
    stem_stride: int = 2

    def __post_init__(self) -> None:
        if self.name not in VARIANTS:
            raise ValueError(f"unknown OFAv2 variant {self.name!r}; expected one of: {', '.join(VARIANTS)}")
        if self.stem_stride not in STEM_STRIDES or isinstance(self.stem_stride, bool):
            raise ValueError(f"stem stride must be one of {STEM_STRIDES}, got {self.stem_stride!r}")

    @classmethod
    def from_name(cls, name: str, stem_stride: int = 2) -> Variant:
        """Build a variant from its config name (raises ``ValueError`` on an unknown name or stride)."""
        return cls(name, int(stem_stride))

    @property
    def early_exit(self) -> bool:
        """Whether the super-net has an exit after every stage, making the exit a search gene."""
        return self.name.startswith("ee_")

    @property
    def dense(self) -> bool:
        """Whether stages have dense skip connections (extra additions only; no genes, no parameters)."""
        return "dense" in self.name

    @property
    def parallel(self) -> bool:
        """Whether every layer is a level of three parallel branches selected by a mask gene."""
        return "parallel" in self.name

    def __str__(self) -> str:
        return self.name
