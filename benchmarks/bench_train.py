"""Super-net training throughput: images/s of one training step (forward, backward, SGD) per subnet size.

For the max, mid (kernel 5, expand 4, depth 3) and min subnets of the default variant, at every default
resolution, channels_last vs contiguous memory format, interleaved so machine noise hits both alike; each figure is
the median over several timed steps after warm-up. The last line holds the headline figures.

    python benchmarks/bench_train.py [--batch 64] [--steps 6] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from nat2.config import load_params
from nat2.space import MAX_DEPTH, N_STAGES, SearchSpace, layer_code
from nat2.supernet import SuperNet
from nat2.train.optim import build_sgd


def step_time(net: SuperNet, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        opt.step()
        if i >= 2:  # two warm-up steps
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    params = load_params(args.params)
    space = SearchSpace.from_config(params.supernet)
    mid = space.max_genome()
    code = layer_code(5, 4, 4, space.variant.parallel)
    mid[space.layer_offset:] = np.tile([code, code, code, 0], N_STAGES)[: N_STAGES * MAX_DEPTH]
    archs = {"max": space.max_genome(), "mid": space.repair(mid), "min": space.min_genome()}
    nets = {fmt: SuperNet(space.variant, 1.0, 10, generator=torch.Generator().manual_seed(0)).train()
            for fmt in ("channels_last", "contiguous")}
    nets["channels_last"].to(memory_format=torch.channels_last)
    opts = {k: build_sgd(n, 0.01, 0.9, 3e-5) for k, n in nets.items()}
    y = torch.randint(0, 10, (args.batch,), generator=torch.Generator().manual_seed(1))
    results: dict[tuple[str, str], list[float]] = {}
    for name, genome in archs.items():
        for r in space.resolutions:
            arch = space.decode(genome)
            arch = type(arch)(r, arch.width_mult, arch.exit, arch.depths, arch.kernel_sizes, arch.expand_ratios,
                              arch.branches)
            x = torch.randn(args.batch, 3, r, r, generator=torch.Generator().manual_seed(r))
            line = [f"{name:3s} r{r}:"]
            for fmt, net in nets.items():
                net.set_active(arch)
                xf = x.contiguous(memory_format=torch.channels_last) if fmt == "channels_last" else x
                ips = args.batch / step_time(net, opts[fmt], xf, y, args.steps)
                results.setdefault((name, fmt), []).append(ips)
                line.append(f"{fmt} {ips:7.0f} img/s")
            print("  ".join(line))
    gm = {k: float(np.exp(np.mean(np.log(v)))) for k, v in results.items()}
    speedup = float(np.exp(np.mean([np.log(gm[(n, "channels_last")] / gm[(n, "contiguous")]) for n in archs])))
    print("bench_train: " + " ".join(f"{n}_cl_img_s={gm[(n, 'channels_last')]:.0f}" for n in archs) + " "
          + " ".join(f"{n}_contig_img_s={gm[(n, 'contiguous')]:.0f}" for n in archs)
          + f" cl_speedup_gmean={speedup:.2f} batch={args.batch} threads={args.threads} variant={space.variant.name}")


if __name__ == "__main__":
    main()
