"""nat2: Neural Architecture Transfer 2 over OFAv2 super-networks, as a reproducible pipeline.

The library is organised by the method's concepts: :mod:`nat2.space` (architecture encoding),
:mod:`nat2.supernet` (dynamic super-networks), :mod:`nat2.costs` (analytic params/MACs),
:mod:`nat2.data` (datasets, splits and loaders), and :mod:`nat2.stages` (one CLI per pipeline stage).
"""

from __future__ import annotations

__all__ = ["__version__", "load_subnet"]

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``nat2.load_subnet``: imported on first use, so ``import nat2`` stays light (no torch)."""
    if name == "load_subnet":
        from nat2.slot_folder import load_subnet

        return load_subnet
    raise AttributeError(f"module 'nat2' has no attribute {name!r}")
