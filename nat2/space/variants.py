"""The eight OFAv2 super-network variants and the flags each name implies.

A variant name is ``{se|ee}_{base|dense|parallel|dense_parallel}`` (``nat2.config.VARIANTS``). Only two of its
three flags change the search space: early exit adds the exit gene, parallel widens every layer code to the
branch mask. Dense skip connections add no parameters and no genes (method.md §1.2), so ``se_base`` and
``se_dense`` share one encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

from nat2.config import VARIANTS

__all__ = ["Variant"]


@dataclass(frozen=True)
class Variant:
    """One OFAv2 variant, identified by its config name.

    Attributes:
        name: one of ``nat2.config.VARIANTS``.
    """

    name: str

    def __post_init__(self) -> None:
        if self.name not in VARIANTS:
            raise ValueError(f"unknown OFAv2 variant {self.name!r}; expected one of: {', '.join(VARIANTS)}")

    @classmethod
    def from_name(cls, name: str) -> Variant:
        """Build a variant from its config name (raises ``ValueError`` on an unknown name)."""
        return cls(name)

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
