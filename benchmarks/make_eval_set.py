"""Build the surrogate-quality data set: train a small super-net on Fashion-MNIST, evaluate >= 550 archs.

Writes ``tests/data/eval_set.parquet`` (an archive file: genome, validation top-1, params, MACs), which the tests
use to check that the LightGBM ensemble ranks real architectures better than their MACs alone do, then prints the
held-out Kendall tau of every surrogate (train on the first 300, test on the other 250 or more).

    python benchmarks/make_eval_set.py [--archs 560] [--out tests/data/eval_set.parquet]

Runs the pipeline's own stages (params/ci.yaml with a 10,000-image training set), about 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=560)
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "eval_set.parquet")
    parser.add_argument("--train-size", type=int, default=10000)
    args = parser.parse_args()

    from nat2 import archive as arc
    from nat2.config import load_params
    from nat2.context import RunContext, build_evaluator
    from nat2.search.sampling import initial_genomes
    from nat2.seeds import numpy_rng
    from nat2.space import SearchSpace
    from nat2.stages import assemble_supernet, prepare_data, train_supernet
    from nat2.surrogate import SURROGATES, fit_surrogate

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        raw = yaml.safe_load((ROOT / "params" / "ci.yaml").read_text())
        raw["data"].update({"train_size": args.train_size, "val_size": 1000, "calib_size": 250})
        (d / "params.yaml").write_text(yaml.safe_dump(raw))
        params_file = str(d / "params.yaml")
        params = load_params(params_file)
        split = d / "split.parquet"
        assert prepare_data.main(["--params", params_file, "--out", str(split)]) == 0
        prev = None
        for phase in params.train.phases:
            out = d / f"{phase}.pt"
            extra = [] if prev is None else ["--init", str(prev), "--full", str(d / "full.pt")]
            assert train_supernet.main(["--params", params_file, "--phase", phase, "--split", str(split), "--out",
                                        str(out), "--partial-root", str(d / "partial"), *extra]) == 0
            prev = out
        sn = d / "supernet.pt"
        assert assemble_supernet.main(["--params", params_file, "--phase-ckpt", str(prev), "--out", str(sn)]) == 0
        t_train = time.perf_counter() - t0
        space = SearchSpace.from_config(params.supernet)
        G = initial_genomes(space, "arch_space", args.archs, numpy_rng(params.seed, "test", 0))
        ev = build_evaluator(RunContext.from_params(params, split), space, sn, cache_dir=None)
        records = ev.evaluate(G, iteration=0, origin="init", seed=params.seed, progress=False)
        arc.write_archive(args.out, arc.make_archive(records))
    t_total = time.perf_counter() - t0

    df = arc.read_archive(args.out)
    X = np.stack(df["genome"].to_numpy()).astype(np.int64)
    y = df["error"].to_numpy()
    n_train = 300
    tau_macs = kendalltau(y[n_train:], -df["macs"].to_numpy()[n_train:]).statistic
    line = [f"archs={len(df)}", f"tau_macs={tau_macs:.3f}"]
    for name in SURROGATES:
        feats = space.features(X, "integer")
        model = fit_surrogate(name, feats[:n_train], y[:n_train], seed=0, threads=2, folds=10).model
        tau = kendalltau(y[n_train:], model.predict(feats[n_train:])).statistic
        print(f"{name:6s} held-out kendall tau {tau:.3f}")
        line.append(f"tau_{name}={tau:.3f}")
    print(f"train {t_train:.0f}s, total {t_total:.0f}s, top-1 range {df['top1'].min():.1f}..{df['top1'].max():.1f}")
    print("make_eval_set: " + " ".join(line))


if __name__ == "__main__":
    main()
