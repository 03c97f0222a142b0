"""Bundle the last phase's per-width weights into one :class:`~nat2.supernet.SuperNetSet` file."""

from __future__ import annotations

import logging
from pathlib import Path

from nat2.checkpoint import save_supernet
from nat2.config import Params
from nat2.manifest import write_manifest
from nat2.space import SearchSpace
from nat2.supernet import SuperNetSet
from nat2.train.phase_run import read_phase, width_key

__all__ = ["assemble_supernet"]

log = logging.getLogger(__name__)


def assemble_supernet(params: Params, phase_ckpt: Path, out: Path) -> str:
    """Write ``out`` from the ``train.final`` phase checkpoint; return the super-net's content hash."""
    space = SearchSpace.from_config(params.supernet)
    data = read_phase(phase_ckpt, space, expect_phase=params.train.final)
    nets = SuperNetSet(space, data["num_classes"], params.supernet.dropout, params.supernet.bn_momentum,
                       params.supernet.bn_eps)
    for width in space.width_mults:
        nets.net(width).load_state_dict(data["widths"][width_key(width)]["model"])
    validation = {width_key(w): {k: v for k, v in data["widths"][width_key(w)]["validation"].items()
                                 if k != "subnets"} for w in space.width_mults}
    meta = {"phases": list(params.train.phases), "train_run_hash": data["run_hash"], "validation": validation}
    save_supernet(out, nets, meta)
    content_hash = nets.content_hash()
    write_manifest(out.with_name(f"{out.stem}.manifest.json"), "assemble_supernet", params, "cpu",
                   extra={"content_hash": content_hash, **meta})
    log.info("super-net %s (%s, widths %s) written to %s", content_hash, space.variant.name,
             list(space.width_mults), out)
    return content_hash
