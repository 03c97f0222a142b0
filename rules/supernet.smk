# Super-net training: one job per progressive-shrinking phase (every width inside), chained by
# train.lineage, then the run's super-net file.
# Each rule's parts come from its stage in nat2/workflow.py (see rules/common.smk).

rule train_full:
    input:
        **stage_input("train_full"),
    output:
        **stage_output("train_full"),
    wildcard_constraints:
        **stage_wildcards("train_full"),
    params:
        settings=stage_settings("train_full"),
    threads: stage_threads("train_full")
    resources:
        **stage_resources("train_full"),
    log:
        stage_log("train_full"),
    benchmark:
        stage_benchmark("train_full")
    shell:
        stage_shell("train_full")


rule train_phase:
    input:
        **stage_input("train_phase"),
    output:
        **stage_output("train_phase"),
    wildcard_constraints:
        **stage_wildcards("train_phase"),
    params:
        settings=stage_settings("train_phase"),
    threads: stage_threads("train_phase")
    resources:
        **stage_resources("train_phase"),
    log:
        stage_log("train_phase"),
    benchmark:
        stage_benchmark("train_phase")
    shell:
        stage_shell("train_phase")


rule assemble_supernet:
    input:
        **stage_input("assemble_supernet"),
    output:
        **stage_output("assemble_supernet"),
    wildcard_constraints:
        **stage_wildcards("assemble_supernet"),
    params:
        settings=stage_settings("assemble_supernet"),
    threads: stage_threads("assemble_supernet")
    resources:
        **stage_resources("assemble_supernet"),
    log:
        stage_log("assemble_supernet"),
    benchmark:
        stage_benchmark("assemble_supernet")
    shell:
        stage_shell("assemble_supernet")
