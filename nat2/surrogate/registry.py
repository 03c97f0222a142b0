"""Every surrogate by short name, and :func:`make_surrogate`, the one way to build one.

A registry entry is a builder called as ``build(seed, threads, **params)`` (plus ``folds`` for models that
cross-validate inside themselves). A model class of :mod:`nat2.surrogate.models` is its own builder, so adding a
predictor is that class plus one line in :data:`SURROGATES`; ensembles, adaptive switching, cross-validated
reports and storage then work with it unchanged, because each only builds models through :func:`make_surrogate`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from nat2.surrogate.base import Surrogate, check_count
from nat2.surrogate.composite import AdaptiveSwitching, KFoldEnsemble
from nat2.surrogate.models import (
    CARTSurrogate,
    E2EPPSurrogate,
    GPSurrogate,
    LightGBMSurrogate,
    MLPSurrogate,
    RBFSurrogate,
)

__all__ = ["DEFAULT_CANDIDATES", "SURROGATES", "SurrogateSpec", "make_surrogate"]

DEFAULT_CANDIDATES = ("rbf", "cart", "mlp", "gp", "lgb")
"""Models adaptive switching chooses from: MSuNAS's rbf/cart/mlp/gp plus NAT2's lgb."""


@dataclass(frozen=True)
class SurrogateSpec:
    """One registry entry.

    Attributes:
        build: ``build(seed, threads, **params)`` (plus ``folds`` when ``nested``) -> an unfitted model.
        ensemble: whether the model is fitted as a :class:`KFoldEnsemble` unless the caller says otherwise.
        nested: the model runs its own cross-validation, so it takes ``folds`` and cannot be a switching candidate.
    """

    build: Callable[..., Surrogate]
    ensemble: bool = False
    nested: bool = False


def _adaptive_switching(seed: int, threads: int, folds: int,
                        candidates: Sequence[str] = DEFAULT_CANDIDATES) -> Surrogate:
    """MSuNAS adaptive switching among registered single models (``as``)."""
    names = list(candidates)
    unknown = [c for c in names if c not in SURROGATES or SURROGATES[c].nested]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"adaptive switching candidates must be distinct names among "
                         f"{sorted(n for n, s in SURROGATES.items() if not s.nested)}, got {names}")
    # partials of module-level functions (not closures), so a fitted model stays an ordinary picklable object
    return AdaptiveSwitching({c: functools.partial(_make_single, c, threads) for c in names}, folds=folds,
                             seed=seed)


SURROGATES: Mapping[str, SurrogateSpec] = MappingProxyType({
    "lgb": SurrogateSpec(LightGBMSurrogate, ensemble=True),
    "rbf": SurrogateSpec(RBFSurrogate),
    "gp": SurrogateSpec(GPSurrogate),
    "mlp": SurrogateSpec(MLPSurrogate),
    "cart": SurrogateSpec(CARTSurrogate),
    "e2epp": SurrogateSpec(E2EPPSurrogate),
    "as": SurrogateSpec(_adaptive_switching, nested=True),
})
"""Every surrogate by short name (read-only: the set of models is fixed by this module)."""


def _make_single(name: str, threads: int, seed: int) -> Surrogate:
    return make_surrogate(name, seed=seed, threads=threads, ensemble=False)


def _build(name: str, threads: int, kwargs: Mapping[str, Any], seed: int) -> Surrogate:
    return SURROGATES[name].build(seed, threads, **kwargs)


def make_surrogate(
    name: str,
    *,
    seed: int,
    threads: int = 1,
    folds: int = 10,
    ensemble: bool | None = None,
    params: Mapping[str, Any] | None = None,
) -> Surrogate:
    """An unfitted surrogate by registry name.

    Args:
        name: a key of :data:`SURROGATES`.
        seed: the only source of randomness of the model and all its sub-models.
        threads: CPU threads it may use.
        folds: k of the k-fold ensemble and of adaptive switching's model selection.
        ensemble: fit as a :class:`KFoldEnsemble`; ``None`` takes the model's default (only ``lgb`` is).
        params: model hyper-parameters (e.g. ``{"smoothing": 1e-3}`` for rbf, ``{"candidates": [...]}`` for as).

    Returns:
        A model following :class:`~nat2.surrogate.Surrogate`.

    Raises:
        ValueError: on an unknown name, an unknown hyper-parameter or a bad count.
    """
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; known: {sorted(SURROGATES)}")
    spec = SURROGATES[name]
    seed = check_count("seed", seed, 0)
    threads = check_count("threads", threads, 1)
    folds = check_count("folds", folds, 2)
    kwargs = dict(params or {})
    if "folds" in kwargs:
        raise ValueError(f"surrogate {name!r}: pass folds as the folds argument, not in params")
    if spec.nested:
        kwargs["folds"] = folds
    try:  # members are built lazily, so check the hyper-parameter names now, where the caller can act on it
        inspect.signature(spec.build).bind(seed, threads, **kwargs)
    except TypeError as exc:
        raise ValueError(f"surrogate {name!r}: bad params {sorted(params or {})}: {exc}") from None

    single = functools.partial(_build, name, threads, kwargs)
    if spec.ensemble if ensemble is None else ensemble:
        return KFoldEnsemble(single, name, folds=folds, seed=seed)
    return single(seed)
