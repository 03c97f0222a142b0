"""Surrogate files without pickle: a fitted model is stored as its recipe and data, and refitted on load.

A fitted model is a function of (registry name, seed, threads, folds, features, targets) and nothing else, so the
file stores those as plain JSON and loading refits through :func:`~nat2.surrogate.make_surrogate`; a pickle would
run whatever code a tampered file names. Storage therefore needs nothing from a predictor beyond its registry
entry: :class:`StoredSurrogate` is the whole interface (``payload`` to write, ``from_payload`` to read, ``refit`` to
rebuild). The training-set predictions are stored too, and the refit must reproduce them, so a library upgrade
that changes the model is caught instead of silently predicting differently.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nat2.errors import Nat2Error
from nat2.io import write_json
from nat2.surrogate.base import MIN_SAMPLES, Array, Surrogate, check_x, check_xy
from nat2.surrogate.fit import FitResult
from nat2.surrogate.registry import make_surrogate

__all__ = ["SURROGATE_FORMAT", "StoredSurrogate", "load_surrogate", "save_surrogate"]

#: tag of the surrogate file format; bump when its fields change so old files are refused clearly
SURROGATE_FORMAT = "nat2-surrogate/1"


@dataclass(frozen=True)
class StoredSurrogate:
    """A surrogate file's recipe and data: enough to rebuild the fitted model exactly."""

    model: str
    seed: int
    threads: int
    folds: int
    encoding: str
    features: Array
    targets: Array
    predictions: Array

    def payload(self) -> dict[str, Any]:
        """The file's JSON content, without its digest."""
        return {"format": SURROGATE_FORMAT, "model": self.model, "seed": self.seed, "threads": self.threads,
                "folds": self.folds, "encoding": self.encoding, "features": self.features.tolist(),
                "targets": self.targets.tolist(), "predictions": self.predictions.tolist()}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> StoredSurrogate:
        """The record of a file's JSON content (KeyError, TypeError or ValueError when a field is unusable)."""
        return cls(str(data["model"]), int(data["seed"]), int(data["threads"]), int(data["folds"]),
                   str(data["encoding"]), check_x(data["features"]), np.asarray(data["targets"], dtype=np.float64),
                   np.asarray(data["predictions"], dtype=np.float64))

    def refit(self) -> Surrogate:
        """The registry's model for this recipe, fitted on the stored data."""
        model = make_surrogate(self.model, seed=self.seed, threads=self.threads, folds=self.folds)
        model.fit(self.features, self.targets)
        return model


def _digest(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def save_surrogate(path: str | os.PathLike[str], result: FitResult, X: npt.ArrayLike, y: npt.ArrayLike, *,
                   encoding: str, threads: int, folds: int) -> StoredSurrogate:
    """Write a fitted surrogate (see :class:`StoredSurrogate`) as JSON with a sha256 digest, atomically."""
    x_arr, y_arr = check_xy(X, y, MIN_SAMPLES)
    stored = StoredSurrogate(result.report["model"], int(result.report["seed"]), int(threads), int(folds), encoding,
                             x_arr, y_arr, np.asarray(result.model.predict(x_arr), dtype=np.float64))
    payload = stored.payload()
    write_json(path, {**payload, "digest": _digest(payload)})
    return stored


def load_surrogate(path: str | os.PathLike[str]) -> tuple[Surrogate, StoredSurrogate]:
    """Read a surrogate file and rebuild its fitted model (checked against the stored predictions).

    Raises:
        Nat2Error: one line naming the file and the fix when it is missing, not JSON, of another format, damaged
            (digest), incomplete, or when the refit no longer reproduces the stored predictions.
    """
    p = Path(path)
    fix = "rerun fit_surrogate"
    try:
        data = json.loads(p.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise Nat2Error(f"surrogate file {p} not found; {fix}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise Nat2Error(f"surrogate file {p} is not a nat2 surrogate (unreadable JSON: {type(exc).__name__}); "
                        f"{fix}") from None
    if not isinstance(data, dict) or data.get("format") != SURROGATE_FORMAT:
        raise Nat2Error(f"{p} is not a {SURROGATE_FORMAT} surrogate file; {fix}")
    digest = data.pop("digest", None)
    if digest != _digest(data):
        raise Nat2Error(f"surrogate file {p} fails its digest check (edited or damaged); {fix}")
    try:
        stored = StoredSurrogate.from_payload(data)
        model = stored.refit()
    except (KeyError, TypeError, ValueError) as exc:
        raise Nat2Error(f"surrogate file {p} holds no usable model ({type(exc).__name__}: {exc}); {fix}") from None
    again = model.predict(stored.features)
    if again.shape != stored.predictions.shape or not np.allclose(again, stored.predictions, rtol=0, atol=1e-9):
        raise Nat2Error(f"surrogate file {p}: refitting does not reproduce its predictions (another library version "
                        f"or thread count?); {fix}")
    return model, stored
