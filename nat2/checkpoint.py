"""Checkpoint files: atomic writes, and reads that fail with one line on a missing, corrupt or foreign file.

Two kinds exist. A *phase* checkpoint (``kind="phase"``) holds one width's super-net after (or, in the partial
folder, during) a training phase, with everything needed to resume: optimiser state, epoch, step, RNG state,
metrics. A *super-net* file (``kind="supernet"``) bundles the trained super-nets of every width of a run, with
their content hash; search, evaluation and post-processing read only this one.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from nat2.errors import Nat2Error
from nat2.io import write_bytes

__all__ = ["FORMAT", "load_checkpoint", "load_supernet", "payload_digest", "save_checkpoint", "save_supernet"]

FORMAT = "nat2-checkpoint"
_VERSION = 1


def payload_digest(obj: Any) -> str:
    """sha256 of a checkpoint payload: every tensor's name, shape, dtype and bytes, and every plain value.

    Stored inside the file and recomputed on load, so bytes damaged inside a tensor (which torch's zip reader does
    not notice) are refused instead of silently loaded.
    """
    h = hashlib.sha256()

    def walk(key: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{key}:T{tuple(t.shape)}:{t.dtype};".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            h.update(f"{key}:D{len(value)};".encode())
            for k in sorted(value, key=str):
                walk(f"{key}/{k}", value[k])
        elif isinstance(value, (list, tuple)):
            h.update(f"{key}:L{len(value)};".encode())
            for i, v in enumerate(value):
                walk(f"{key}/{i}", v)
        else:
            h.update(f"{key}={value!r};".encode())

    walk("", obj)
    return h.hexdigest()


def _canonical(value: Any) -> Any:
    """A copy of ``value`` whose pickle depends only on its content: containers rebuilt, strings interned.

    Pickle writes a string once per *object* and back-references it after that, so the same history row holds
    fresh string objects in a run that read half of it back from a partial checkpoint and literal (shared) ones in
    an uninterrupted run: equal content, different bytes. Interning makes every equal string one object.
    """
    kind = type(value)
    if kind in (dict, OrderedDict):  # a state_dict is an OrderedDict: keep its type
        return kind((_canonical(k), _canonical(v)) for k, v in value.items())
    if kind in (list, tuple):  # exact types only: a torch.Size or a named tuple passes through unchanged
        return kind(_canonical(v) for v in value)
    if kind is str:
        return sys.intern(value)
    return value


def save_checkpoint(path: str | os.PathLike[str], kind: str, payload: dict[str, Any]) -> None:
    """Atomically write ``payload`` (tensors and plain data) as a ``kind`` checkpoint, with its digest.

    Serialised in memory first: ``torch.save`` to a path records the file's name inside the zip, so writing to a
    temporary name would make two identical checkpoints differ in their bytes; and from a canonical copy, so a
    resumed run writes the same bytes as an uninterrupted one.
    """
    data = _canonical({"format": FORMAT, "version": _VERSION, "kind": kind, **payload})
    data["digest"] = payload_digest({k: v for k, v in data.items() if k != "digest"})
    buf = io.BytesIO()
    torch.save(data, buf)
    write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike[str], kind: str, hint: str = "rerun the stage that writes it",
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a ``kind`` checkpoint written by :func:`save_checkpoint`.

    Raises:
        Nat2Error: one line naming the file and the fix, when it is missing, unreadable or of another kind.
    """
    p = Path(path)
    if not p.is_file():
        raise Nat2Error(f"checkpoint {p} not found; {hint}")
    try:
        data = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # any unpickling problem means a corrupt or foreign file to the user
        raise Nat2Error(f"checkpoint {p} is corrupt or not a nat2 file ({type(exc).__name__}); {hint}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise Nat2Error(f"{p} is not a nat2 checkpoint; {hint}")
    if data.get("kind") != kind:
        raise Nat2Error(f"{p} is a nat2 {data.get('kind')!r} checkpoint where a {kind!r} one is needed; {hint}")
    if data.get("version") != _VERSION:
        raise Nat2Error(f"{p} has checkpoint version {data.get('version')}, this nat2 reads {_VERSION}; {hint}")
    digest = data.pop("digest", None)
    if digest != payload_digest(data):
        what = "has no digest (written by an older nat2)" if digest is None else "fails its digest check (damaged)"
        raise Nat2Error(f"checkpoint {p} {what}; {hint}")
    return data


def save_supernet(path: str | os.PathLike[str], nets: Any, meta: dict[str, Any]) -> None:
    """Write a run's super-nets (a :class:`nat2.supernet.SuperNetSet`) with their content hash."""
    space = nets.space
    save_checkpoint(path, "supernet", {
        "variant": space.variant.name, "stem_stride": space.variant.stem_stride, "width_mults": list(space.width_mults),
        "resolutions": list(space.resolutions), "num_classes": nets.num_classes,
        "content_hash": nets.content_hash(), "state_dict": nets.state_dict(), "meta": meta,
    })


def load_supernet(path: str | os.PathLike[str], space: Any, num_classes: int | None = None,
                  dropout: float = 0.0, map_location: str | torch.device = "cpu") -> tuple[Any, dict[str, Any]]:
    """Load a super-net file into a fresh :class:`~nat2.supernet.SuperNetSet` of ``space``.

    Raises:
        Nat2Error: the file is missing/corrupt, or was trained for another variant, width list or class count.
    """
    from nat2.space.variants import recorded_stem_stride
    from nat2.supernet import SuperNetSet

    hint = "rerun super-net training (or point to the right file)"
    data = load_checkpoint(path, "supernet", hint, map_location)
    if data["variant"] != space.variant.name:
        raise Nat2Error(f"{path} holds a {data['variant']} super-net but supernet.variant is "
                        f"{space.variant.name}; {hint}")
    if recorded_stem_stride(data) != space.variant.stem_stride:
        raise Nat2Error(f"{path} holds a super-net with stem stride {recorded_stem_stride(data)} but "
                        f"supernet.stem_stride is {space.variant.stem_stride}; {hint}")
    if [float(w) for w in data["width_mults"]] != [float(w) for w in space.width_mults]:
        raise Nat2Error(f"{path} holds widths {data['width_mults']} but supernet.width_mults is "
                        f"{list(space.width_mults)}; {hint}")
    if num_classes is not None and data["num_classes"] != num_classes:
        raise Nat2Error(f"{path} has {data['num_classes']} classes, the dataset has {num_classes}; {hint}")
    nets = SuperNetSet(space, data["num_classes"], dropout=dropout)
    nets.load_state_dict(data["state_dict"])
    if nets.content_hash() != data["content_hash"]:
        raise Nat2Error(f"{path}: the weights do not match the file's content hash {data['content_hash']} "
                        f"(damaged or edited); {hint}")
    return nets, {"content_hash": data["content_hash"], **data.get("meta", {})}
