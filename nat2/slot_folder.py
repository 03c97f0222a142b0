"""Reading a slot folder (written by :mod:`nat2.extract` or :mod:`nat2.finetune`): its card and its module.

A folder is ``card.json`` (architecture, variant, class count, costs, accuracies) plus ``weights.pt`` (the static
module's state dict). The module is rebuilt from the card's architecture with the super-net's own extraction code
(on a throw-away super-net), so a saved subnet needs nothing but nat2 to load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nat2.errors import Nat2Error
from nat2.space import Arch, Variant
from nat2.space.variants import STEM_STRIDES, recorded_stem_stride

__all__ = ["load_subnet", "read_card"]


def _build(variant: str, arch: Arch, num_classes: int, output_weights: list[float] | None = None,
           stem_stride: int = 2) -> nn.Module:
    """An (untrained) static module with ``arch``'s structure: the super-net's extraction, minus its weights."""
    from nat2.supernet import SuperNet

    # a private generator: loading a subnet must not move the caller's global torch RNG
    net = SuperNet(Variant.from_name(variant, stem_stride), arch.width_mult, num_classes, dropout=0.0,
                   generator=torch.Generator())
    return net.extract(arch, output_weights).eval()


def read_card(path: str | Path) -> dict[str, Any]:
    """The model card of a slot folder (``extract`` or ``finetune`` output).

    Raises:
        Nat2Error: the folder has no readable ``card.json``.
    """
    folder = Path(path)
    try:
        card = json.loads((folder / "card.json").read_text())
        Arch.from_json(card["arch"])
        _ = card["variant"], card["num_classes"], card["slot"]
        if recorded_stem_stride(card) not in STEM_STRIDES:
            raise ValueError("stem_stride")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Nat2Error(f"{folder} is not a nat2 subnet folder (card.json: {type(exc).__name__}); rerun the "
                        "stage that wrote it (extract or finetune)") from None
    return card


def load_subnet(path: str | Path) -> nn.Module:
    """The ready-to-use (eval mode, CPU) subnet saved in a slot folder by the ``extract`` or ``finetune`` stage.

    Multi-exit (AEP) fine-tuned slots come back as :class:`nat2.supernet.MultiExitNet`, whose ``forward`` is the
    deployed ensemble prediction.

    Raises:
        Nat2Error: the folder lacks ``card.json``/``weights.pt`` or they do not match each other.
    """
    folder = Path(path)
    card = read_card(folder)
    try:
        state = torch.load(folder / "weights.pt", map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise Nat2Error(f"{folder}/weights.pt is unreadable ({type(exc).__name__}); rerun the stage that wrote "
                        "it") from None
    arch = Arch.from_json(card["arch"])
    multi = card.get("exits") == "all"
    if multi and not isinstance(card.get("output_weights"), list):
        raise Nat2Error(f"{folder}/card.json says exits=all but has no output_weights list; rerun the finetune stage")
    module = _build(card["variant"], arch, card["num_classes"], card["output_weights"] if multi else None,
                    recorded_stem_stride(card))
    try:
        module.load_state_dict(state)
    except RuntimeError:
        raise Nat2Error(f"{folder}: weights.pt does not fit card.json's architecture; rerun the stage that wrote it"
                        ) from None
    return module.eval()
