"""Shared test setup: tests import helpers from this folder and run from the repository root."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.chdir(ROOT)
