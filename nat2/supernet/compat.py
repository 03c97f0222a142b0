"""Loading the official OFA MobileNetV3 super-net checkpoints into any OFAv2 variant.

OFA's released ``ofa_mbv3_d234_e346_k357_w1.0`` / ``w1.2`` state dicts use the key names of the ``ofa`` package's
``OFAMobileNetV3`` (``blocks.<i>.conv.depth_conv.conv.conv.weight`` ...). The mapping to our names is an explicit,
tested rule table (:data:`KEY_RULES`) instead of OFA's string-rewriting ``load_state_dict``. The shared body and the
final exit map exactly; what OFA has no weights for (OFAv2's extra exits and parallel branches) keeps its
initialisation, and a classifier whose class count differs is left freshly initialised (the new task's head).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nat2.errors import Nat2Error
from nat2.space import MAX_DEPTH, N_STAGES
from nat2.supernet.mbv3 import SuperNet

__all__ = ["KEY_RULES", "LoadReport", "load_ofa_state_dict", "ofa_key"]

_LAYER = r"^stages\.(?P<s>\d+)\.layers\.(?P<j>\d+)\.mbconv\."
_FINAL = rf"^heads\.{N_STAGES}\."

#: (pattern on our key, OFA template); ``{b}`` is OFA's block index 1 + 4*stage + layer.
KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"^stem\.(?P<rest>.*)$", "first_conv.{rest}"),
    (r"^first_block\.dw\.(?P<rest>.*)$", "blocks.0.conv.depth_conv.{rest}"),
    (r"^first_block\.project\.(?P<rest>.*)$", "blocks.0.conv.point_linear.{rest}"),
    (_LAYER + r"expand_conv\.weight$", "blocks.{b}.conv.inverted_bottleneck.conv.conv.weight"),
    (_LAYER + r"expand_bn\.(?P<rest>.*)$", "blocks.{b}.conv.inverted_bottleneck.bn.bn.{rest}"),
    (_LAYER + r"dw_conv\.weight$", "blocks.{b}.conv.depth_conv.conv.conv.weight"),
    (_LAYER + r"dw_conv\.(?P<rest>\w+_matrix)$", "blocks.{b}.conv.depth_conv.conv.{rest}"),
    (_LAYER + r"dw_bn\.(?P<rest>.*)$", "blocks.{b}.conv.depth_conv.bn.bn.{rest}"),
    (_LAYER + r"se\.(?P<rest>(reduce|expand)\..*)$", "blocks.{b}.conv.depth_conv.se.fc.{rest}"),
    (_LAYER + r"project_conv\.weight$", "blocks.{b}.conv.point_linear.conv.conv.weight"),
    (_LAYER + r"project_bn\.(?P<rest>.*)$", "blocks.{b}.conv.point_linear.bn.bn.{rest}"),
    (_FINAL + r"expand\.(?P<rest>.*)$", "final_expand_layer.{rest}"),
    (_FINAL + r"mix\.weight$", "feature_mix_layer.conv.weight"),
    (_FINAL + r"classifier\.(?P<rest>.*)$", "classifier.linear.{rest}"),
)
_COMPILED = tuple((re.compile(p), t) for p, t in KEY_RULES)


def ofa_key(key: str) -> str | None:
    """OFA's name for one of our state-dict keys, or None when OFA has no such tensor."""
    for pattern, template in _COMPILED:
        m = pattern.match(key)
        if m:
            groups = m.groupdict()
            b = 1 + MAX_DEPTH * int(groups["s"]) + int(groups["j"]) if "s" in groups else None
            return template.format(b=b, rest=groups.get("rest"))
    return None


@dataclass
class LoadReport:
    """What a checkpoint import did."""

    loaded: int = 0
    initialised: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the log."""
        groups: dict[str, int] = {}
        for k in self.initialised:
            group = ("exit heads" if k.startswith("heads.") else
                     "parallel branches" if ".conv1x1." in k or ".transform." in k else "other")
            groups[group] = groups.get(group, 0) + 1
        init = ", ".join(f"{g}: {n}" for g, n in sorted(groups.items())) or "none"
        resized = f"; classifier re-initialised for the new class count ({', '.join(self.resized)})" \
            if self.resized else ""
        return f"OFA import: {self.loaded} tensors loaded; {len(self.initialised)} kept their init ({init}){resized}"


def _read(source: str | os.PathLike[str] | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    if isinstance(source, Mapping):
        state = source
    else:
        path = Path(source)
        if not path.is_file():
            raise Nat2Error(f"OFA checkpoint {path} not found; give the path of ofa_mbv3_d234_e346_k357_w*.pth")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # any unpickling failure means the same thing to the user
            raise Nat2Error(f"OFA checkpoint {path} could not be read ({type(exc).__name__}); "
                            "download it again") from None
    if "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    return {k.removeprefix("module."): v for k, v in state.items()}


#: spellings of the same tensor in OFA's releases: older checkpoints name blocks ``.mobile_inverted_conv.`` and
#: some writers flatten the dynamic wrappers (``.bn.`` for ``.bn.bn.``...); OFA's own load_state_dict accepts them
_ALIASES = ((".bn.bn.", ".bn."), (".conv.conv.weight", ".conv.weight"), (".linear.linear.", ".linear."))


def _canonical(key: str, wanted: set[str]) -> str:
    """The current OFA spelling of a state-dict key of any OFA release (``key`` itself when none fits)."""
    key = key.replace(".mobile_inverted_conv.", ".conv.")
    if key in wanted:
        return key
    for long, short in _ALIASES:
        for a, b in ((short, long), (long, short)):
            if a in key and key.replace(a, b) in wanted:
                return key.replace(a, b)
    return key


def _canonical_state(state: Mapping[str, torch.Tensor], wanted: set[str]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        new = _canonical(key, wanted)
        if new in out:
            raise Nat2Error(f"OFA state dict holds {new!r} twice (as {key!r} too); it mixes two checkpoints")
        out[new] = tensor
    return out


@torch.no_grad()
def load_ofa_state_dict(net: SuperNet, source: str | os.PathLike[str] | Mapping[str, torch.Tensor]) -> LoadReport:
    """Copy an official OFA MobileNetV3 super-net state dict into ``net`` (any variant, same width).

    Accepts the key spellings of every OFA release (the older ``.mobile_inverted_conv.`` blocks included), as
    OFA's own ``load_state_dict`` does.

    Raises:
        Nat2Error: the file is missing/unreadable, is not an OFA MobileNetV3 state dict, or has another width.
    """
    state = _canonical_state(_read(source), {k for k in map(ofa_key, net.state_dict()) if k is not None})
    report = LoadReport()
    used: set[str] = set()
    for key, tensor in net.state_dict().items():
        src_key = ofa_key(key)
        if src_key is None:
            report.initialised.append(key)
            continue
        if src_key not in state:
            raise Nat2Error(f"not an OFA MobileNetV3 super-net state dict: {src_key!r} is missing; use "
                            "ofa_mbv3_d234_e346_k357_w1.0 or _w1.2")
        src = state[src_key]
        used.add(src_key)
        if tuple(src.shape) != tuple(tensor.shape):
            if key.startswith(f"heads.{N_STAGES}.classifier."):
                report.resized.append(f"{tuple(src.shape)}->{tuple(tensor.shape)}")
                continue
            raise Nat2Error(f"OFA tensor {src_key} has shape {tuple(src.shape)} but this super-net (width "
                            f"{net.width_mult}) needs {tuple(tensor.shape)}; load the checkpoint of the same width")
        tensor.copy_(src)
        report.loaded += 1
    unused = sorted(set(state) - used)
    if unused:
        raise Nat2Error(f"OFA state dict has {len(unused)} tensors this super-net cannot place (e.g. {unused[0]!r});"
                        " is it an OFA MobileNetV3 d234_e346_k357 super-net?")
    return report

