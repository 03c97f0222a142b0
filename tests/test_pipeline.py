"""The pipeline end to end on the tiny chain (params/ci.yaml), with both tools.

One Snakemake run of the whole chain (the one ``make smoke`` does) is shared by every test here; the DVC tests
reproduce the search part again in a git copy and compare bytes with it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import ROOT, write_params
from test_supernet import hook_count

import nat2
from nat2 import archive as arc
from nat2 import selection as sel
from nat2.browser import REPORT_GALLERY_JS, check_page
from nat2.config import load_params
from nat2.costs import CostModel
from nat2.export import run_export
from nat2.pipeline import copy_repo, rerun_iteration, run_tool, smoke, smoke_line, stage_times
from nat2.plots import plots_html
from nat2.presets import use_preset
from nat2.report import FIGURES
from nat2.space import SearchSpace

pytestmark = pytest.mark.slow

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not FASHION.is_dir() and not (ROOT / "data/raw/FashionMNIST").is_dir():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    result = smoke(tmp_path_factory.mktemp("smk") / "repo")
    print(smoke_line(result))
    return result


def _files(root: Path, under: str) -> dict[str, tuple[int, bytes]]:
    """mtime_ns and bytes of every file under ``root/under``."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted((root / under).rglob("*")) if p.is_file()}


def test_full_chain_outputs_and_nothing_left_to_do(tiny: dict) -> None:
    root = tiny["root"]
    params = load_params(root / "params.yaml")
    assert tiny["iterations"] == 2 and tiny["subnets"] == len(params.postprocess.slots) == 2
    dry = run_tool(["snakemake", "--cores", "2", "--dry-run"], root)
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_every_output_folder_holds_a_run_manifest(tiny: dict) -> None:
    """Provenance: each stage writes a manifest (stage, params hash, inputs' hashes) beside its outputs."""
    from nat2.config import params_hash
    from nat2.manifest import file_digest

    root = tiny["root"]
    params = load_params(root / "params.yaml")
    outputs = root / "results"
    skip = {".cache", ".partial", "logs", "benchmarks", "exports"}
    folders = [d for d in outputs.rglob("*") if d.is_dir() and not skip & set(d.relative_to(outputs).parts)
               and any(f.is_file() and f.name != "manifest.json" for f in d.iterdir())]
    assert len(folders) >= 8
    stages = set()
    for d in [*folders, root / "data"]:
        # a folder inside a folder output (extract/slot_0, report/figures) is covered by the output's manifest
        covering = [p for p in (d, *d.parents) if p == d or outputs in p.parents]
        manifests = [m for p in covering for m in (*p.glob("*.manifest.json"), *p.glob("manifest.json"))]
        assert manifests, f"{d.relative_to(root)} has no run manifest"
        for m in manifests:
            data = json.loads(m.read_text())
            stages.add(data["stage"])
            assert data["params_hash"] == params_hash(params)
            for name, inp in data.get("inputs", {}).items():
                if not Path(inp["path"]).is_absolute() and (root / inp["path"]).is_file():
                    assert inp["sha256"] == file_digest(root / inp["path"]), f"{m.name}: input {name} changed since"
    assert {"sample_initial", "evaluate", "init_archive", "fit_surrogate", "search", "update_archive",
            "adapt_supernet", "report", "extract", "finetune", "train_supernet", "assemble_supernet",
            "prepare_data"} <= stages


def test_report_data_equal_the_archives(tiny: dict) -> None:
    from nat2.indicators import archive_stats, max_costs

    root = tiny["root"]
    params = load_params(root / "params.yaml")
    rep = root / "results/report"
    space = SearchSpace.from_config(params.supernet)
    model = CostModel(space, 10)
    hv = pd.read_csv(rep / "hv.csv")
    assert list(hv["iteration"]) == [0, 1, 2]
    # the search stages record no HV (search.hv_ref is the report's alone); their front sizes agree with it
    recorded = [json.loads((root / "results/search/iter_0/stats.json").read_text())]
    recorded += [json.loads((root / f"results/search/iter_{i}/adapt.json").read_text()) for i in (1, 2)]
    for i, stats in enumerate(recorded):
        df = arc.read_archive(root / f"results/search/iter_{i}/archive.parquet")
        expected = archive_stats(df, params.search.objectives, max_costs(space, model), params.search.hv_ref)
        assert "hv" not in stats and stats["front_size"] == expected["front_size"] == hv["front_size"][i]
        assert hv["hv"][i] == expected["hv"]
    final = arc.read_archive(root / "results/search/iter_2/archive.parquet")
    F = arc.objective_matrix(final, params.search.objectives)
    front = pd.read_csv(rep / "front.csv", dtype={"id": str})
    assert sorted(front["id"]) == sorted(final["id"].iloc[sel.non_dominated(F)])
    points = pd.read_csv(rep / "archive.csv", dtype={"id": str}).set_index("id")
    for _, row in final.iterrows():
        assert points.loc[row["id"], "top1"] == row["top1"] and points.loc[row["id"], "macs"] == row["macs"]
    metrics = json.loads((rep / "metrics.json").read_text())
    assert metrics["final_hv"] == hv["hv"].iloc[-1] and metrics["initial_hv"] == hv["hv"].iloc[0]
    summary = (rep / "summary.md").read_text()
    for k in params.postprocess.slots:
        card = json.loads((root / f"results/final/finetune/slot_{k}/card.json").read_text())
        row = f"| {k} | {card['id']} |"
        assert row in summary
        line = next(x for x in summary.splitlines() if x.startswith(row))
        assert f"| {card['test_top1_before']:.2f} | {card['test_top1_after']:.2f} |" in line
    cards = [json.loads((root / f"results/final/finetune/slot_{k}/card.json").read_text())
             for k in params.postprocess.slots]
    best = max(cards, key=lambda c: (c["val_top1_finetuned"], -c["params"]))  # ranked on validation, not test
    assert (metrics["best_slot"], metrics["best_test_top1"]) == (best["slot"], best["test_top1_after"])
    assert list(front["cost"]) == list(front["macs"])  # the searched cost objective of params/ci.yaml
    for name in ("hv", "surrogate", "front", "training", "finetune"):
        png = (rep / "figures" / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    # baselines: trained with the slots' recipe, counted as the slots are, beside them in every report file
    base = pd.read_csv(rep / "baselines.csv")
    assert list(base["model"]) == list(params.baseline.models)
    for row in base.itertuples():
        card = json.loads((root / f"results/final/baseline/{row.model}/card.json").read_text())
        assert (row.params, row.macs, row.test_top1) == (card["params"], card["macs"], card["test_top1"])
        assert card["resolution"] == max(params.supernet.resolutions) and card["finetune"]["epochs"] == 2
        entry = metrics["baselines"][row.model]
        beating = [c["slot"] for c in cards if c["test_top1_after"] > card["test_top1"] and c["macs"] < card["macs"]]
        assert entry["slots_beating"] == len(beating)
        line = next(x for x in summary.splitlines() if x.startswith(f"| {row.model} |"))
        assert line.endswith(f"| {', '.join(map(str, beating)) or 'none'} |")
        assert f"| {row.model} | {card['resolution']} | {card['params'] / 1e6:.3f} |" in summary
    # slot 0 is the accurate slot: the most accurate final-archive member within the parameter cap
    extract0 = json.loads((root / "results/final/extract/slot_0/card.json").read_text())
    fits = final[final["params"] <= params.postprocess.accurate_max_params]
    assert extract0["chosen_by"] == "accurate" and len(fits) > 0
    assert extract0["archive_top1"] == fits["top1"].max()
    assert extract0["params"] <= params.postprocess.accurate_max_params


def test_every_slot_has_matching_exports(tiny: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from nat2.cli import main as cli

    root = tiny["root"]
    for k in (0, 1):
        out = root / f"results/final/finetune/slot_{k}"
        card = json.loads((out / "card.json").read_text())
        assert card["exits"] == "all"  # params/ci.yaml fine-tunes with AEP
        module = nat2.load_subnet(out)
        x = torch.randn(4, 3, card["resolution"], card["resolution"], generator=torch.Generator().manual_seed(k))
        with torch.no_grad():
            eager = module(x).numpy()
        for name in ("model.onnx", "model.pt2"):
            assert np.abs(run_export(out / name, x) - eager).max() <= 1e-4 * max(1.0, np.abs(eager).max())
        # the card's costs against a count that shares no code with the cost model that wrote them
        assert hook_count(module, card["resolution"]) == (card["params"], card["macs"])
    capsys.readouterr()
    assert cli(["show", str(root / "results")]) == 0
    shown = capsys.readouterr().out
    assert sum(line[:3] in ("| 0", "| 1") for line in shown.splitlines()) == 2 and "HV " in shown
    assert "wall time (min): data" in shown
    times = stage_times(root / "results/benchmarks")
    assert all(times[g] > 0 for g in ("latency", "super-net training", "initial archive", "search iterations",
                                      "baselines", "post-processing")), times
    assert "baseline cnn:" in shown and "slots beating it (higher test top-1, fewer MACs):" in shown
    before = (root / "results/final/finetune/slot_1/model.pt2").read_bytes()
    assert cli(["export", "--slot", "1", "--format", "pt2", "--results", str(root / "results")]) == 0
    assert (root / "results/exports/slot_1/model.pt2").is_file()  # never inside the pipeline's own output
    assert (root / "results/final/finetune/slot_1/model.pt2").read_bytes() == before
    assert cli(["export", "--slot", "7", "--format", "onnx", "--results", str(root / "results")]) == 2


def test_slurm_profile_dry_run_lists_gpu_jobs(tmp_path: Path) -> None:
    repo = copy_repo(ROOT, tmp_path / "repo")
    out = run_tool(["snakemake", "--workflow-profile", "profiles/slurm", "--dry-run"], repo)
    text = out.stdout + out.stderr
    resources: dict[str, set[str]] = {}
    rule = None
    for line in text.splitlines():
        if line.startswith("rule "):
            rule = line[5:].rstrip(":")
        elif line.strip().startswith("resources:") and rule is not None:
            resources.setdefault(rule, set()).add(line.split(":", 1)[1].replace(" ", ""))
    gpu_rules = {"train_full", "train_phase", "evaluate_shard", "update_archive", "adapt_supernet", "extract",
                 "finetune", "baseline", "profile_latency", "report"}
    assert gpu_rules <= set(resources), sorted(resources)
    for rule, lines in resources.items():
        for res in lines:
            fields = dict(f.split("=", 1) for f in res.split(","))
            if rule in gpu_rules:
                assert fields["gpu"] == "1" and fields["slurm_partition"] == "gpu", (rule, fields)
            else:
                assert "gpu" not in fields and fields["slurm_partition"] == "cpu", (rule, fields)
    jobs = _job_table(text)
    params = load_params(repo / "params.yaml")
    assert jobs["finetune"] == len(params.postprocess.slots)
    assert jobs["baseline"] == len(params.baseline.models)
    assert jobs["adapt_supernet"] == len(params.search.iterations)
    assert jobs["evaluate_shard"] == len(params.search.shards)


def test_dvc_reproduces_rereruns_and_round_trips(tiny: dict, tmp_path: Path) -> None:
    smk = tiny["root"]
    repo = copy_repo(ROOT, tmp_path / "repo")
    use_preset(repo / "params/ci.yaml", repo / "params.yaml")
    run_tool(["git", "init", "-q", "-b", "main"], repo)
    run_tool(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"], repo)
    run_tool(["git", "add", "-A"], repo)
    run_tool(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "code"], repo)
    # the super-net comes from the Snakemake run (committed to DVC as `dvc commit` would after `make run`; training
    # determinism has its own tests), so CI time goes to what is compared: DVC running the search stages
    shutil.copytree(smk / "data", repo / "data", dirs_exist_ok=True)
    shutil.copytree(smk / "results/supernet", repo / "results/supernet")
    run_tool(["dvc", "commit", "-f", "-q", "--with-deps", "assemble_supernet"], repo)
    repro = run_tool(["dvc", "repro", "update_archive@2"], repo).stdout
    assert "Running stage 'train_full'" not in repro and "Running stage 'sample_initial'" in repro
    archives = ["iter_0/archive.parquet", "iter_1/updated.parquet", "iter_1/archive.parquet",
                "iter_2/updated.parquet", "iter_2/candidates.parquet"]
    for name in archives:
        assert (repo / "results/search" / name).read_bytes() == (smk / "results/search" / name).read_bytes(), name

    # rerun iteration 2's stages: only iteration 2's files are rewritten (with the same bytes: deterministic)
    before = _files(repo, "results") | _files(repo, "data")
    run_tool(["dvc", "repro", "-q", "-s", "-f", "fit_surrogate@2", "search@2", "update_archive@2"], repo)
    after = _files(repo, "results") | _files(repo, "data")
    rewritten = {f for f in before if after[f][0] != before[f][0]}
    assert rewritten and all(f.startswith(("results/search/iter_2/", "results/logs/search/")) for f in rewritten)
    assert all(after[f][1] == before[f][1] for f in rewritten if f.endswith(".parquet"))

    # sync from Snakemake (the documented `dvc commit -f`): the Snakemake run's outputs complete dvc.lock
    for folder in ("results", "data"):
        shutil.rmtree(repo / folder)
        shutil.copytree(smk / folder, repo / folder, ignore=shutil.ignore_patterns(".snakemake_timestamp"))
    run_tool(["dvc", "commit", "-f", "-q"], repo)
    assert json.loads(run_tool(["dvc", "status", "--json"], repo).stdout) == {}

    # each edit changes exactly the stages that read the key (the same contract as Snakemake's test above)
    for dotted, (value, expected) in EDITS.items():
        _edit(repo / "params.yaml", dotted, value)
        status = json.loads(run_tool(["dvc", "status", "--json"], repo).stdout)
        run_tool(["git", "checkout", "-q", "params.yaml"], repo)
        assert set(status) == expected, (dotted, status)

    # a post-processing param: DVC sees only the stages that train with that recipe as changed (slots, baselines)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["postprocess"]["finetune"]["lr"] = 0.02
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(run_tool(["dvc", "status", "--json"], repo).stdout)
    assert {s.split("@")[0] for s in status} == {"finetune", "baseline"}, status
    run_tool(["git", "checkout", "-q", "params.yaml"], repo)

    # share through a local remote: push, clone, pull; nothing to reproduce
    remote = tmp_path / "remote"
    run_tool(["dvc", "remote", "add", "-q", "-d", "local", str(remote)], repo)
    run_tool(["dvc", "push", "-q"], repo)
    run_tool(["git", "add", "-A"], repo)
    run_tool(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "results"], repo)
    clone = tmp_path / "clone"
    run_tool(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    run_tool(["dvc", "pull", "-q"], clone)
    for name in archives:
        assert (clone / "results/search" / name).read_bytes() == (smk / "results/search" / name).read_bytes()
    assert (clone / "results/final/finetune/slot_0/model.onnx").read_bytes() == \
        (smk / "results/final/finetune/slot_0/model.onnx").read_bytes()
    assert json.loads(run_tool(["dvc", "status", "--json"], clone).stdout) == {}
    repro = run_tool(["dvc", "repro"], clone)
    assert "Running stage" not in repro.stdout, repro.stdout

    # DVC's plots page (offline template: Vega inline) draws every plot in a browser
    check = check_page(plots_html(repo / "results/report/dvc_plots", cwd=repo),
                       repo / "results/report/screenshots/dvc_plots.png")
    assert not check.errors and not check.blank_plots, (check.errors, check.blank_plots)
    vega = sum(p["tag"] in ("svg", "canvas") for p in check.plots)
    assert vega >= 5 and sum(p["tag"] == "img" for p in check.plots) >= len(FIGURES), check.plots

    # an experiment (`dvc exp run -S`): another HV reference point reruns the report alone, from the cache
    # (`-S search.policy=nat` reruns the search too: 4.7 min on this preset, measured by hand, too long for CI);
    # `dvc exp show` lists the report's headline metrics for the baseline and the experiment
    run_tool(["dvc", "exp", "run", "-q", "-S", "search.hv_ref=1.2", "-n", "hv-ref"], repo)
    shown = _exp_metrics(json.loads(run_tool(["dvc", "exp", "show", "--json"], repo).stdout))
    assert set(shown) >= {"workspace", "main", "hv-ref"}, shown.keys()
    baseline = json.loads((smk / "results/report/metrics.json").read_text())
    assert shown["main"] == ("nat2", baseline)
    policy, metrics = shown["hv-ref"]
    assert policy == "nat2" and metrics.keys() == baseline.keys()
    assert metrics["final_hv"] > baseline["final_hv"] and metrics["initial_hv"] > baseline["initial_hv"]
    assert metrics["slots"] == baseline["slots"] and all(
        {"params", "macs", "test_top1", "val_top1"} <= set(v) for v in metrics["slots"].values())
    check = check_page(plots_html(repo / "results/report/dvc_plots_diff", ["main", "hv-ref"], cwd=repo),
                       repo / "results/report/screenshots/dvc_plots_diff.png")
    assert not check.errors and not check.blank_plots, (check.errors, check.blank_plots)


def _exp_metrics(rows: list[dict]) -> dict[str, tuple[str, dict]]:
    """``dvc exp show --json``: name (or rev) -> (search.policy, results/report/metrics.json) of each row."""
    out = {}
    for row in rows:
        entries = [(row.get("name") or row["rev"], row)] + [
            (rev.get("name") or exp.get("name") or rev["rev"], rev)
            for exp in row.get("experiments") or [] for rev in exp.get("revs", [])]
        for name, entry in entries:
            data = entry.get("data") or {}
            metrics = (data.get("metrics") or {}).get("results/report/metrics.json", {}).get("data")
            policy = (data.get("params") or {}).get("params.yaml", {}).get("data", {}).get("search", {}).get("policy")
            if metrics:
                out[name] = (policy, metrics)
    return out


def test_snakemake_report_draws_every_figure_in_a_browser(tiny: dict) -> None:
    """`make report`'s Snakemake half: captions and categories, every figure decoded and drawn, no script error."""
    root = tiny["root"]
    run_tool(["snakemake", "--cores", "1", "--report", "results/report/report.html"], root)
    html = (root / "results/report/report.html").read_text()
    for category in ("1. Latency", "2. Super-net", "3. Search", "4. Final subnets"):
        assert category in html
    assert "non-dominated front" in html  # a caption (rules/report/figures.rst)
    check = check_page(root / "results/report/report.html", root / "results/report/screenshots/report.png",
                       script=REPORT_GALLERY_JS)
    assert not check.errors and not check.blank_plots, (check.errors, check.blank_plots)
    figures = [p for p in check.plots if p["tag"] == "img"]
    assert len(figures) == len(FIGURES) and all(p["ok"] and p["std"] > 10 for p in figures), figures
    assert any(p["tag"] in ("svg", "canvas") for p in check.plots)  # the rule graph (Vega)
    assert check.screenshot.stat().st_size > 50_000


def test_three_objectives_with_latency_run_through_both_tools(tiny: dict, tmp_path: Path) -> None:
    """Error, MACs and predicted latency (NSGA-III inside) on the tiny chain's super-net and LUT: Snakemake and DVC
    write byte-identical archives whose latency column is the LUT model's prediction."""
    from nat2.latency import LatencyModel

    smk = tiny["root"]
    runs = {}
    for tool in ("snakemake", "dvc"):
        repo = copy_repo(ROOT, tmp_path / tool)
        use_preset(repo / "params/ci.yaml", repo / "params.yaml")
        write_params(repo / "params.yaml", {"search.objectives": ["error", "macs", "latency"]},
                     base=repo / "params.yaml")
        if tool == "dvc":  # the code in git first; the copied run's outputs go to DVC
            run_tool(["git", "init", "-q", "-b", "main"], repo)
            run_tool(["git", "add", "-A"], repo)
            run_tool(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "code"], repo)
        shutil.copytree(smk / "data", repo / "data", dirs_exist_ok=True)
        for folder in ("results/supernet", "results/latency"):  # newer than the code: Snakemake keeps them
            shutil.copytree(smk / folder, repo / folder, ignore=shutil.ignore_patterns(".snakemake_timestamp"))
        target = "results/search/iter_1/updated.parquet"
        if tool == "snakemake":
            out = run_tool(["snakemake", "--cores", "2", target], repo)
            assert "rule train_full" not in out.stdout + out.stderr
            assert "rule profile_latency" not in out.stdout + out.stderr
        else:
            run_tool(["dvc", "commit", "-f", "-q", "--with-deps", "assemble_supernet"], repo)
            run_tool(["dvc", "commit", "-f", "-q", "profile_latency"], repo)
            repro = run_tool(["dvc", "repro", "update_archive@1"], repo).stdout
            assert "Running stage 'train_full'" not in repro and "Running stage 'profile_latency'" not in repro
        runs[tool] = repo
    params = load_params(runs["dvc"] / "params.yaml")
    space = SearchSpace.from_config(params.supernet)
    model = LatencyModel.load(smk / "results/latency/lut.parquet", space, 10)
    for name in ("iter_0/archive.parquet", "iter_1/candidates.parquet", "iter_1/updated.parquet"):
        a, b = (runs[t] / "results/search" / name for t in ("snakemake", "dvc"))
        assert a.read_bytes() == b.read_bytes(), name
    df = arc.read_archive(runs["dvc"] / "results/search/iter_1/updated.parquet")
    assert df["latency"].notna().all()
    np.testing.assert_allclose(df["latency"].to_numpy(), model(np.stack(df["genome"].to_numpy())), rtol=1e-12)
    F = arc.objective_matrix(df, params.search.objectives)
    assert F.shape[1] == 3 and len(sel.non_dominated(F)) >= 2


def test_snakemake_reruns_one_iteration_and_post_processing(tiny: dict) -> None:
    root = tiny["root"]
    before = _files(root, "results") | _files(root, "data")
    rerun_iteration(root, "2", cores=2)
    after = _files(root, "results") | _files(root, "data")
    rewritten = {f for f in before if f in after and after[f][0] != before[f][0]}
    downstream = ("results/search/iter_2/", "results/final/", "results/report/", "results/logs/",
                  "results/benchmarks/")
    assert any(f.startswith("results/search/iter_2/") for f in rewritten)
    assert all(f.startswith(downstream) for f in rewritten), sorted(rewritten)
    for f in rewritten:
        if f.startswith("results/search/iter_2/") and f.endswith(".parquet"):
            assert after[f][1] == before[f][1], f  # same seed, same CPU: the same archive again

    # changing a post-processing param: Snakemake schedules only post-processing (and the baselines)
    original = (root / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["postprocess"]["finetune"]["lr"] = 0.02
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        dry = run_tool(["snakemake", "--cores", "2", "--dry-run"], root).stdout
    finally:
        (root / "params.yaml").write_text(original)
    jobs = _job_table(dry)
    # (the baselines train with the slots' recipe, so they follow it)
    assert jobs and set(jobs) - {"all"} <= {"finetune", "baseline", "report", "extract"}, jobs
    assert "finetune" in jobs and jobs.get("baseline") == len(params["baseline"]["models"])


#: one edit of each kind, and the stages it must schedule (the exact-dependency contract of nat2/workflow.py):
#: a phase's own schedule reruns that phase only, a checkpoint cadence nothing, the HV reference only the report,
#: the shard list only the initial evaluations (and the archive that reads them)
EDITS = {
    "train.schedule.expand_2.lr": (0.005, {"train_phase@expand_2"}),
    "train.checkpoint_minutes": (1.0, set()),
    "search.hv_ref": (1.1, {"report"}),
    "search.shards": ([0, 1, 2], {"evaluate_shard@0", "evaluate_shard@1", "evaluate_shard@2", "init_archive"}),
    # timing settings: the LUT and the report's timing of the slots, nothing trained or evaluated
    "latency.repeats": (3, {"profile_latency", "report"}),
    # the slots' accurate-slot cap: extraction (and what follows it), never the search or the baselines
    "postprocess.accurate_max_params": (400_000, {"extract"}),
    "baseline.resolution": (24, {"baseline@mobilenet_v3_small", "baseline@cnn"}),
}


def _edit(params_file: Path, dotted: str, value: object) -> str:
    """Set one key of a params file; returns the original text."""
    original = params_file.read_text()
    write_params(params_file, {dotted: value}, base=params_file)
    return original


#: Snakemake's reasons that are a job's own (an upstream job that will run is not one of them)
OWN_REASONS = ("Params have changed", "Missing output files", "Set of input files has changed", "Code has changed",
               "Forced execution", "Updated input files")


def _scheduled_by_snakemake(root: Path) -> tuple[set[str], set[str]]:
    """Jobs a dry run schedules for a reason of their own, and those it schedules only because an upstream job will
    run (Snakemake then names that reason alone, so a job downstream of a changed one may hide its own)."""
    dry = run_tool(["snakemake", "--cores", "2", "--dry-run", "--nocolor"], root).stdout
    own, upstream = set(), set()
    for block in dry.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        fields = dict(line.strip().split(": ", 1) for line in block.splitlines()[1:] if ": " in line)
        if rule == "all":
            continue
        wildcard = fields.get("wildcards", "")
        job = f"{rule}@{wildcard.split('=', 1)[1]}" if wildcard else rule
        (own if any(r in fields.get("reason", "") for r in OWN_REASONS) else upstream).add(job)
    return own, upstream


def test_each_setting_schedules_exactly_the_stages_that_read_it_in_snakemake(tiny: dict) -> None:
    root = tiny["root"]
    for dotted, (value, expected) in EDITS.items():
        original = _edit(root / "params.yaml", dotted, value)
        try:
            own, upstream = _scheduled_by_snakemake(root)
        finally:
            (root / "params.yaml").write_text(original)
        # every job rerun for its own reason reads the key; the others that read it are downstream of one
        assert own <= expected <= own | upstream, (dotted, own, upstream)
        if not expected:
            assert not own and not upstream, (dotted, own, upstream)


def _job_table(text: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's "Job stats" table (the total row and the header excluded)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    out = {}
    for line in lines[start + 3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        out[parts[0]] = int(parts[1])
    return out


@pytest.mark.slurm
def test_a_real_slurm_run_equals_the_local_run(tiny: dict, tmp_path: Path) -> None:
    """The tiny chain through the SLURM executor plugin on a real one-node cluster: same bytes as locally.

    ``--slurm-status-command squeue``: the test cluster has no accounting database for ``sacct``.
    """
    import re
    import time

    from slurm_cluster import local_slurm

    with local_slurm(tmp_path / "slurm"):
        repo = copy_repo(ROOT, tmp_path / "repo")
        use_preset(repo / "params/ci.yaml", repo / "params.yaml")
        start = time.perf_counter()
        out = run_tool(["snakemake", "--workflow-profile", "profiles/slurm", "--slurm-status-command", "squeue",
                        "--jobs", "2"], repo)
        wall = time.perf_counter() - start
        jobs = run_tool(["scontrol", "show", "job", "-o"], repo).stdout.splitlines()
    text = out.stdout + out.stderr
    submitted = len(re.findall(r"has been submitted with SLURM jobid", text))
    print(f"slurm: jobs={submitted} wall_s={wall:.0f}")
    # every job went through SLURM, on the partition the profile names, with a GPU for the GPU rules
    table = {}
    for line in jobs:
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        table.setdefault(fields["Comment"].removeprefix("rule_").split("_wildcards")[0], set()).add(
            (fields["Partition"], fields.get("TresPerJob", ""), fields["JobState"]))
    gpu_rules = {"train_full", "train_phase", "evaluate_shard", "update_archive", "adapt_supernet", "extract",
                 "finetune", "profile_latency", "report"}
    assert submitted >= 20 and gpu_rules <= set(table), sorted(table)
    for rule, runs in table.items():
        for partition, tres, state in runs:
            assert state == "COMPLETED", (rule, state)
            assert partition == ("gpu" if rule in gpu_rules else "cpu"), (rule, partition)
            assert ("gpu" in tres) == (rule in gpu_rules), (rule, tres)
    # the same bytes as the local run: every archive, candidate list and design of the search
    local = tiny["root"]
    files = sorted((local / "results/search").rglob("*.parquet"))
    assert len(files) >= 8
    for f in files:
        rel = f.relative_to(local)
        assert (repo / rel).read_bytes() == f.read_bytes(), rel
