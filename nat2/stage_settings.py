"""Which ``params.yaml`` keys each pipeline stage's results depend on: its settings, nothing more.

The stage table (:mod:`nat2.workflow`) lists these as DVC ``params`` and Snakemake rule ``params``, so both tools
rerun a stage for exactly these keys; the in-stage resume hashes (``nat2/stages/_resume.py``) are taken over the
same values. This module is data only, apart from the lookup: editing a path or a rendering in the stage table
never makes the stages that hash their settings look changed.

Keys that cannot change a result (:data:`NEVER_INVALIDATES`: threads, checkpoint cadence, download permission) are
read by the stages at run time but never rerun anything, except ``runtime.threads`` for ``profile_latency``,
whose result is a timing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nat2.config import iter_keys, to_dict

__all__ = ["NEVER_INVALIDATES", "SETTINGS", "lookup", "stage_settings"]

#: keys that never change a stage's results (read at run time, never a reason to rerun)
NEVER_INVALIDATES = ("runtime.threads", "train.checkpoint_every_steps", "train.checkpoint_minutes", "data.download")


# --------------------------------------------------------------------------------------------------------------


def _children(section: str, *, without: Iterable[str] = ()) -> tuple[str, ...]:
    """The direct children of a params section (``data.augment`` as one key).

    ``without`` and the keys that never invalidate are left out.
    """
    drop = set(without) | set(NEVER_INVALIDATES)
    depth = section.count(".") + 2
    out: list[str] = []
    for path, _, _ in iter_keys():
        if path.startswith(section + "."):
            child = ".".join(path.split(".")[:depth])
            if child not in out and child not in drop:
                out.append(child)
    return tuple(out)


DEVICE = ("runtime.device", "runtime.channels_last")
#: which images are read (the split file holds indices only)
IMAGES = ("data.dataset", "data.root", "data.image_size", "data.synthetic")
SPLIT = (*IMAGES, "data.val_size", "data.train_size", "data.test_size", "data.calib_size")
#: how evaluation reads them: BN recalibration batches (change the statistics) and evaluation batches
#: (the calibration set is drawn through the training transforms, so augmentation changes BN statistics too)
EVAL_DATA = (*IMAGES, "data.augment", "data.calib_batch_size", "data.eval_batch_size")
TRAIN_DATA = EVAL_DATA
SPACE = ("supernet.variant", "supernet.stem_stride", "supernet.width_mults", "supernet.resolutions")
NET = _children("supernet", without=("supernet.init",))
TRAIN = _children("train", without=("train.schedule", "train.lineage", "train.final"))
#: how an adaptation step runs (what it computes is under search.adapt)
ADAPT_TRAIN = ("train.micro_batches", "train.amp")
EVALUATION = ("seed", *DEVICE, *EVAL_DATA, *NET, "search.objectives")


#: stage -> its settings (``{phase}`` stands for the phase a ``train_phase`` job trains)
SETTINGS: Mapping[str, tuple[str, ...]] = {
    "prepare_data": ("seed", *SPLIT),
    # a timing depends on the threads it ran with: the one stage where runtime.threads changes a result
    "profile_latency": ("seed", *DEVICE, "runtime.threads", *SPACE, "latency"),
    "train_full": ("seed", *DEVICE, *TRAIN_DATA, *_children("supernet"),
                    # the first phase has no teacher
                    *(k for k in TRAIN if k not in ("train.teacher", "train.kd_ratio")),
                    "train.schedule.full"),
    "train_phase": ("seed", *DEVICE, *TRAIN_DATA, *NET, *TRAIN, "train.schedule.{phase}"),
    "assemble_supernet": (*NET, "train.lineage", "train.final"),
    "sample_initial": ("seed", *SPACE, "search.policy", "search.init", "search.preprocess", "search.preprocess_mult",
                    "search.archive_size"),
    "evaluate_shard": (*EVALUATION, "search.shards"),
    "init_archive": ("seed", *SPACE, "search.objectives", "search.shards", "search.policy", "search.preprocess",
                    "search.update", "search.archive_size"),
    "fit_surrogate": ("seed", *SPACE, "search.objectives", "search.policy", "search.surrogate", "search.encoding",
                    "search.surrogate_folds"),
    "search": ("seed", *SPACE, "search.objectives", "search.policy", "search.encoding", "search.repair",
                    "search.candidates", "search.pop_size", "search.generations", "search.crossover_prob",
                    "search.mutation_eta"),
    "update_archive": (*EVALUATION, "search.policy", "search.update", "search.archive_size"),
    "adapt_supernet": (*EVALUATION, *ADAPT_TRAIN, "search.iterations", "search.top_n", "search.adapt"),
    "extract": (*EVALUATION, "postprocess.slots", "postprocess.accurate_slots", "postprocess.accurate_max_params"),
    "finetune": ("seed", *DEVICE, *TRAIN_DATA, *NET, "postprocess.finetune"),
    # a baseline is trained exactly as the slots are fine-tuned; the largest resolution is its default input side
    "baseline": ("seed", *DEVICE, *TRAIN_DATA, "supernet.resolutions", "postprocess.finetune", "baseline.resolution"),
    # the report times the slots' exported programs as profile_latency timed the LUT
    "report": ("seed", *DEVICE, "runtime.threads", "latency", "data.dataset", *SPACE, "train.lineage",
                    "search.objectives", "search.policy", "search.iterations", "search.hv_ref", "postprocess.slots",
                    "baseline.models"),
}


def stage_settings(name: str, params: Any, **wildcards: str) -> dict[str, Any]:
    """The values of a stage's settings in ``params`` (a Params object or plain dict) as plain data.

    The in-stage resume hashes are taken over this dict, so a change that reruns the stage in the pipeline also
    starts its checkpoints afresh, and a change that does not (threads, checkpoint cadence) keeps them.
    """
    plain = params if isinstance(params, Mapping) else to_dict(params)
    return {dotted: lookup(plain, dotted) for dotted in (key.format(**wildcards) for key in SETTINGS[name])}


def lookup(config: Mapping[str, Any], dotted: str) -> Any:
    """The value of a dotted key in a plain params mapping."""
    node: Any = config
    for part in dotted.split("."):
        node = node[part]
    return node
