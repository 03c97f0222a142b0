"""OFAv2 MobileNetV3 super-networks: dynamic ops, extraction, BN recalibration, OFA checkpoint import."""

from __future__ import annotations

from nat2.supernet._static import MultiExitNet, SubNet
from nat2.supernet.bn import recalibrate_bn, recalibrated_bn
from nat2.supernet.compat import LoadReport, load_ofa_state_dict
from nat2.supernet.mbv3 import SuperNet, SuperNetSet

__all__ = [
    "LoadReport",
    "MultiExitNet",
    "SubNet",
    "SuperNet",
    "SuperNetSet",
    "load_ofa_state_dict",
    "recalibrate_bn",
    "recalibrated_bn",
]
