# nat2 pipeline (Snakemake). Every rule reads its stage from nat2/workflow.py, the table dvc.yaml is generated from.
# Run: `snakemake --cores N` (profiles/default is picked up automatically) or `make run`.
from snakemake.utils import min_version

min_version("9.18")


configfile: "params.yaml"


report: "rules/report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/latency.smk"
include: "rules/supernet.smk"
include: "rules/search.smk"
include: "rules/final.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
