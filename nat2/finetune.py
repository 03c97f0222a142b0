"""NAT2's two-step fine-tuning of an extracted subnet (method.md §4.4), with the reference's protocol bugs fixed.

Step 1 trains the slot's subnet on the train split, validating after every epoch: the best validation top-1
picks the epoch count, and training stops early once the validation loss has not improved for ``patience``
epochs. Step 2 starts again from the extracted weights and trains on train + validation for exactly that many
epochs, with the cosine spanning exactly those epochs. The test set is read only to report top-1 before and after
(it never drives a decision, unlike the reference, whose step 2 early-stops on test loss: method.md §7.2 items
9-11). Each epoch ends with a checkpoint in the partial folder, so a killed run resumes at the last epoch.

Both steps start from the slot's architecture extracted afresh from the final super-net and BN-recalibrated (the
weights the ``extract`` stage saved). ``method: aep`` (early-exit variants) extracts AEP's multi-exit network
instead: every exit head ``1..nd`` re-attached, trained with ``sum_i w_i * CE_i`` and deployed as the weighted
sum of the exits' logits; its params/MACs on the card are the cost model's ``exits="all"`` counts. The finished
folder also holds the ONNX and ``torch.export`` programs of the deployed module (:mod:`nat2.export`), each
checked against the eager module.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nat2.checkpoint import load_checkpoint, save_checkpoint
from nat2.config import FinetuneConfig, params_hash, to_dict
from nat2.context import RunContext
from nat2.errors import Nat2Error
from nat2.evaluate import accuracy, calibrated_subnet
from nat2.io import atomic_dir, write_json
from nat2.live import EpochLive, publish
from nat2.seeds import seed_sequence
from nat2.slot_folder import read_card
from nat2.space import Arch, SearchSpace
from nat2.supernet import MultiExitNet
from nat2.train.losses import aep_loss, aep_weights
from nat2.train.optim import lr_at, set_lr
from nat2.train.progressive import DROPOUT_STREAM

__all__ = ["FT_LIVE_KEYS", "TwoSteps", "finetune_slot", "two_steps"]

log = logging.getLogger(__name__)

#: the epoch rows' columns logged to dvclive, per step (``live/step1``, ``live/step2``)
FT_LIVE_KEYS = ("lr", "train_loss", "val_loss", "val_top1")


def _optimizer(model: nn.Module, cfg: FinetuneConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_weights: tuple[float, ...] | None
          ) -> torch.Tensor:
    if isinstance(model, MultiExitNet):
        return aep_loss(model.forward_exits(x), y, loss_weights, 0.0)
    return F.cross_entropy(model(x), y)


@torch.no_grad()
def _val_loss_top1(model: nn.Module, evalset: Any, resolution: int, batch_size: int) -> tuple[float, float]:
    model.eval()
    total, n, correct = 0.0, 0, 0
    for x, y in evalset.batches(resolution, batch_size):
        out = model(x)
        total += float(F.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
        n += len(y)
    return total / n, 100.0 * correct / n


def _run(model: nn.Module, loader: Any, epochs: int, cfg: FinetuneConfig, val: Any | None, resolution: int,
         eval_batch: int, ckpt: Path, tag: str, run_hash: str, patience: int | None,
         loss_weights: tuple[float, ...] | None = None, *, seed: int, stream: int) -> list[dict[str, Any]]:
    """Train ``epochs`` epochs (early stop on validation loss when ``patience``); resumable per epoch.

    Dropout draws from torch's default generator, reseeded at every epoch from ``(seed, stream, epoch)`` inside
    ``fork_rng``: a run resumed after epoch k draws what the uninterrupted run drew, and the caller's RNG is
    left as it was.
    """
    opt = _optimizer(model, cfg)
    history: list[dict[str, Any]] = []
    start = 0
    if ckpt.is_file():
        saved = load_checkpoint(ckpt, "finetune", "delete the partial folder to restart fine-tuning")
        if saved["run_hash"] == run_hash:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            history, start = saved["history"], saved["epoch"]
            log.info("%s: resuming after epoch %d", tag, start)
    live = EpochLive(ckpt.parent / "live" / tag, FT_LIVE_KEYS, history)
    steps = len(loader)
    device = next(model.parameters()).device  # fork_rng must save and restore this device's generator too
    losses = [h["val_loss"] for h in history if h["val_loss"] is not None]  # step 2 has no validation
    best_loss, since = min(losses, default=float("inf")), 0
    if losses and patience:
        since = len(losses) - 1 - int(np.argmin(losses))
    for epoch in range(start, epochs):
        if patience and since >= patience:
            break
        model.train()
        loss_sum, seen, lr = 0.0, 0, cfg.lr
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            epoch_seed = seed_sequence(seed, "finetune", stream, epoch, DROPOUT_STREAM).generate_state(1)[0]
            torch.manual_seed(int(epoch_seed))
            for b, (x, y) in enumerate(loader.epoch(epoch)):
                lr = lr_at(epoch * steps + b, steps, epochs, 0, cfg.lr)
                set_lr(opt, lr)
                opt.zero_grad(set_to_none=True)
                loss = _loss(model, x, y, loss_weights)
                loss.backward()
                opt.step()
                loss_sum += loss.item() * len(y)
                seen += len(y)
        row = {"step": tag, "epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / max(seen, 1),
               "val_loss": None, "val_top1": None}
        if val is not None:
            row["val_loss"], row["val_top1"] = _val_loss_top1(model, val, resolution, eval_batch)
            if row["val_loss"] < best_loss:
                best_loss, since = row["val_loss"], 0
            else:
                since += 1
        history.append(row)
        log.info("%s epoch %d/%d: train loss %.4f val %s", tag, epoch + 1, epochs, row["train_loss"],
                 "-" if val is None else f"loss {row['val_loss']:.4f} top1 {row['val_top1']:.2f}")
        save_checkpoint(ckpt, "finetune", {"run_hash": run_hash, "model": model.state_dict(),
                                           "optimizer": opt.state_dict(), "history": history, "epoch": epoch + 1})
        live.log(row)  # after the checkpoint: a kill in between leaves dvclive behind, and it is rebuilt
    live.close()
    return history


@dataclasses.dataclass
class TwoSteps:
    """What :func:`two_steps` returns: the step-2 model and both steps' epoch rows."""

    model: nn.Module
    step1: list[dict[str, Any]]
    step2: list[dict[str, Any]]
    best: dict[str, Any]  # step 1's best epoch row (highest validation top-1; it sets step 2's length)


def two_steps(start: Callable[[], nn.Module], cfg: FinetuneConfig, ctx: RunContext, resolution: int, partial: Path,
              run_hash: str, stream: int, loss_weights: tuple[float, ...] | None = None) -> TwoSteps:
    """NAT2's two training steps of one network (a slot, or a baseline trained with exactly the same recipe).

    ``start`` builds the starting network afresh (on the device): step 1 trains it on train with validation and
    early stopping, step 2 trains a new one on train + validation for step 1's best epoch count. ``stream``
    separates the loaders' and dropout's random streams of different networks; per-epoch checkpoints go to
    ``partial/step{1,2}.pt``.
    """
    sp, val, eb = ctx.split, ctx.evalset("val"), ctx.data.eval_batch_size
    model = start()
    loader1 = ctx.train_loader(batch_size=cfg.batch_size, resolutions=[resolution], stage="finetune",
                               iteration=stream)
    h1 = _run(model, loader1, cfg.epochs, cfg, val, resolution, eb, partial / "step1.pt", "step1", run_hash,
              cfg.patience, loss_weights, seed=ctx.seed, stream=stream)
    best = max(h1, key=lambda h: (h["val_top1"], -h["epoch"]))
    merged = dataclasses.replace(sp, train_idx=np.concatenate([sp.train_idx, sp.val_idx]),
                                 train_labels=np.concatenate([sp.train_labels, sp.val_labels]))
    model = start()  # step 2 starts afresh
    loader2 = ctx.train_loader(batch_size=cfg.batch_size, resolutions=[resolution], stage="finetune",
                               iteration=100 + stream, split=merged)
    h2 = _run(model, loader2, int(best["epoch"]), cfg, None, resolution, eb, partial / "step2.pt", "step2", run_hash,
              None, loss_weights, seed=ctx.seed, stream=100 + stream)
    return TwoSteps(model, h1, h2, best)


def finetune_slot(cfg: FinetuneConfig, space: SearchSpace, ctx: RunContext, slot: Path, supernet: Path, out: Path,
                  *, resume_settings: Mapping[str, Any], manifest: Callable[[Path, str, dict[str, Any]], None],
                  partial_root: Path = Path("results/.partial/finetune")) -> dict[str, Any]:
    """Fine-tune one extracted subnet in two steps; write ``out/{weights.pt,card.json,live,model.*}``.

    ``live/step1`` and ``live/step2`` are the steps' dvclive folders (one step per epoch, :mod:`nat2.live`).

    Args:
        cfg: ``postprocess.finetune``.
        space: the search space.
        ctx: the run context (device, data, split).
        slot: a slot folder the ``extract`` stage wrote.
        supernet: the final super-net (both steps re-extract the slot's subnet from it).
        out: the folder to write (whole or not at all).
        resume_settings: the settings a per-epoch checkpoint must match to be resumed (with the slot's card).
        manifest: ``(path, device, extra)`` writes the stage's manifest at ``path`` inside the folder.
        partial_root: where per-epoch checkpoints live.
    """
    from nat2.export import export_slot

    device, fmt = ctx.device, ctx.memory_format
    card = read_card(slot)  # raises the one-line error when the folder is not a subnet
    arch = Arch.from_json(card["arch"])
    r = arch.resolution
    nets, meta = ctx.load_supernet(supernet, space)
    if meta["content_hash"] != card["supernet_hash"]:
        raise Nat2Error(f"{slot} was extracted from super-net {card['supernet_hash']}, but {supernet} is "
                        f"{meta['content_hash']}; rerun the extract stage")
    nets = nets.eval()
    calib, test = ctx.evalset("calib"), ctx.evalset("test")
    eb, cb = ctx.data.eval_batch_size, ctx.data.calib_batch_size
    multi = cfg.method == "aep"
    loss_w, out_w = aep_weights(arch.stages_run, cfg.ordering) if multi else (None, None)
    run_hash = params_hash({"card": card, **resume_settings}, length=16)
    partial = partial_root / f"{slot.name}-{run_hash}"
    partial.mkdir(parents=True, exist_ok=True)
    seed_iter = int(card["slot"])

    # both steps start from the slot's network extracted afresh from the super-net (already on the device)
    def start() -> nn.Module:
        return calibrated_subnet(nets, arch, calib, calib_batch_size=cb, memory_format=fmt, output_weights=out_w)

    test_before = accuracy(start(), test.batches(r, eb))
    done = two_steps(start, cfg, ctx, r, partial, run_hash, seed_iter, loss_w)
    model, h1, h2, best = done.model, done.step1, done.step2, done.best
    best_epochs = int(best["epoch"])
    test_after = accuracy(model, test.batches(r, eb))
    costed = ctx.cost_model(space, latency=ctx.lut_path is not None)
    costs = costed(np.asarray(card["genome"])[None], "all" if multi else "single")
    result = {**card, "finetune": to_dict(cfg), "exits": "all" if multi else "single",
              "loss_weights": list(loss_w) if multi else None, "output_weights": list(out_w) if multi else None,
              "params": int(costs["params"][0]), "macs": int(costs["macs"][0]),
              "latency_predicted_ms": float(costs["latency"][0]) if "latency" in costs else None,
              "searched_params": card["params"],
              "searched_macs": card["macs"],
              "val_top1_finetuned": best["val_top1"], "finetune_epochs": best_epochs,
              "test_top1_before": test_before, "test_top1_after": test_after}
    model = model.to(device="cpu", memory_format=torch.contiguous_format).eval()
    with atomic_dir(out) as tmp:
        torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp / "weights.pt")
        shutil.copyfile(slot / "arch.json", tmp / "arch.json")
        for tag, rows in (("step1", h1), ("step2", h2)):
            publish(partial / "live" / tag, tmp / "live" / tag, rows, FT_LIVE_KEYS)
        result["export"] = export_slot(model, r, tmp, ("onnx", "pt2"))
        manifest(tmp / "manifest.json", str(device), {"slot": card["slot"]})
        write_json(tmp / "card.json", result)
    shutil.rmtree(partial, ignore_errors=True)
    log.info("slot %s: test top-1 %.2f -> %.2f (%d epochs)", card["slot"], test_before, test_after, best_epochs)
    return result
