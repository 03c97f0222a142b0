"""Reading params files: the entry point of every stage (:func:`load_params`).

YAML with unique keys, presets merged onto the file they extend, dotted overrides, then validation against the
schema.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from nat2.config.schema import Params
from nat2.config.spec import convert
from nat2.errors import ConfigError


def params_from_dict(raw: Mapping[str, Any], source: str = "params.yaml") -> Params:
    """Validate a parsed params mapping; raise :class:`ConfigError` with one line on the first problem."""
    params = convert(Params, raw, "", source)
    params.check(source)
    return params


def _apply_override(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


class _DuplicateKey(yaml.YAMLError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKey(f"key {key!r} appears twice (lines {seen[key] + 1} and "
                                    f"{key_node.start_mark.line + 1}); keep one")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


#: the key by which a preset names the params file it overlays (path relative to the preset's folder)
EXTENDS = "extends"


def read_yaml(p: Path) -> dict[str, Any]:
    """The top-level mapping of a params file (or preset) as written, keys unique; one-line errors."""
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, not a params file; pass --params PATH of a YAML file")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: file not found; run from the repository root or pass --params PATH") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text file (not UTF-8); pass the YAML params file") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot be read ({exc.strerror}); check the path and its permissions") from None
    if "\x00" in text:
        raise ConfigError(f"{p}: not a text file (contains NUL bytes); pass the YAML params file")
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except _DuplicateKey as exc:
        raise ConfigError(f"{p}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}: not valid YAML{where}; fix the syntax") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of sections, not a {type(raw).__name__}")
    return raw


def merge_overlay(base: Mapping[str, Any], overlay: Mapping[str, Any], cls: type = Params, path: str = "",
                  source: str = "preset") -> dict[str, Any]:
    """``base`` with ``overlay``'s values, merged as the schema says.

    Sections merge key by key; every other value (mapping-valued keys such as ``train.lineage`` included) is
    replaced whole. An overlay key the schema does not know is refused.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    out = json.loads(json.dumps(dict(base)))
    for k, value in overlay.items():
        dotted = f"{path}.{k}" if path else str(k)
        if k not in fields:
            raise ConfigError(f"{source}: unknown key {dotted!r}; see `nat2 keys` for the keys a preset may set")
        tp = hints[k]
        if dataclasses.is_dataclass(tp) and isinstance(value, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge_overlay(out[k], value, tp, dotted, source)
        else:
            out[k] = json.loads(json.dumps(value))
    return out


#: the first line `nat2 use` writes into a params file: it then holds a preset, not the defaults presets extend
USED_HEADER = "# params.yaml <- "


def used_preset(path: str | os.PathLike[str]) -> str | None:
    """The preset a params file was made from by ``nat2 use`` (its first line says), else None."""
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError):
        return None
    return first[len(USED_HEADER):].split(" ", 1)[0].strip() if first.startswith(USED_HEADER) else None


def extended_file(path: Path, raw: Mapping[str, Any]) -> Path | None:
    """The file a preset extends (its ``extends:`` path, relative to the preset's folder); None for a full file."""
    return Path(os.path.normpath(path.parent / str(raw[EXTENDS]))) if EXTENDS in raw else None


def read_params_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The plain params mapping of a file.

    A preset (``extends: ../params.yaml`` plus the keys that differ) is merged onto the file it extends first,
    the same way for nat2, ``make use`` (Snakemake/DVC) and the tests. The base must be a full params file holding
    the defaults: another preset, or a ``params.yaml`` that ``nat2 use`` already merged a preset into, is refused
    (stacking presets would silently keep the first one's values).
    """
    p = Path(path)
    raw = read_yaml(p)
    base_path = extended_file(p, raw)
    if base_path is None:
        return raw
    raw.pop(EXTENDS)
    base = read_yaml(base_path)
    if EXTENDS in base or base_path.resolve() == p.resolve():
        raise ConfigError(f"{p}: extends {base_path}, which is a preset itself; a preset extends the full defaults "
                          f"file (extends: ../params.yaml)")
    holds = used_preset(base_path)
    if holds is not None:
        raise ConfigError(f"{p}: extends {base_path}, which holds {holds} (written by `nat2 use`), not the defaults; "
                          f"restore them first (git checkout {base_path}, or from the commit that has them)")
    return merge_overlay(base, raw, source=str(p))


def load_params(path: str | os.PathLike[str] = "params.yaml",
                overrides: Mapping[str, Any] | None = None) -> Params:
    """Read a params file (merging a preset onto the file it extends), override, validate.

    ``overrides`` are dotted keys, for tests and experiments.
    """
    raw = read_params_dict(path)
    if overrides:
        raw = json.loads(json.dumps(raw))  # deep copy of plain data
        for dotted, value in overrides.items():
            _apply_override(raw, dotted, value)
    return params_from_dict(raw, source=str(Path(path)))
