"""Presets: short overlays on ``params.yaml`` (``extends: ../params.yaml`` plus only the keys that differ).

nat2 reads a preset directly (:func:`nat2.config.read_params_dict` merges it onto the file it extends). Snakemake
and DVC read ``params.yaml`` only, so :func:`use_preset` (``make use PARAMS=...``, ``nat2 use``) writes the same
merge into it, keeping the base file's comments beside every key a user reads there.
"""

from __future__ import annotations

import io
import os
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nat2.config import (
    EXTENDS,
    USED_HEADER,
    extended_file,
    iter_keys,
    params_from_dict,
    read_params_dict,
    read_yaml,
    used_preset,
)
from nat2.errors import ConfigError
from nat2.io import write_text

__all__ = ["holds_preset", "overlay_redundancies", "use_preset"]

#: mapping-valued keys (``train.lineage``, ``search.iterations``): one value each, replaced whole by an overlay
WHOLE_KEYS = frozenset(path for path, tp, _ in iter_keys() if typing.get_origin(tp) is dict)


def _overlay(preset: Path) -> tuple[Path | None, dict[str, Any]]:
    """The file a preset extends (None for a full params file) and the preset's own keys."""
    raw = read_yaml(preset)
    base = extended_file(preset, raw)
    raw.pop(EXTENDS, None)
    return base, raw


def _leaves(overlay: Mapping[str, Any], other: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """``(dotted key, overlay value, other's value)`` for every value the overlay sets (sections walked into)."""
    for k, v in overlay.items():
        dotted = f"{path}.{k}" if path else str(k)
        have = other.get(k) if isinstance(other, Mapping) else None
        if isinstance(v, Mapping) and isinstance(have, Mapping) and dotted not in WHOLE_KEYS:
            yield from _leaves(v, have, dotted)
        else:
            yield dotted, v, have


def _apply(node: Any, merged: Mapping[str, Any], overlay: Any, path: str = "") -> None:
    """Give ``node`` (a comment-keeping mapping read from the base file) ``merged``'s values, key by key.

    A value replaced whole is taken from the overlay's own node when it has one, with its comments.
    """
    for key, value in merged.items():
        dotted = f"{path}.{key}" if path else str(key)
        sub = overlay.get(key) if isinstance(overlay, Mapping) else None
        if isinstance(value, Mapping) and isinstance(node.get(key), Mapping) and dotted not in WHOLE_KEYS:
            _apply(node[key], value, sub, dotted)
        elif node.get(key) != value:
            node[key] = sub if sub is not None and sub == value else value


def use_preset(preset: str | os.PathLike[str], params_file: str | os.PathLike[str] = "params.yaml") -> bool:
    """Make ``params_file`` the preset merged onto the file it extends; False when it already holds exactly that.

    The merge is validated first (one-line error, nothing written) and written atomically, with the base file's
    comments and layout.
    """
    from ruamel.yaml import YAML

    preset, params_file = Path(preset), Path(params_file)
    if holds_preset(params_file, preset):
        return False
    merged = read_params_dict(preset)
    params_from_dict(merged, source=str(preset))
    if params_file.is_file() and read_params_dict(params_file) == merged:
        return False
    base = _overlay(preset)[0] or preset
    rt = YAML()
    rt.width, rt.preserve_quotes = 120, True
    doc = rt.load(base.read_text(encoding="utf-8"))
    _apply(doc, merged, rt.load(preset.read_text(encoding="utf-8")))
    buf = io.StringIO()
    rt.dump(doc, buf)
    write_text(params_file, f"{USED_HEADER}{preset.as_posix()} (written by `nat2 use`; revert with git)\n"
                            + buf.getvalue())
    return True


def holds_preset(params_file: str | os.PathLike[str], preset: str | os.PathLike[str]) -> bool:
    """``params_file`` was written from ``preset`` by ``nat2 use`` and still has every value the overlay sets."""
    params_file, preset = Path(params_file), Path(preset)
    if not params_file.is_file() or used_preset(params_file) != preset.as_posix():
        return False
    have = read_params_dict(params_file)
    return all(v == h for _, v, h in _leaves(_overlay(preset)[1], have))


def overlay_redundancies(preset: str | os.PathLike[str]) -> list[str]:
    """Keys a preset sets to the value the file it extends already has (an overlay holds only what differs)."""
    preset = Path(preset)
    base_file, overlay = _overlay(preset)
    if base_file is None:
        raise ConfigError(f"{preset}: not an overlay (no `{EXTENDS}:` key)")
    return [path for path, v, have in _leaves(overlay, read_params_dict(base_file)) if v == have]
