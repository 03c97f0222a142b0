"""Measured latency: a look-up table of the space's blocks, a fitted per-network overhead, and the model search uses.

:mod:`nat2.latency.lut` (the file format and the vectorised model) needs no torch; :mod:`nat2.latency.profile`
and :mod:`nat2.latency.timing` measure, and are imported only by the stages that time networks.
"""

from __future__ import annotations

from nat2.latency.lut import KINDS, LUT_SCHEMA, LatencyModel, dense_adds, read_lut, write_lut

__all__ = ["KINDS", "LUT_SCHEMA", "LatencyModel", "dense_adds", "read_lut", "write_lut"]
