"""Extraction of the final subnets: fixed slots chosen by trade-off, BN-recalibrated weights and model cards.

Exactly ``postprocess.slots`` subnets leave the search, whatever the final front looks like (so the pipeline's
shape never depends on the data): first the ``postprocess.accurate_slots`` most accurate members within
``postprocess.accurate_max_params``, then the high-trade-off points of the front (method.md §3.6), filled from the
front by crowding and then from the next rank when the front is smaller (:func:`nat2.selection.choose_slots`). Each slot
folder holds ``arch.json``, ``weights.pt`` (the static subnet's state dict, BN recalibrated on the calibration
subset at the subnet's resolution) and ``card.json``; :func:`nat2.slot_folder.load_subnet` rebuilds a ready module
from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nat2 import archive as arc
from nat2 import selection as sel
from nat2.context import RunContext, build_evaluator
from nat2.errors import Nat2Error
from nat2.io import atomic_dir, write_json
from nat2.search.inputs import read_search_archive
from nat2.space import SearchSpace

__all__ = ["extract_slots"]


def extract_slots(objectives: Sequence[str], slots: int, space: SearchSpace, ctx: RunContext, archive: Path,
                  supernet: Path, out: Path, *, manifest: Callable[[Path, str, dict[str, Any]], None],
                  accurate: int = 0, max_params: int = 0) -> list[dict[str, Any]]:
    """Write ``out/slot_<k>/`` for every slot and ``out/front.parquet`` (the final non-dominated set), atomically.

    Args:
        objectives: ``search.objectives``.
        slots: how many subnets leave the search (``len(postprocess.slots)``).
        space: the search space.
        ctx: the run context (device, data, split).
        archive: the final archive (measured on ``supernet``).
        supernet: the final super-net.
        out: the folder to write.
        manifest: ``(path, device, extra)`` writes the stage's manifest at ``path`` inside the folder.
        accurate: how many slots are the most accurate members within ``max_params`` (the rest by trade-off;
            :func:`nat2.selection.choose_slots`).
        max_params: parameter cap of the accurate slots (0 = none).
    """
    from nat2.evaluate import accuracy, calibrated_subnet

    ev = build_evaluator(ctx, space, supernet, cache_dir=None)
    df = read_search_archive(archive, space, ev.checkpoint_hash, supernet)
    names = tuple(objectives)
    F = arc.objective_matrix(df, names)
    k = slots
    if len(df) < k:
        raise Nat2Error(f"the final archive has {len(df)} architectures, fewer than the {k} postprocess.slots; "
                        "lower it or search longer")
    chosen, reasons = sel.choose_slots(F, df["top1"].to_numpy(), df["params"].to_numpy(), k, accurate, max_params)
    # every card says its predicted latency (searched on or not) when the run has a LUT
    costed = ctx.cost_model(space, latency=ctx.lut_path is not None)
    cards = []
    with atomic_dir(out) as tmp:
        manifest(tmp / "manifest.json", str(next(ev.nets.parameters()).device),
                 {"archive": str(archive), "supernet_hash": ev.checkpoint_hash})
        front = df.iloc[np.sort(sel.non_dominated(F))].reset_index(drop=True)
        arc.write_archive(tmp / "front.parquet", arc.make_archive(front))
        for slot, row_index in enumerate(chosen):
            row = df.iloc[int(row_index)]
            genome = np.asarray(row["genome"], dtype=np.int64)
            arch = space.decode(genome)
            sub = calibrated_subnet(ev.nets, arch, ev.calib, calib_batch_size=ev.calib_batch_size,
                                    memory_format=ev.memory_format)
            top1 = accuracy(sub, ev.val.batches(arch.resolution, ev.eval_batch_size))
            costs = costed(genome[None])
            card = {
                "slot": slot, "id": str(row["id"]), "variant": space.variant.name,
                "stem_stride": space.variant.stem_stride, "arch": arch.to_json(),
                "genome": [int(g) for g in genome], "num_classes": ev.nets.num_classes,
                "resolution": arch.resolution, "params": int(costs["params"][0]), "macs": int(costs["macs"][0]),
                "latency_predicted_ms": float(costs["latency"][0]) if "latency" in costs else None, "val_top1": top1,
                "archive_top1": float(row["top1"]), "origin_iteration": int(row["iteration"]),
                "supernet_hash": ev.checkpoint_hash, "objectives": list(names), "exits": "single",
                "chosen_by": reasons[slot],
            }
            folder = tmp / f"slot_{slot}"
            folder.mkdir()
            write_json(folder / "arch.json", {"id": card["id"], **arch.to_json()})
            torch.save({k_: v.cpu().contiguous() for k_, v in sub.state_dict().items()}, folder / "weights.pt")
            write_json(folder / "card.json", card)
            cards.append(card)
    return cards
