"""Super-net forward speed: dynamic vs extracted static subnet, and ours vs the ``ofa`` package.

Every contestant runs in eval mode, channels_last, with the same thread count (default 2), batch 256 at
resolution 32, on the same archs and weights (our se_base super-net is loaded from the ofa super-net's state
dict). Timings interleave the contestants arch by arch, so machine noise hits them alike; each figure is the
median of several repeats. The last line holds the headline ratios.

    python benchmarks/bench_supernet.py [--archs 20] [--batch 256] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from nat2.space import MAX_DEPTH, N_STAGES, SearchSpace, Variant, layer_code
from nat2.supernet import SuperNet, load_ofa_state_dict

CL = torch.channels_last


def timed(fn, x: torch.Tensor, repeats: int) -> float:
    with torch.inference_mode():
        fn(x)  # warm-up (oneDNN primitive creation)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gmean(values: list[float]) -> float:
    return float(np.exp(np.mean(np.log(values))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variant", default="se_base")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)

    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    torch.manual_seed(0)  # the ofa package initialises from the global RNG
    ofa = OFAMobileNetV3(n_classes=10, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    space = SearchSpace(Variant.from_name(args.variant), (args.resolution,), (1.0,))
    net = SuperNet(space.variant, 1.0, 10, generator=torch.Generator().manual_seed(0))
    load_ofa_state_dict(net, ofa.state_dict())
    ofa = ofa.eval().to(memory_format=CL)
    net = net.eval().to(memory_format=CL)
    x = torch.randn(args.batch, 3, args.resolution, args.resolution).contiguous(memory_format=CL)

    rng = np.random.default_rng(0)
    genomes = list(space.sample(rng, args.archs, "uniform"))
    # "mid": kernel 5, expand 4, depth 3 in every stage (the middle of every elastic dimension)
    mid = space.max_genome()
    code = layer_code(5, 4, 4, space.variant.parallel)
    mid[space.layer_offset:] = np.tile([code, code, code, 0][:MAX_DEPTH], N_STAGES)
    named = {"min": space.min_genome(), "mid": space.repair(mid), "max": space.max_genome()}
    dyn_static, ours_ofa = [], []
    per_name = {}
    extra = list(named)
    for i, genome in enumerate([*genomes, *named.values()]):
        arch = space.decode(genome)
        net.set_active(arch)
        static = net.extract(arch).eval().to(memory_format=CL)
        t_dyn = timed(net, x, args.repeats)
        t_static = timed(static, x, args.repeats)
        ratio = t_dyn / t_static
        if i < len(genomes):
            d = arch.to_ofa_dict()
            ofa.set_active_subnet(ks=d["ks"], e=d["e"], d=d["d"])
            t_ofa = timed(ofa, x, args.repeats)
            dyn_static.append(ratio)
            ours_ofa.append(t_dyn / t_ofa)
            print(f"arch {i:2d}: dynamic {t_dyn * 1e3:7.1f} ms  static {t_static * 1e3:7.1f} ms  "
                  f"ofa {t_ofa * 1e3:7.1f} ms  dyn/static {ratio:.3f}  ours/ofa {t_dyn / t_ofa:.3f}")
        else:
            name = extra[i - len(genomes)]
            per_name[name] = ratio
            print(f"{name}: dynamic {t_dyn * 1e3:7.1f} ms  static {t_static * 1e3:7.1f} ms  dyn/static {ratio:.3f}")
    print(f"bench_supernet: dyn_over_static_gmean={gmean(dyn_static):.3f} "
          f"dyn_over_static_min={per_name['min']:.3f} dyn_over_static_mid={per_name['mid']:.3f} "
          f"dyn_over_static_max={per_name['max']:.3f} ours_over_ofa_gmean={gmean(ours_ofa):.3f} "
          f"archs={args.archs} batch={args.batch} resolution={args.resolution} threads={args.threads}")


if __name__ == "__main__":
    main()
