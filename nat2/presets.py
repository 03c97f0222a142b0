"""Presets: short overlays on ``params.yaml`` (``extends: ../params.yaml`` plus only the keys that differ).

nat2 reads a preset directly (:func:`nat2.config.read_params_dict` merges it onto the file it extends). Snakemake
and DVC read ``params.yaml`` only, so :func:`use_preset` (``make use PARAMS=...``, ``nat2 use``) writes the same
merge into it, keeping the base file's comments beside every key a user reads there.
"""

from __future__ import annotations

import io
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from nat2.config import EXTENDS, USED_HEADER, iter_keys, params_from_dict, read_params_dict, used_preset
from nat2.errors import ConfigError
from nat2.io import write_text

__all__ = ["holds_preset", "overlay_redundancies", "use_preset"]

#: mapping-valued keys (``train.lineage``, ``search.iterations``): one value each, replaced whole by an overlay
WHOLE_KEYS = frozenset(path for path, tp, _ in iter_keys() if typing.get_origin(tp) is dict)


def _extends(path: Path) -> Path | None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return path.parent / str(data[EXTENDS]) if EXTENDS in data else None


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
    base = _extends(preset) or preset
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
    overlay = yaml.safe_load(preset.read_text(encoding="utf-8"))
    overlay.pop(EXTENDS, None)
    have = read_params_dict(params_file)

    def walk(o: Any, h: Any, path: str) -> bool:
        if isinstance(o, dict) and isinstance(h, dict) and path not in WHOLE_KEYS:
            return all(walk(v, h.get(k), f"{path}.{k}" if path else str(k)) for k, v in o.items())
        return o == h

    return walk(overlay, have, "")


def overlay_redundancies(preset: str | os.PathLike[str]) -> list[str]:
    """Keys a preset sets to the value the file it extends already has (an overlay holds only what differs)."""
    preset = Path(preset)
    base_file = _extends(preset)
    if base_file is None:
        raise ConfigError(f"{preset}: not an overlay (no `{EXTENDS}:` key)")
    overlay = yaml.safe_load(preset.read_text(encoding="utf-8"))
    overlay.pop(EXTENDS)
    base = read_params_dict(base_file)
    out: list[str] = []

    def walk(o: Any, b: Any, path: str) -> None:
        if isinstance(o, dict) and isinstance(b, dict) and path not in WHOLE_KEYS:
            for k, v in o.items():
                walk(v, b.get(k), f"{path}.{k}" if path else str(k))
        elif o == b:
            out.append(path)

    walk(overlay, base, "")
    return out
