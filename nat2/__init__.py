"""nat2: Neural Architecture Transfer 2 over OFAv2 super-networks, as a reproducible pipeline.

The library is organised by the method's concepts: :mod:`nat2.space` (architecture encoding),
:mod:`nat2.supernet` (dynamic super-networks), :mod:`nat2.costs` (analytic params/MACs),
:mod:`nat2.data` (datasets, splits and loaders), and :mod:`nat2.stages` (one CLI per pipeline stage).
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
