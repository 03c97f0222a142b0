"""Baselines: the networks a user would train instead of searching, trained exactly as the slots are fine-tuned.

A NAS result only means something beside what it replaces. The ``baseline@<model>`` stage trains each network of
``baseline.models`` from scratch with the slots' recipe and budget (``postprocess.finetune``, NAT2's two steps:
validation picks the epoch count, then train + validation for that many epochs), at ``baseline.resolution``, on
the same split and augmentation, and writes a card the report puts beside the slots.

Models (:data:`MODELS`):

* ``mobilenet_v3_small``: torchvision's, randomly initialised, ``num_classes`` outputs (1.5 M params at 10
  classes). Its stem and four more stride-2 stages leave a 1x1 map at 28-32 px: it is what a user gets by taking
  the stock mobile network.
* ``cnn``: a plain three-conv CNN (32, 64, 128 channels, 3x3, BN + ReLU, max-pool after the first two, global
  average pool, dropout, linear): about 0.1 M params, the kind of network in Fashion-MNIST's benchmark table.

Params and MACs are counted by :func:`count_costs` exactly as :class:`nat2.costs.CostModel` counts a subnet
(every parameter; a convolution's MACs are its output elements times ``c_in / groups * k * k``, a linear layer's
``in * out``; BatchNorm, activations, pooling and additions are free), which the tests check on extracted subnets.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nat2.config import BASELINES, BaselineConfig, FinetuneConfig, params_hash, to_dict
from nat2.context import RunContext
from nat2.errors import Nat2Error
from nat2.evaluate import accuracy
from nat2.finetune import FT_LIVE_KEYS, two_steps
from nat2.io import atomic_dir, write_json
from nat2.live import publish
from nat2.seeds import seed_sequence

__all__ = ["MODELS", "PlainCNN", "build_baseline", "count_costs", "read_baseline", "resolution_of", "train_baseline"]

log = logging.getLogger(__name__)

#: the ``baseline.models`` names
MODELS = BASELINES
#: a fixed stream tag per model: each baseline's data order and dropout draws differ from the slots' and each other's
_STREAMS = {"mobilenet_v3_small": 1000, "cnn": 1001}


class PlainCNN(nn.Sequential):
    """Three 3x3 conv-BN-ReLU blocks (max-pool after the first two), global average pool, dropout, linear."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (32, 64, 128), dropout: float = 0.2) -> None:
        layers: list[nn.Module] = []
        c_in = 3
        for i, c in enumerate(widths):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = c
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes)]
        super().__init__(*layers)


def build_baseline(name: str, num_classes: int, generator: torch.Generator) -> nn.Module:
    """A freshly initialised baseline network; its initial weights are a function of ``generator`` alone.

    torchvision initialises from the global RNG, so the build runs inside ``fork_rng`` seeded from
    ``generator``: the caller's RNG state is left as it was.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # not torch.manual_seed: it would reseed CUDA's too
        if name == "mobilenet_v3_small":
            from torchvision.models import mobilenet_v3_small

            return mobilenet_v3_small(num_classes=num_classes)
        if name == "cnn":
            return PlainCNN(num_classes)
    raise Nat2Error(f"unknown baseline {name!r}; baseline.models takes {', '.join(MODELS)}")


def count_costs(module: nn.Module, resolution: int) -> dict[str, int]:
    """``{"params", "macs"}`` of ``module`` on one ``3 x r x r`` image, counted as the cost model counts."""
    macs = 0

    def on_conv(m: nn.Conv2d, _inputs: Any, out: torch.Tensor) -> None:
        nonlocal macs
        macs += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def on_linear(m: nn.Linear, _inputs: Any, out: torch.Tensor) -> None:
        nonlocal macs
        macs += m.in_features * m.out_features

    handles = [m.register_forward_hook(on_conv) for m in module.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_hook(on_linear) for m in module.modules() if isinstance(m, nn.Linear)]
    was_training = module.training
    device = next(module.parameters()).device
    try:
        with torch.no_grad():
            module.eval()(torch.zeros(1, 3, resolution, resolution, device=device))
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    return {"params": sum(p.numel() for p in module.parameters()), "macs": int(macs)}


def resolution_of(cfg: BaselineConfig, resolutions: tuple[int, ...]) -> int:
    """``baseline.resolution``, or the super-net's largest resolution when it is 0."""
    return cfg.resolution or max(resolutions)


def train_baseline(name: str, cfg: FinetuneConfig, resolution: int, ctx: RunContext, out: Path, *,
                   resume_settings: Mapping[str, Any], manifest: Callable[[Path, str, dict[str, Any]], None],
                   partial_root: Path = Path("results/.partial/baseline")) -> dict[str, Any]:
    """Train baseline ``name`` with the slots' two-step recipe; write ``out/{weights.pt,card.json,live,manifest}``.

    Args:
        name: one of :data:`MODELS`.
        cfg: ``postprocess.finetune`` (the slots' recipe and budget).
        resolution: the input side.
        ctx: the run context (device, data, split).
        out: the folder to write (whole or not at all).
        resume_settings: the settings a per-epoch checkpoint must match to be resumed.
        manifest: ``(path, device, extra)`` writes the stage's manifest at ``path`` inside the folder.
        partial_root: where per-epoch checkpoints live.
    """
    if name not in MODELS:
        raise Nat2Error(f"unknown baseline {name!r}; baseline.models takes {', '.join(MODELS)}")
    device, fmt = ctx.device, ctx.memory_format
    stream = _STREAMS[name]
    init_seed = int(seed_sequence(ctx.seed, "baseline", stream).generate_state(1)[0])
    num_classes = ctx.source.num_classes

    def start() -> nn.Module:
        net = build_baseline(name, num_classes, torch.Generator().manual_seed(init_seed))
        return net.to(device=device, memory_format=fmt)

    run_hash = params_hash({"baseline": name, "resolution": resolution, **resume_settings}, length=16)
    partial = partial_root / f"{name}-{run_hash}"
    partial.mkdir(parents=True, exist_ok=True)
    done = two_steps(start, cfg, ctx, resolution, partial, run_hash, stream)
    test = ctx.evalset("test")
    test_top1 = accuracy(done.model, test.batches(resolution, ctx.data.eval_batch_size))
    model = done.model.to(device="cpu", memory_format=torch.contiguous_format).eval()
    card = {"baseline": name, "resolution": resolution, "num_classes": num_classes, **count_costs(model, resolution),
            "finetune": {**to_dict(cfg), "method": "standard"},  # one head, plain cross-entropy, whatever slots use
            "val_top1_finetuned": done.best["val_top1"],
            "finetune_epochs": int(done.best["epoch"]), "test_top1": test_top1}
    with atomic_dir(out) as tmp:
        torch.save({k: v.detach().contiguous() for k, v in model.state_dict().items()}, tmp / "weights.pt")
        for tag, rows in (("step1", done.step1), ("step2", done.step2)):
            publish(partial / "live" / tag, tmp / "live" / tag, rows, FT_LIVE_KEYS)
        manifest(tmp / "manifest.json", str(device), {"baseline": name})
        write_json(tmp / "card.json", card)
    shutil.rmtree(partial, ignore_errors=True)
    log.info("baseline %s: %d params, %.2f M MACs at %d px, test top-1 %.2f (%d epochs)", name, card["params"],
             card["macs"] / 1e6, resolution, test_top1, card["finetune_epochs"])
    return card


def read_baseline(folder: Path) -> dict[str, Any]:
    """A baseline's card (one-line error when the folder is not a finished baseline)."""
    import json

    path = folder / "card.json"
    try:
        card = json.loads(path.read_text())
        numbers = [card[k] for k in ("params", "macs", "test_top1", "val_top1_finetuned", "finetune_epochs",
                                     "resolution")]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
            raise TypeError("a figure is not a number")
    except (OSError, ValueError, KeyError, TypeError):
        raise Nat2Error(f"{path} is missing or not a baseline card; rerun the baseline stage") from None
    if card.get("baseline") != folder.name:
        raise Nat2Error(f"{path} is the card of baseline {card.get('baseline')!r}, not {folder.name!r}; rerun the "
                        f"baseline stage for {folder.name}")
    return card
