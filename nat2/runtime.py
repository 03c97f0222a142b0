"""Device and thread setup, done once per process from ``runtime`` params (never through global flags)."""

from __future__ import annotations

import os

from nat2.config import RuntimeConfig
from nat2.errors import Nat2Error

__all__ = ["memory_format", "setup_torch"]


def setup_torch(runtime: RuntimeConfig):  # noqa: ANN201 - returns torch.device; torch imported lazily
    """Apply thread count and CPU speed settings; return the device to compute on.

    ``torch.set_flush_denormal(True)`` avoids a ~1.5x slowdown of SGD steps on CPU when weights decay to
    denormal floats. CUDA is used when ``device`` is ``auto`` and a GPU is present.
    """
    import torch

    os.environ.setdefault("OMP_NUM_THREADS", str(runtime.threads))
    torch.set_num_threads(runtime.threads)
    torch.set_flush_denormal(True)
    if runtime.device == "cuda" and not torch.cuda.is_available():
        raise Nat2Error("runtime.device = 'cuda' but no CUDA device is available; set runtime.device: auto or cpu")
    if runtime.device == "cpu" or (runtime.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda")


def memory_format(runtime: RuntimeConfig):  # noqa: ANN201
    """The torch memory format to keep images and models in."""
    import torch

    return torch.channels_last if runtime.channels_last else torch.contiguous_format
