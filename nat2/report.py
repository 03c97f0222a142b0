"""The run's report: a summary table, headline metrics for ``dvc metrics show``, plot data as CSV, and PNGs.

Everything is recomputed from the pipeline's own outputs, never copied from logs: the hypervolume of every
iteration's archive on the fixed normalisation (:func:`nat2.indicators.archive_stats`, the value the search stages
record), the final archive and its non-dominated front, the surrogate's rank correlations, the super-net training
curves and the fine-tuning curves and cards. The PNGs are drawn from the very CSVs that are written (matplotlib,
Agg backend), so a figure never shows data that the CSV does not hold.

Slots are ranked on validation (step 1's best epoch); test top-1 is only reported. ``archive.csv`` / ``front.csv``
carry a ``cost`` column, the searched cost objective (``params`` or ``macs``), so the DVC plot of the front uses
the axis it is non-dominated on. Files (each a separate pipeline output): ``summary.md``, ``metrics.json``,
``hv.csv``, ``surrogate.csv``, ``archive.csv``, ``front.csv``, ``training.csv``, ``finetune.csv``,
``latency.csv`` and ``figures/*.png``.

Latency: every archive member's predicted latency comes from the LUT model (``archive.csv``'s ``latency_ms``); each
slot's exported program is timed here, as ``profile_latency`` timed the LUT (:func:`measure_slots`), so a timing
setting reruns the report and never the fine-tuning, and the cards stay byte-reproducible.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nat2 import archive as arc
from nat2 import selection as sel
from nat2.config import Params
from nat2.costs import CostModel
from nat2.errors import Nat2Error
from nat2.io import csv_text, write_json, write_text
from nat2.live import live_folder, read_rows
from nat2.space import SearchSpace

__all__ = ["FILES", "FIGURES", "beating_slots", "build_report", "summary_table", "write_report"]

log = logging.getLogger(__name__)

FILES = ("summary.md", "metrics.json", "hv.csv", "surrogate.csv", "archive.csv", "front.csv", "slots.csv",
         "baselines.csv", "training.csv", "finetune.csv", "latency.csv")
FIGURES = ("hv.png", "surrogate.png", "front.png", "latency.png", "training.png", "finetune.png")

_HV_COLUMNS = ("iteration", "hv", "front_size", "archive_size", "best_top1")
_TAU_COLUMNS = ("iteration", "model", "cv_kendall_tau", "cv_rmse", "candidates_kendall_tau", "candidates_rmse")
_POINT_COLUMNS = ("id", "iteration", "origin", "top1", "error", "params", "macs", "latency_ms", "cost", "rank")
_LATENCY_COLUMNS = ("slot", "predicted_ms", "measured_ms")
_SLOT_COLUMNS = ("slot", "params", "macs", "resolution", "val_top1", "error", "test_top1")
_BASELINE_COLUMNS = ("model", "params", "macs", "resolution", "val_top1", "error", "test_top1", "epochs")
_TRAIN_COLUMNS = ("index", "phase", "width", "epoch", "lr", "train_loss", "train_top1", "val_top1")
_FT_COLUMNS = ("slot", "index", "step", "epoch", "lr", "train_loss", "val_loss", "val_top1")


def _read_json(path: Path, hint: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise Nat2Error(f"{path} is missing or unreadable ({type(exc).__name__}); {hint}") from None


def _live_rows(folder: Path, stage: str) -> list[dict[str, Any]]:
    if not (folder / "metrics.json").is_file():
        raise Nat2Error(f"{folder}: missing (a dvclive folder of epoch metrics); rerun {stage}")
    return read_rows(folder)


def build_report(params: Params, search: Path, supernet_dir: Path, finetune: Path, lut: Path,
                 baselines: Path, measure: bool = True) -> dict[str, Any]:
    """Gather every table of the report (nothing is written).

    ``lut``: the latency look-up table; its model predicts every archive member's latency, and ``measure`` times
    each fine-tuned slot's exported program (``latency.backend``; :func:`measure_slots`). ``baselines``: the
    folder of the ``baseline@<model>`` outputs, one per ``baseline.models``.
    """
    from nat2.baseline import read_baseline
    from nat2.indicators import archive_stats, max_costs
    from nat2.latency import LatencyModel

    order = ["0", *params.search.iteration_order]
    cards = [_read_json(finetune / f"slot_{k}" / "card.json", "rerun the finetune stage")
             for k in params.postprocess.slots]
    base_cards = [read_baseline(baselines / name) for name in params.baseline.models]
    space = SearchSpace.from_config(params.supernet)
    num_classes = int(cards[0]["num_classes"])
    model = CostModel(space, num_classes, LatencyModel.load(lut, space, num_classes))
    names = params.search.objectives
    scale = max_costs(space, model)

    hv_rows, tau_rows = [], []
    for it in order:
        df = arc.read_archive(search / f"iter_{it}" / "archive.parquet")
        stats = archive_stats(df, names, scale, params.search.hv_ref)
        hv_rows.append({"iteration": int(it), "hv": stats["hv"], "front_size": stats["front_size"],
                        "archive_size": stats["size"], "best_top1": stats["best_top1"]})
        if it != "0":
            sur = _read_json(search / f"iter_{it}" / "surrogate.json", "rerun fit_surrogate")
            upd = _read_json(search / f"iter_{it}" / "update.json", "rerun update_archive")
            cand = upd.get("predictor_on_candidates") or {}
            tau_rows.append({"iteration": int(it), "model": sur.get("model"),
                             "cv_kendall_tau": sur.get("kendall_tau"), "cv_rmse": sur.get("rmse"),
                             "candidates_kendall_tau": cand.get("kendall_tau"),
                             "candidates_rmse": cand.get("rmse")})

    final = arc.read_archive(search / f"iter_{order[-1]}" / "archive.parquet")
    F = arc.objective_matrix(final, names)
    rank = np.empty(len(final), dtype=np.int64)
    for r, idx in enumerate(sel.fronts(F)):
        rank[idx] = r
    cost_axis = next((n for n in names[1:] if n in ("params", "macs")), "params")
    predicted = model(np.stack(final["genome"].to_numpy()).astype(np.int64))["latency"]
    points = [{"id": str(row["id"]), "iteration": int(row["iteration"]), "origin": str(row["origin"]),
               "top1": float(row["top1"]), "error": float(row["error"]), "params": int(row["params"]),
               "macs": int(row["macs"]), "latency_ms": float(predicted[i]), "cost": int(row[cost_axis]),
               "rank": int(rank[i])}
              for i, row in enumerate(final.to_dict("records"))]
    front = [p for p in points if p["rank"] == 0]

    training = []
    for phase in _phases(params):
        folder = live_folder(supernet_dir / f"{phase}.pt")
        widths = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []  # not Snakemake stamps
        if not widths:
            raise Nat2Error(f"{folder}: missing or empty (the phase's dvclive metrics); rerun super-net training")
        for wdir in widths:
            width = int(wdir.name.lstrip("w")) / 100
            for row in _live_rows(wdir, "super-net training"):
                training.append({"index": len(training) + 1, "phase": phase, "width": width,
                                 **{k: row.get(k) for k in _TRAIN_COLUMNS[3:]}})
    ft_rows = []
    for card in cards:
        live = finetune / f"slot_{card['slot']}" / "live"
        rows = [{"step": tag, **r} for tag in ("step1", "step2") for r in _live_rows(live / tag, "finetune")]
        ft_rows += [{"slot": card["slot"], "index": i + 1, **{k: r.get(k) for k in _FT_COLUMNS[2:]}}
                    for i, r in enumerate(rows)]

    slot_latency = measure_slots(params, finetune, cards) if measure else [
        {"slot": c["slot"], "predicted_ms": c.get("latency_predicted_ms"), "measured_ms": None} for c in cards]
    metrics = _metrics(params, hv_rows, tau_rows, cards, front, base_cards)
    best = next(row for row in slot_latency if row["slot"] == metrics["best_slot"])
    metrics.update(best_latency_predicted_ms=best["predicted_ms"], best_latency_measured_ms=best["measured_ms"],
                   latency_model=model.latency.meta["validation"])
    return {"cost_axis": cost_axis, "hv": hv_rows, "latency": slot_latency, "lut": model.latency.meta,
            "surrogate": tau_rows, "archive": points, "front": front, "training": training, "finetune": ft_rows,
            "cards": cards, "baselines": base_cards, "metrics": metrics}


def measure_slots(params: Params, finetune: Path, cards: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each slot's predicted latency (its card) and measured one: its exported program, timed as the LUT was.

    ``latency.backend`` torch times ``model.pt2`` (the ``torch.export`` program) on ``runtime.device``,
    onnxruntime times ``model.onnx``; same batch size, threads, warm-up, repeats and rounds as the LUT.
    """
    import torch

    from nat2.latency.timing import make_timer
    from nat2.runtime import memory_format, setup_torch

    cfg = params.latency
    timer = make_timer(cfg.backend, setup_torch(params.runtime), memory_format(params.runtime),
                       params.runtime.threads, cfg.batch_size, cfg.warmup, cfg.repeats, cfg.rounds)
    runners = []
    for c in cards:
        folder = finetune / f"slot_{c['slot']}"
        r = int(c["resolution"])
        if cfg.backend == "onnxruntime":
            runners.append(timer.prepare_onnx(folder / "model.onnx", (3, r, r)))
        else:
            program = torch.export.load(folder / "model.pt2").module()
            runners.append(timer.prepare(program, (3, r, r)))
    timings = timer.time(runners, np.random.default_rng(params.seed))
    return [{"slot": c["slot"], "predicted_ms": c.get("latency_predicted_ms"), "measured_ms": t.latency_ms}
            for c, t in zip(cards, timings, strict=True)]


def _phases(params: Params) -> list[str]:
    """Training phases as params.yaml lists them (``full``, then ``train.lineage`` in its order)."""
    return ["full", *params.train.lineage]


def _metrics(params: Params, hv_rows: list[dict[str, Any]], tau_rows: list[dict[str, Any]],
             cards: list[dict[str, Any]], front: list[dict[str, Any]],
             base_cards: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    # slots are ranked on validation (step 1's best epoch), never on test: test top-1 is only reported
    best = max(cards, key=lambda c: (c["val_top1_finetuned"], -c["params"]))
    near = [c for c in cards if c["val_top1_finetuned"] >= best["val_top1_finetuned"] - 1.0]
    small = min(near, key=lambda c: (c["params"], -c["val_top1_finetuned"]))
    run = f"{params.search.policy}/seed{params.seed}"
    return {
        "final_hv": hv_rows[-1]["hv"], "initial_hv": hv_rows[0]["hv"],
        "hv_gain": hv_rows[-1]["hv"] - hv_rows[0]["hv"], "hv_by_run": {run: hv_rows[-1]["hv"]},
        "iterations": len(hv_rows) - 1, "front_size": len(front),
        "best_val_top1_search": hv_rows[-1]["best_top1"],
        "last_surrogate_tau": tau_rows[-1]["cv_kendall_tau"] if tau_rows else None,
        "best_test_top1": best["test_top1_after"], "best_val_top1": best["val_top1_finetuned"],
        "best_slot": best["slot"],
        "best_params": best["params"], "best_macs": best["macs"],
        "smallest_within_1pt": {"slot": small["slot"], "params": small["params"], "macs": small["macs"],
                                "val_top1": small["val_top1_finetuned"], "test_top1": small["test_top1_after"]},
        "subnets": len(cards),
        "slots": {str(c["slot"]): {"params": c["params"], "macs": c["macs"], "test_top1": c["test_top1_after"],
                                   "val_top1": c["val_top1_finetuned"]} for c in cards},
        # per baseline, how many slots beat it outright (a number: DVC's metrics views drop lists)
        "baselines": {b["baseline"]: {"params": b["params"], "macs": b["macs"], "test_top1": b["test_top1"],
                                      "val_top1": b["val_top1_finetuned"], "resolution": b["resolution"],
                                      "slots_beating": len(beating_slots(b, cards))}
                      for b in base_cards},
    }


def summary_table(cards: Sequence[dict[str, Any]], latency: Sequence[dict[str, Any]] = ()) -> str:
    """The slots as a Markdown table (also what ``nat2 show`` prints); ``latency``: :func:`measure_slots`' rows."""
    measured = {row["slot"]: row["measured_ms"] for row in latency}
    head = ("| slot | id | exits | res | params (M) | MACs (M) | latency ms (pred / meas) | val top-1 (search) "
            "| val top-1 (fine-tuned) | epochs | test top-1 before | test top-1 after |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for c in cards:
        pred = c.get("latency_predicted_ms")
        meas = measured.get(c["slot"])
        lat = f"{pred:.2f}" if pred is not None else "-"
        lat += f" / {meas:.2f}" if meas is not None else ""
        lines.append(f"| {c['slot']} | {c['id']} | {c.get('exits', 'single')} | {c['resolution']} "
                     f"| {c['params'] / 1e6:.3f} | {c['macs'] / 1e6:.2f} | {lat} | {c['val_top1']:.2f} "
                     f"| {c['val_top1_finetuned']:.2f} | {c['finetune_epochs']} | {c['test_top1_before']:.2f} "
                     f"| {c['test_top1_after']:.2f} |")
    return "\n".join(lines) + "\n"


def beating_slots(base: dict[str, Any], cards: Sequence[dict[str, Any]]) -> list[int]:
    """The slots that beat a baseline outright on test: higher test top-1 with fewer MACs (reported, never used)."""
    return [c["slot"] for c in cards if c["test_top1_after"] > base["test_top1"] and c["macs"] < base["macs"]]


def _baseline_table(base_cards: Sequence[dict[str, Any]], cards: Sequence[dict[str, Any]]) -> str:
    """The baselines (trained with the slots' recipe) as a Markdown table, with the slots that beat each."""
    if not base_cards:
        return ""
    lines = ["Baselines, trained from scratch with the slots' fine-tuning recipe and budget:\n",
             "| baseline | res | params (M) | MACs (M) | val top-1 | epochs | test top-1 | beaten by slots "
             "(higher test top-1, fewer MACs) |", "|---|---|---|---|---|---|---|---|"]
    for b in base_cards:
        beaten = beating_slots(b, cards)
        lines.append(f"| {b['baseline']} | {b['resolution']} | {b['params'] / 1e6:.3f} | {b['macs'] / 1e6:.2f} "
                     f"| {b['val_top1_finetuned']:.2f} | {b['finetune_epochs']} | {b['test_top1']:.2f} "
                     f"| {', '.join(map(str, beaten)) or 'none'} |")
    return "\n".join(lines) + "\n\n"


def _baseline_rows(base_cards: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The baselines on the slots' axes (validation error as a fraction, as archives hold it)."""
    return [{"model": b["baseline"], "params": b["params"], "macs": b["macs"], "resolution": b["resolution"],
             "val_top1": b["val_top1_finetuned"], "error": 1.0 - b["val_top1_finetuned"] / 100.0,
             "test_top1": b["test_top1"], "epochs": b["finetune_epochs"]} for b in base_cards]


def _summary(params: Params, rep: dict[str, Any]) -> str:
    m, lut = rep["metrics"], rep["lut"]
    val = lut["validation"]
    hv = "\n".join(f"| {r['iteration']} | {r['hv']:.5f} | {r['front_size']} | {r['best_top1']:.2f} |"
                   for r in rep["hv"])
    small = m["smallest_within_1pt"]
    return (
        f"# nat2 report\n\n"
        f"{params.data.dataset}, {params.supernet.variant}, policy {params.search.policy}, seed {params.seed}, "
        f"objectives {' / '.join(params.search.objectives)}, {m['iterations']} iterations.\n\n"
        f"## Subnets\n\nTest top-1 is measured only here, after every decision (slots are ranked on "
        f"validation). Latency: the LUT model's prediction / the exported program timed on "
        f"{lut['device_name']} ({lut['backend']}, {lut['threads']} threads, batch {lut['batch_size']}).\n\n"
        f"{summary_table(rep['cards'], rep['latency'])}\n"
        f"{_baseline_table(rep['baselines'], rep['cards'])}"
        f"Best fine-tuned subnet (by validation): slot {m['best_slot']}, {m['best_params'] / 1e6:.3f} M params, "
        f"test top-1 **{m['best_test_top1']:.2f} %**; smallest within 1 validation point: slot {small['slot']} "
        f"({small['params'] / 1e6:.3f} M params, test top-1 {small['test_top1']:.2f} %).\n\n"
        f"## Search\n\nHypervolume on the fixed normalisation (reference {params.search.hv_ref}): "
        f"{m['initial_hv']:.5f} -> {m['final_hv']:.5f}.\n\n"
        f"| iteration | HV | front size | best val top-1 |\n|---|---|---|---|\n{hv}\n\n"
        f"## Latency model\n\nLUT sum x {lut['scale']:.3f} + {lut['offset_ms']:.3f} ms; on {val['n']} held-out "
        f"random sub-networks Kendall tau {val['kendall_tau']:.3f}, MAPE {val['mape']:.1f} % "
        f"(results/latency/).\n\n"
        f"Plot data: hv.csv, surrogate.csv, archive.csv, front.csv, training.csv, finetune.csv; "
        f"figures in figures/.\n"
    )


def _slot_rows(cards: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fine-tuned slots as points on the front's axes (validation error as a fraction, as archives hold it)."""
    return [{"slot": c["slot"], "params": c["params"], "macs": c["macs"], "resolution": c["resolution"],
             "val_top1": c["val_top1_finetuned"], "error": 1.0 - c["val_top1_finetuned"] / 100.0,  # as archives
             "test_top1": c["test_top1_after"]} for c in cards]


def _log_if_decades(ax: Any, values: Any) -> None:
    """A cost axis spanning more than a decade is drawn on a log scale (MACs of a space easily do)."""
    v = np.asarray(values, dtype=float)
    v = v[v > 0]
    if len(v) and v.max() / v.min() > 10:
        ax.set_xscale("log")


def _figures(rep: dict[str, Any], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def frame(name: str) -> pd.DataFrame:
        return pd.read_csv(folder.parent / name)  # drawn from the CSVs exactly as written

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110, metadata={"Software": None})
        plt.close(fig)

    hv = frame("hv.csv")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(hv["iteration"], hv["hv"], marker="o", label="archive (search objectives)")
    ax.set(xlabel="search iteration (0 = initial archive)", ylabel="hypervolume (normalised objectives)",
           title="Archive hypervolume")
    ax.legend(fontsize=7)
    save(fig, "hv.png")

    tau = frame("surrogate.csv")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if len(tau):
        ax.plot(tau["iteration"], tau["cv_kendall_tau"], marker="o", label="cross-validated")
        ax.plot(tau["iteration"], tau["candidates_kendall_tau"], marker="s", label="on new candidates")
        ax.legend()
    ax.set(xlabel="iteration", ylabel="Kendall tau", title="Surrogate rank correlation")
    save(fig, "surrogate.png")

    pts, front = frame("archive.csv"), frame("front.csv")
    cost = rep["cost_axis"]  # the searched cost objective: the front is non-dominated in (error, cost)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(pts[cost] / 1e6, pts["top1"], s=10, c="0.7", label="archive (super-net weights)")
    f = front.sort_values(cost)
    ax.plot(f[cost] / 1e6, f["top1"], marker="o", c="C3", label="front (super-net weights)")
    slot_pts = frame("slots.csv")
    ax.scatter(slot_pts[cost] / 1e6, slot_pts["val_top1"], marker="*", s=90, c="C2", zorder=3,
               label="slots (fine-tuned)")
    for row in slot_pts.itertuples():
        ax.annotate(str(row.slot), (getattr(row, cost) / 1e6, row.val_top1), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    base = frame("baselines.csv")
    if len(base):
        ax.scatter(base[cost] / 1e6, base["val_top1"], marker="s", s=40, c="C0", zorder=3,
                   label="baselines (same recipe)")
        for row in base.itertuples():
            ax.annotate(str(row.model), (getattr(row, cost) / 1e6, row.val_top1), fontsize=7, xytext=(3, -9),
                        textcoords="offset points")
    _log_if_decades(ax, pd.concat([pts[cost], slot_pts[cost], base[cost]]))
    ax.set(xlabel=f"{cost} (millions)", ylabel="validation top-1 (%)", title="Final archive, slots and baselines")
    ax.legend(fontsize=7)
    save(fig, "front.png")

    lat = frame("latency.csv")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(pts["latency_ms"], pts["top1"], s=10, c="0.7", label="final archive (predicted)")
    slots = {c["slot"]: c for c in rep["cards"]}
    ax.scatter(lat["predicted_ms"], [slots[s]["val_top1_finetuned"] for s in lat["slot"]], marker="o", c="C3",
               label="slots (fine-tuned), predicted")
    if lat["measured_ms"].notna().any():
        ax.scatter(lat["measured_ms"], [slots[s]["val_top1_finetuned"] for s in lat["slot"]], marker="x",
                   c="C0", label="slots (fine-tuned), measured")
    ax.set(xlabel=f"latency (ms, batch {rep['lut']['batch_size']}, {rep['lut']['backend']})",
           ylabel="val top-1 (%)", title="Accuracy against latency")
    ax.legend(fontsize=7)
    save(fig, "latency.png")

    tr = frame("training.csv")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for (phase, width), g in tr.groupby(["phase", "width"], sort=False):
        ax.plot(g["index"], g["train_top1"], marker=".", label=f"{phase} w{width}")
    ax.set(xlabel="epoch (all phases, in order)", ylabel="train top-1 (%)", title="Super-net training")
    ax.legend(fontsize=7)
    save(fig, "training.png")

    ft = frame("finetune.csv")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for slot, g in ft.groupby("slot"):
        ax.plot(g["index"], g["train_loss"], marker=".", label=f"slot {slot}")
    ax.set(xlabel="epoch (step 1 then step 2)", ylabel="train loss (cross-entropy)", title="Fine-tuning")
    ax.legend(fontsize=7)
    save(fig, "finetune.png")


def write_report(params: Params, search: Path, supernet_dir: Path, finetune: Path, lut: Path, baselines: Path,
                 out: Path) -> dict[str, Any]:
    """Write every report file into ``out``; all are prepared in a temporary folder and then moved into place."""
    rep = build_report(params, search, supernet_dir, finetune, lut, baselines)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    try:
        write_text(tmp / "summary.md", _summary(params, rep))
        write_json(tmp / "metrics.json", rep["metrics"])
        write_text(tmp / "hv.csv", csv_text(rep["hv"], digits=None, columns=_HV_COLUMNS))
        write_text(tmp / "surrogate.csv", csv_text(rep["surrogate"], digits=None, columns=_TAU_COLUMNS))
        write_text(tmp / "archive.csv", csv_text(rep["archive"], digits=None, columns=_POINT_COLUMNS))
        write_text(tmp / "front.csv", csv_text(rep["front"], digits=None, columns=_POINT_COLUMNS))
        write_text(tmp / "slots.csv", csv_text(_slot_rows(rep["cards"]), digits=None, columns=_SLOT_COLUMNS))
        write_text(tmp / "baselines.csv", csv_text(_baseline_rows(rep["baselines"]), digits=None,
                                                   columns=_BASELINE_COLUMNS))
        write_text(tmp / "training.csv", csv_text(rep["training"], _TRAIN_COLUMNS))
        write_text(tmp / "finetune.csv", csv_text(rep["finetune"], _FT_COLUMNS))
        write_text(tmp / "latency.csv", csv_text(rep["latency"], _LATENCY_COLUMNS))
        (tmp / "figures").mkdir()
        _figures(rep, tmp / "figures")
        for name in FILES:
            os.replace(tmp / name, out / name)
        if (out / "figures").exists():
            os.replace(out / "figures", tmp / "old-figures")  # deleted with tmp, after the new ones are in place
        os.replace(tmp / "figures", out / "figures")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("report written to %s: best test top-1 %.2f, HV %.5f -> %.5f", out, rep["metrics"]["best_test_top1"],
             rep["metrics"]["initial_hv"], rep["metrics"]["final_hv"])
    return rep

