"""Snakemake and DVC describe the same pipeline: same outputs, same inputs, byte-identical commands, because both
read the stage table in nat2/workflow.py (dvc.yaml is generated from it and must be up to date)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline_dag import dvc_stages, snakemake_jobs

from nat2 import workflow
from nat2.deps import stage_code_deps

ROOT = Path(__file__).resolve().parents[1]


def _covered(smk_deps: frozenset[str], dvc_deps: frozenset[str]) -> frozenset[str]:
    """Snakemake's input files, with those inside a folder that DVC depends on replaced by that folder."""
    folders = {d for d in dvc_deps if not Path(d).suffix}
    return frozenset(next((f for f in folders if d.startswith(f + "/")), d) for d in smk_deps)


def test_dvc_yaml_is_generated_from_the_stage_table() -> None:
    assert (ROOT / "dvc.yaml").read_text(encoding="utf-8") == workflow.dvc_yaml(), \
        "dvc.yaml is out of date: run `nat2 dvc-yaml --write`"
    check = subprocess.run([sys.executable, "-m", "nat2.cli", "dvc-yaml", "--check"], cwd=ROOT,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_every_stage_has_a_rule_and_the_rules_read_the_table() -> None:
    rules = "".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "rules").glob("*.smk")))
    for s in workflow.STAGES:
        assert f"rule {s.name}:" in rules, f"stage {s.name} has no Snakemake rule"
        for part in ("input", "output", "settings", "shell"):
            assert f'stage_{part}("{s.name}")' in rules, f"rule {s.name} does not read its {part} from the table"
    assert "lambda" not in rules and "subprocess" not in rules


def test_snakemake_and_dvc_have_the_same_stages() -> None:
    smk, dvc = snakemake_jobs(ROOT), dvc_stages(ROOT)
    assert set(smk) == set(dvc)
    for outs, (cmd, deps) in smk.items():
        assert cmd == dvc[outs][0], f"commands differ for {sorted(outs)}"
        deps = _covered(deps, dvc[outs][1])
        assert deps == dvc[outs][1], f"inputs differ for {sorted(outs)}: {sorted(deps ^ dvc[outs][1])}"


def test_stage_inputs_are_the_stage_code() -> None:
    for cmd, deps in dvc_stages(ROOT).values():
        stage = cmd.split()[2].removeprefix("nat2.stages.")
        code = {d for d in deps if d.startswith("nat2/")}
        assert code == set(stage_code_deps(stage)), f"{stage}: code deps out of date in dvc.yaml"


def test_snakemake_validates_config_overrides_before_scheduling() -> None:
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--config", "seed=-1"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "seed = -1: must be an integer >= 0" in proc.stdout + proc.stderr
    assert "Job stats" not in proc.stdout
