"""A small validator for frozen dataclass schemas.

Each key carries its doc and allowed values (:class:`Spec`); :func:`convert` walks a parsed YAML tree against the
dataclasses and fails on the first problem with ONE line naming the key path, the bad value and what is allowed,
e.g.::

    params.yaml: data.val_size = -3: must be an integer >= 0
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nat2.errors import ConfigError

__all__ = ["Spec", "convert", "fail", "key"]


@dataclass(frozen=True)
class Spec:
    """Allowed values of one key (the key's type comes from the dataclass annotation)."""

    doc: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    min_len: int | None = None
    max_len: int | None = None
    unique: bool = False
    sorted: bool = False


def key(doc: str, **constraints: Any) -> Any:
    """Declare a required key (no default: the value must come from the params file)."""
    return field(metadata={"spec": Spec(doc=doc, **constraints)})


def fail(path: str, value: Any, allowed: str, source: str = "params.yaml") -> typing.NoReturn:
    """Raise the one-line error: ``<source>: <key path> = <value>: <what is allowed>``."""
    raise ConfigError(f"{source}: {path} = {value!r}: {allowed}")


def _describe(tp: Any, spec: Spec) -> str:
    origin = typing.get_origin(tp)
    if origin is dict:
        return f"must be a mapping of {_describe_scalar(str, spec)} to {_describe_scalar(str, spec)}"
    if origin is tuple:
        item = typing.get_args(tp)[0]
        parts = [f"must be a list of {_describe_scalar(item, spec)}"]
        if spec.min_len is not None and spec.max_len is not None:
            parts.append(f"with {spec.min_len} to {spec.max_len} items")
        elif spec.min_len is not None:
            parts.append(f"with at least {spec.min_len} item{'s' if spec.min_len > 1 else ''}")
        if spec.unique:
            parts.append("no duplicates")
        if spec.sorted:
            parts.append("in increasing order")
        return ", ".join(parts)
    return "must be " + _describe_scalar(tp, spec)


def _describe_scalar(tp: Any, spec: Spec) -> str:
    if spec.choices is not None:
        return "one of " + ", ".join(str(c) for c in spec.choices)
    name = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string"}[tp]
    bounds = []
    if spec.ge is not None:
        bounds.append(f">= {_num(spec.ge, tp)}")
    if spec.gt is not None:
        bounds.append(f"> {_num(spec.gt, tp)}")
    if spec.le is not None:
        bounds.append(f"<= {_num(spec.le, tp)}")
    if spec.lt is not None:
        bounds.append(f"< {_num(spec.lt, tp)}")
    return name + (" " + " and ".join(bounds) if bounds else "")


def _num(v: float, tp: Any) -> str:
    return str(int(v)) if tp is int else repr(float(v))


def _check_scalar(value: Any, tp: Any, spec: Spec) -> bool:
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp is str:
        ok = isinstance(value, str)
    else:  # pragma: no cover - a programming error in the dataclasses above
        raise TypeError(f"unsupported config type {tp}")
    if not ok:
        return False
    if spec.choices is not None and value not in spec.choices:
        return False
    if tp in (int, float):
        if spec.ge is not None and not value >= spec.ge:
            return False
        if spec.gt is not None and not value > spec.gt:
            return False
        if spec.le is not None and not value <= spec.le:
            return False
        if spec.lt is not None and not value < spec.lt:
            return False
        if tp is float and value != value:  # NaN
            return False
    return True


def convert(cls: type, raw: Any, path: str, source: str) -> Any:
    """Validate ``raw`` against dataclass ``cls`` and build it (``path`` is the dotted key prefix)."""
    where = path or "top level"
    if not isinstance(raw, Mapping):
        fail(path or "<file>", raw, f"must be a mapping of keys ({where})", source)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in raw:
        if name not in fields:
            full = f"{path}.{name}" if path else str(name)
            raise ConfigError(f"{source}: {full}: unknown key; allowed keys in {where}: {', '.join(fields)}")
    values = {}
    for name, f in fields.items():
        full = f"{path}.{name}" if path else name
        if name not in raw:
            raise ConfigError(f"{source}: {full}: missing key ({f.metadata['spec'].doc}); add it, as in the "
                              "repository's params.yaml")
        values[name] = _convert_value(hints[name], f.metadata["spec"], raw[name], full, source)
    return cls(**values)


def _convert_value(tp: Any, spec: Spec, value: Any, path: str, source: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return convert(tp, value, path, source)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert_value(args[0], spec, value, path, source)
    if origin is dict:
        ok = isinstance(value, Mapping) and all(
            _check_scalar(k, str, spec) and _check_scalar(v, str, spec) for k, v in value.items())
        if not ok:
            fail(path, value, _describe(tp, spec), source)
        return dict(value)
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if not isinstance(value, list) or not all(_check_scalar(v, item, spec) for v in value):
            fail(path, value, _describe(tp, spec), source)
        if spec.min_len is not None and len(value) < spec.min_len:
            fail(path, value, _describe(tp, spec), source)
        if spec.max_len is not None and len(value) > spec.max_len:
            fail(path, value, _describe(tp, spec), source)
        if spec.unique and len(set(value)) != len(value):
            fail(path, value, _describe(tp, spec), source)
        if spec.sorted and list(value) != sorted(value):
            fail(path, value, _describe(tp, spec), source)
        return tuple(item(v) for v in value)
    if not _check_scalar(value, tp, spec):
        fail(path, value, _describe(tp, spec), source)
    return tp(value)
