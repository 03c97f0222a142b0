"""Small-image regime: one fixed subnet trained from scratch under each way of feeding 28 px images to the space.

Regimes (``--regimes``, each ``stem_stride@resolution``): OFA's stride-2 stem at the native 28 px (``2@28``),
the stride-1 stem at 28 px (``1@28``, ``supernet.stem_stride: 1``), and OFA's stem on images upsampled to 56 px
(``2@56``, the reference's way of running CIFAR at 48-64 px). The same architecture (exit ``--exit``, depth 3,
kernel 5, expand 4 in every stage) is extracted from a freshly initialised super-net of each macro and trained
with the same seeded data stream, optimiser and schedule on Fashion-MNIST (``--images`` training images,
``--epochs`` epochs), then evaluated on the whole test set. Prints one line per epoch and regime and, last, the
test top-1 and the MACs / wall-time ratios against ``2@28``, all measured in this one run.

``python benchmarks/bench_regime.py --epochs 4 --images 20000``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from nat2.config import load_params, to_dict
from nat2.context import RunContext
from nat2.costs import CostModel
from nat2.evaluate import accuracy
from nat2.runtime import setup_torch
from nat2.space import Arch, SearchSpace
from nat2.stages import prepare_data
from nat2.supernet import SuperNetSet

ROOT = Path(__file__).resolve().parents[1]


def arch_of(resolution: int, exit_: int) -> Arch:
    """Depth 3, kernel 5, expand 4 in every stage (stages past the exit carry the canonical filler)."""
    ks, es, bs = [], [], []
    for s in range(5):
        run = s < exit_
        ks += [5 if run else 3] * 3 + [0]
        es += [4 if run else 3] * 3 + [0]
        bs += [4] * 3 + [0]
    return Arch(resolution, 1.0, exit_, (3,) * 5, tuple(ks), tuple(es), tuple(bs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regimes", default="2@28,1@28,2@56")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--images", type=int, default=20000, help="training images (a seeded subset of the 55,000)")
    ap.add_argument("--exit", type=int, default=5, help="exit of the fixed architecture")
    ap.add_argument("--lr", type=float, default=0.1)
    args = ap.parse_args()
    base = load_params(ROOT / "params.yaml")
    base = dataclasses.replace(base, data=dataclasses.replace(base.data, train_size=args.images, test_size=0))
    setup_torch(base.runtime)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        params_file = Path(tmp) / "p.yaml"
        params_file.write_text(yaml.safe_dump(to_dict(base), sort_keys=False))
        split_path = Path(tmp) / "split.parquet"
        assert prepare_data.main(["--params", str(params_file), "--out", str(split_path)]) == 0
        for regime in args.regimes.split(","):
            stem, res = (int(v) for v in regime.split("@"))
            sn = dataclasses.replace(base.supernet, stem_stride=stem, resolutions=(res,))
            p = dataclasses.replace(base, supernet=sn)
            ctx = RunContext.from_params(p, split_path)
            space = SearchSpace.from_config(sn)
            nets = SuperNetSet(space, ctx.num_classes, dropout=0.1, generator=torch.Generator().manual_seed(0))
            arch = arch_of(res, args.exit)
            cost = CostModel(space, ctx.num_classes).arch_cost(arch)
            model = nets.extract(arch).to(device=ctx.device, memory_format=ctx.memory_format).train()
            loader = ctx.train_loader(batch_size=128, resolutions=[res], stage="finetune", iteration=0)
            opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-5)
            steps, k, seconds = len(loader) * args.epochs, 0, 0.0
            for e in range(args.epochs):
                model.train()
                t0 = time.perf_counter()
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(e)  # dropout: the same draws in every regime
                    for x, y in loader.epoch(e):
                        for g in opt.param_groups:
                            g["lr"] = args.lr * 0.5 * (1 + np.cos(np.pi * k / steps))
                        k += 1
                        opt.zero_grad(set_to_none=True)
                        F.cross_entropy(model(x), y, label_smoothing=0.1).backward()
                        opt.step()
                seconds += time.perf_counter() - t0
                top1 = accuracy(model.eval(), ctx.evalset("test").batches(res, 500))
                row = {"regime": regime, "epoch": e + 1, "test_top1": top1, "params": cost.params, "macs": cost.macs,
                       "train_s": round(seconds, 1)}
                print(json.dumps(row), flush=True)
            results[regime] = row
    ref = results[args.regimes.split(",")[0]]
    parts = [f"{r}: top1={v['test_top1']:.2f} macs_x={v['macs'] / ref['macs']:.2f} "
             f"time_x={v['train_s'] / ref['train_s']:.2f}" for r, v in results.items()]
    print("bench_regime: " + " | ".join(parts))


if __name__ == "__main__":
    main()
