# After the search: the final subnets in fixed slots, their two-step fine-tuning (with test top-1 and checked
# ONNX / torch.export programs), the baselines trained with the same recipe, and the report.
# Each rule's parts come from its stage in nat2/workflow.py (see rules/common.smk).

rule extract:
    input:
        **stage_input("extract"),
    output:
        **stage_output("extract"),
    wildcard_constraints:
        **stage_wildcards("extract"),
    params:
        settings=stage_settings("extract"),
    threads: stage_threads("extract")
    resources:
        **stage_resources("extract"),
    log:
        stage_log("extract"),
    benchmark:
        stage_benchmark("extract")
    shell:
        stage_shell("extract")


rule finetune:
    input:
        **stage_input("finetune"),
    output:
        **stage_output("finetune"),
    wildcard_constraints:
        **stage_wildcards("finetune"),
    params:
        settings=stage_settings("finetune"),
    threads: stage_threads("finetune")
    resources:
        **stage_resources("finetune"),
    log:
        stage_log("finetune"),
    benchmark:
        stage_benchmark("finetune")
    shell:
        stage_shell("finetune")


rule baseline:
    input:
        **stage_input("baseline"),
    output:
        **stage_output("baseline"),
    wildcard_constraints:
        **stage_wildcards("baseline"),
    params:
        settings=stage_settings("baseline"),
    threads: stage_threads("baseline")
    resources:
        **stage_resources("baseline"),
    log:
        stage_log("baseline"),
    benchmark:
        stage_benchmark("baseline")
    shell:
        stage_shell("baseline")


rule report:
    input:
        **stage_input("report"),
    output:
        **stage_output("report"),
    wildcard_constraints:
        **stage_wildcards("report"),
    params:
        settings=stage_settings("report"),
    threads: stage_threads("report")
    resources:
        **stage_resources("report"),
    log:
        stage_log("report"),
    benchmark:
        stage_benchmark("report")
    shell:
        stage_shell("report")
