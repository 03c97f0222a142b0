"""Snakemake and DVC describe the same pipeline: same outputs, same inputs, byte-identical commands."""

from __future__ import annotations

from pathlib import Path

from pipeline_dag import dvc_stages, snakemake_jobs

from nat2.deps import stage_code_deps

ROOT = Path(__file__).resolve().parents[1]


def _covered(smk_deps: frozenset[str], dvc_deps: frozenset[str]) -> frozenset[str]:
    """Snakemake's input files, with those inside a folder that DVC depends on replaced by that folder."""
    folders = {d for d in dvc_deps if not Path(d).suffix}
    return frozenset(next((f for f in folders if d.startswith(f + "/")), d) for d in smk_deps)


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
