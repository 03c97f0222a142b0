# What every rule reads from the stage table in nat2/workflow.py (the one description of the pipeline; dvc.yaml is
# generated from the same table). A rule below names its stage; its inputs, outputs, command, settings and needs
# come from the table, so Snakemake and DVC cannot drift apart.
from nat2 import workflow as table  # (`workflow` is Snakemake's own object)
from nat2.config import params_from_dict
from nat2.deps import stage_code_deps
from nat2.errors import ConfigError

# Validate the merged config (params.yaml plus any --config overrides) in-process: one line, nothing scheduled.
try:
    params_from_dict(config, source="params.yaml (with any --config overrides)")
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

THREADS = config["runtime"]["threads"]


def stage_input(name):
    """Named inputs of stage ``name``: its files, expanded lists, named input functions, and its code."""
    return table.smk_inputs(name, config, stage_code_deps(table.stage(name).module))


def stage_output(name):
    """Named outputs of stage ``name``; folders wrapped in ``directory``, report entries in ``report``."""
    s = table.stage(name)
    outputs = {}
    for key, path in table.smk_outputs(name, config).items():
        out = directory(path) if key in s.directories else path
        if key in s.report:
            entry = s.report[key]
            out = report(out, caption=f"report/{entry.caption}", category=entry.category,
                         subcategory=entry.subcategory, **({"patterns": list(entry.patterns)} if entry.patterns else {}))
        outputs[key] = out
    return outputs


def stage_wildcards(name):
    """The values the stage's wildcard may take (exactly those params.yaml lists)."""
    return table.smk_wildcards(name, config)


def stage_settings(name):
    """The params.yaml values the stage's results depend on: changing one reruns it (as in DVC)."""
    return table.smk_settings(name, config)


def stage_threads(name):
    """runtime.threads for stages that compute in parallel, else 1."""
    return THREADS if table.stage(name).parallel else 1


def stage_resources(name):
    """Memory and GPU needs (the SLURM profile maps gpu=1 to a GPU partition)."""
    s = table.stage(name)
    return {"mem_mb": s.mem_mb, **({"gpu": 1} if s.gpu else {})}


def stage_log(name):
    return table.smk_outputs_of(name, config, "log")


def stage_benchmark(name):
    return table.smk_outputs_of(name, config, "benchmark")


def stage_shell(name):
    """The command, byte-identical to dvc.yaml's once Snakemake fills in the wildcards."""
    return table.smk_shell(name, config)
