# Shared helpers of the rules: params validation at parse time, and code dependencies of each stage.
import subprocess
import sys

# Validate params.yaml with the library's own loader (one-line error, nothing scheduled on failure).
_check = subprocess.run(
    [sys.executable, "-m", "nat2.cli", "validate", "params.yaml"], capture_output=True, text=True
)
if _check.returncode != 0:
    raise WorkflowError(_check.stderr.strip())

THREADS = config["runtime"]["threads"]
LINEAGE = config["train"]["lineage"]  # phase -> phase it continues from (validated above)
FINAL_PHASE = config["train"]["final"]
ITERATIONS = {str(k): str(v) for k, v in config["search"]["iterations"].items()}  # iteration -> previous one
FINAL_ITERATION = str(config["search"]["final"])
SHARDS = [str(s) for s in config["search"]["shards"]]
SLOTS = [str(s) for s in config["postprocess"]["slots"]]


def previous_phase(wildcards):
    """Checkpoint of the phase that ``wildcards.phase`` continues from."""
    return f"results/supernet/{LINEAGE[wildcards.phase]}.pt"


def settings(stage):
    """The params.yaml values the stage reads (the keys of its dvc.yaml params list): changing one reruns it."""
    from nat2.deps import stage_settings

    return stage_settings(stage, config)


def code(stage):
    """Source files a stage runs: its CLI module and every nat2 module it imports (same list as dvc.yaml)."""
    from nat2.deps import stage_code_deps

    return stage_code_deps(stage)
