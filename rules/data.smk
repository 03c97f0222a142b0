# Data: the deterministic train/validation/test index every later stage reads.
# Each rule's parts come from its stage in nat2/workflow.py (see rules/common.smk).

rule prepare_data:
    input:
        **stage_input("prepare_data"),
    output:
        **stage_output("prepare_data"),
    wildcard_constraints:
        **stage_wildcards("prepare_data"),
    params:
        settings=stage_settings("prepare_data"),
    threads: stage_threads("prepare_data")
    resources:
        **stage_resources("prepare_data"),
    log:
        stage_log("prepare_data"),
    benchmark:
        stage_benchmark("prepare_data")
    shell:
        stage_shell("prepare_data")
