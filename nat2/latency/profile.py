"""Building a latency look-up table for a search space, fitting its overhead and validating it end to end.

:func:`space_blocks` lists every distinct block a sub-network of the space can run: for each (width, resolution)
the stem with the fixed first block, each layer configuration (kernel, expand, branch mask) at each stage's first
(strided) position and at its other positions (same input size and channels, so positions 1-3 share one entry),
one dense-connection addition per stage, and every exit head. Each block is a module cut from a randomly
initialised super-net (latency does not depend on the weights' values), so it is exactly what extraction puts in
a sub-network. :func:`profile_space` then:

1. times every block (:mod:`nat2.latency.timing`), in a seeded shuffled order so a slow spell of the machine does
   not hit one resolution or one stage only;
2. times ``fit_subnets`` random extracted sub-networks end to end and fits ``measured ≈ scale · lut_sum + offset``
   by least squares (the per-network overhead);
3. times ``validate_subnets`` further random sub-networks and reports Kendall's τ and the mean absolute
   percentage error of the prediction on them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import kendalltau
from torch import nn

from nat2.costs import Geometry
from nat2.latency.lut import LUT_FORMAT, LatencyModel
from nat2.latency.timing import Timer, device_name
from nat2.space import N_EXITS, N_STAGES, SearchSpace, canonical_codes, layer_choice
from nat2.supernet import SuperNet
from nat2.supernet._dynamic import LayerCfg

__all__ = ["SUBNET_COLUMNS", "Block", "LatencyProfile", "fit_overhead", "profile_space", "sample_subnets",
           "space_blocks", "validation_stats", "write_profile"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Block:
    """One LUT entry: what runs, at which shapes (the LUT columns before the timing)."""

    kind: str
    width_mult: float
    resolution: int
    stage: int = -1
    position: int = -1
    kernel: int = 0
    expand: int = 0
    branch: int = 0
    exit: int = 0
    in_channels: int = 0
    out_channels: int = 0
    in_side: int = 0
    out_side: int = 0


def space_blocks(space: SearchSpace) -> list[Block]:
    """Every distinct block of ``space``'s sub-networks, in a fixed order."""
    parallel = space.variant.parallel
    choices = sorted({layer_choice(c, parallel) for c in set(canonical_codes(parallel)) if c})
    exits = range(1, N_EXITS + 1) if space.variant.early_exit else (N_EXITS,)
    blocks: list[Block] = []
    for w in space.width_mults:
        for r in space.resolutions:
            geo = Geometry(w, r, space.variant.stem_stride)
            blocks.append(Block("stem", w, r, in_channels=3, out_channels=geo.stem, in_side=r,
                                out_side=geo.stem_side))
            for s in range(N_STAGES):
                for pos in (0, 1):
                    c_in, c_out, h_in, h_out = geo.layer_io(s, pos)
                    blocks += [Block("layer", w, r, s, pos, k, e, b, 0, c_in, c_out, h_in, h_out)
                               for k, e, b in choices]
                if space.variant.dense:
                    _, c_out, _, h_out = geo.layer_io(s, 1)
                    blocks.append(Block("dense", w, r, s, in_channels=c_out, out_channels=c_out, in_side=h_out,
                                        out_side=h_out))
            for x in exits:
                c, h = geo.widths[x - 1], geo.stage_sides()[x - 1][1]
                blocks.append(Block("head", w, r, exit=x, in_channels=c, out_channels=0, in_side=h, out_side=1))
    return blocks


class _Add(nn.Module):
    """One dense-connection addition: the stage's running sum plus an earlier layer's output."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.register_buffer("skip", torch.randn(1, *shape, generator=torch.Generator().manual_seed(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.skip


def block_module(net: SuperNet, block: Block) -> nn.Module:
    """The static module that runs ``block``, cut from ``net`` (the super-net of the block's width)."""
    import copy

    if block.kind == "stem":
        return nn.Sequential(copy.deepcopy(net.stem), copy.deepcopy(net.first_block))
    if block.kind == "layer":
        cfg = LayerCfg(block.kernel, block.expand, block.branch)
        return net.stages[block.stage].layers[block.position].to_static(cfg)
    if block.kind == "dense":
        return _Add((block.out_channels, block.out_side, block.out_side))
    if block.kind == "head":
        return copy.deepcopy(net.heads[str(block.exit)])
    raise ValueError(f"unknown block kind {block.kind!r}")


def _supernets(space: SearchSpace, num_classes: int, seed: int) -> dict[float, SuperNet]:
    g = torch.Generator().manual_seed(seed)
    return {w: SuperNet(space.variant, w, num_classes, dropout=0.0, generator=g).eval() for w in space.width_mults}


def sample_subnets(space: SearchSpace, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct random canonical genomes (stage depths uniform, so small and large networks both occur)."""
    out: dict[str, np.ndarray] = {}
    while len(out) < n:
        for g in space.sample(rng, 2 * n, "uniform_depth"):
            out.setdefault(space.arch_id(g), g)
            if len(out) == n:
                break
    return np.stack(list(out.values()))


def fit_overhead(lut_sum: np.ndarray, measured: np.ndarray) -> tuple[float, float]:
    """``(scale, offset_ms)`` of ``measured ≈ scale · lut_sum + offset``, least squares on the *relative* error.

    Relative residuals weigh a 1 ms network like a 10 ms one, as the MAPE the model is judged by does (plain
    least squares lets the largest networks decide the offset that the smallest ones then get wrong). A fit that
    would make latency fall with the LUT sum (too few or too similar networks) keeps the sum as it is and fits
    the offset alone.
    """
    A = np.column_stack([lut_sum, np.ones_like(lut_sum)]) / measured[:, None]
    (scale, offset), *_ = np.linalg.lstsq(A, np.ones_like(measured), rcond=None)
    if not np.isfinite(scale) or scale <= 0:
        return 1.0, float(np.median(measured - lut_sum))
    return float(scale), float(offset)


def validation_stats(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Kendall's τ, mean and max absolute percentage error of predictions against measurements."""
    ape = np.abs(predicted - measured) / measured * 100.0
    tau = kendalltau(predicted, measured).statistic if len(measured) > 1 else float("nan")
    return {"n": len(measured), "kendall_tau": float(tau), "mape": float(ape.mean()), "max_ape": float(ape.max())}


@dataclass
class LatencyProfile:
    """What :func:`profile_space` measured: the LUT rows and metadata, and the end-to-end sub-networks."""

    table: pd.DataFrame
    meta: dict[str, Any]
    subnets: pd.DataFrame  # id, role (fit | validate), resolution, exit, lut_sum_ms, predicted_ms, measured_ms
    stats: dict[str, Any]


def profile_space(space: SearchSpace, num_classes: int, timer: Timer, *, fit_subnets: int, validate_subnets: int,
                  seed: int, threads: int, progress: Callable[[str], None] | None = None) -> LatencyProfile:
    """Measure ``space``'s LUT with ``timer``, fit the overhead and validate it (see the module doc)."""
    say = progress or log.info
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7411]))
    nets = _supernets(space, num_classes, seed)
    blocks = space_blocks(space)
    start = time.perf_counter()
    call_overhead = timer.call_overhead()
    runners = [timer.prepare(block_module(nets[b.width_mult], b), _input_shape(b)) for b in blocks]
    timings = timer.time(runners, rng, lambda rnd: say(
        f"latency LUT: round {rnd}/{timer.rounds} over {len(blocks)} blocks ({time.perf_counter() - start:.0f} s)"))
    del runners
    lut_s = time.perf_counter() - start
    table = pd.DataFrame([{**asdict(b), "latency_ms": t.latency_ms, "p25_ms": t.p25_ms, "p75_ms": t.p75_ms,
                           "repeats": t.repeats} for b, t in zip(blocks, timings, strict=True)])
    meta: dict[str, Any] = {
        "format": LUT_FORMAT, "backend": timer.backend, "device": str(timer.device),
        "device_name": device_name(timer.device), "torch": torch.__version__, "onnxruntime": _ort_version(),
        "threads": threads, "batch_size": timer.batch_size, "channels_last": timer.memory_format is
        torch.channels_last, "variant": space.variant.name,
        "stem_stride": space.variant.stem_stride, "width_mults": list(space.width_mults),
        "resolutions": list(space.resolutions), "num_classes": num_classes, "call_overhead_ms": call_overhead,
        "rounds": timer.rounds, "warmup": timer.warmup, "scale": 1.0, "offset_ms": 0.0, "validation": {},
    }
    raw = LatencyModel(space, num_classes, table, meta)

    genomes = sample_subnets(space, rng, fit_subnets + validate_subnets)
    start = time.perf_counter()
    archs = [space.decode(g) for g in genomes]
    runners = [timer.prepare(nets[a.width_mult].extract(a), (3, a.resolution, a.resolution)) for a in archs]
    measured = np.array([t.latency_ms for t in timer.time(runners, rng, lambda rnd: say(
        f"latency validation: round {rnd}/{timer.rounds} over {len(archs)} sub-networks "
        f"({time.perf_counter() - start:.0f} s)"))])
    del runners
    lut_sum = raw.lut_sum(genomes)
    fit = slice(0, fit_subnets)
    scale, offset = fit_overhead(lut_sum[fit], measured[fit])
    smallest = float(raw.lut_sum(space.min_genome()[None])[0])
    if scale * smallest + offset <= 0:  # a noisy fit must not predict a non-positive latency for any network
        scale, offset = float(np.mean(measured[fit] / lut_sum[fit])), 0.0
    predicted = scale * lut_sum + offset
    held = slice(fit_subnets, None)
    stats = {**validation_stats(predicted[held], measured[held]),
             "fit": validation_stats(predicted[fit], measured[fit]), "scale": scale, "offset_ms": offset,
             "raw_sum": validation_stats(lut_sum[held], measured[held]), "lut_s": lut_s, "blocks": len(blocks),
             "per_arch_us": _prediction_us(raw, genomes)}
    meta.update(scale=scale, offset_ms=offset,
                validation={k: stats[k] for k in ("n", "kendall_tau", "mape", "max_ape")})
    subnets = pd.DataFrame({
        "id": space.arch_ids(genomes), "role": ["fit"] * fit_subnets + ["validate"] * validate_subnets,
        "resolution": [a.resolution for a in archs], "exit": [a.stages_run for a in archs],
        "lut_sum_ms": lut_sum, "predicted_ms": predicted, "measured_ms": measured,
    })
    return LatencyProfile(table, meta, subnets, stats)


def _input_shape(b: Block) -> tuple[int, int, int]:
    if b.kind == "dense":
        return b.out_channels, b.out_side, b.out_side
    return b.in_channels, b.in_side, b.in_side


def _prediction_us(model: LatencyModel, genomes: np.ndarray) -> float:
    """Microseconds per architecture of a vectorised prediction over a 10k-genome population."""
    big = np.tile(genomes, (max(1, 10_000 // len(genomes)), 1))
    start = time.perf_counter()
    model(big)
    return (time.perf_counter() - start) / len(big) * 1e6


def _ort_version() -> str | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return str(onnxruntime.__version__)



SUBNET_COLUMNS = ("id", "role", "resolution", "exit", "lut_sum_ms", "predicted_ms", "measured_ms")


def write_profile(profile: LatencyProfile, lut: Path, subnets: Path, stats: Path) -> None:
    """The stage's three files, each written atomically: the LUT, the timed sub-networks (CSV), the statistics."""
    from nat2.io import csv_text, write_json, write_text
    from nat2.latency.lut import write_lut

    write_lut(lut, profile.table, profile.meta)
    write_text(subnets, csv_text(profile.subnets.to_dict("records"), SUBNET_COLUMNS))
    write_json(stats, {"backend": profile.meta["backend"], "device": profile.meta["device"],
                       "device_name": profile.meta["device_name"], "threads": profile.meta["threads"],
                       "batch_size": profile.meta["batch_size"], **profile.stats})
