# The search: the initial design evaluated in shards, then per iteration fit_surrogate -> search ->
# update_archive -> adapt_supernet, chained by search.iterations.
# Each rule's parts come from its stage in nat2/workflow.py (see rules/common.smk).

rule sample_initial:
    input:
        **stage_input("sample_initial"),
    output:
        **stage_output("sample_initial"),
    wildcard_constraints:
        **stage_wildcards("sample_initial"),
    params:
        settings=stage_settings("sample_initial"),
    threads: stage_threads("sample_initial")
    resources:
        **stage_resources("sample_initial"),
    log:
        stage_log("sample_initial"),
    benchmark:
        stage_benchmark("sample_initial")
    shell:
        stage_shell("sample_initial")


rule evaluate_shard:
    input:
        **stage_input("evaluate_shard"),
    output:
        **stage_output("evaluate_shard"),
    wildcard_constraints:
        **stage_wildcards("evaluate_shard"),
    params:
        settings=stage_settings("evaluate_shard"),
    threads: stage_threads("evaluate_shard")
    resources:
        **stage_resources("evaluate_shard"),
    log:
        stage_log("evaluate_shard"),
    benchmark:
        stage_benchmark("evaluate_shard")
    shell:
        stage_shell("evaluate_shard")


rule init_archive:
    input:
        **stage_input("init_archive"),
    output:
        **stage_output("init_archive"),
    wildcard_constraints:
        **stage_wildcards("init_archive"),
    params:
        settings=stage_settings("init_archive"),
    threads: stage_threads("init_archive")
    resources:
        **stage_resources("init_archive"),
    log:
        stage_log("init_archive"),
    benchmark:
        stage_benchmark("init_archive")
    shell:
        stage_shell("init_archive")


rule fit_surrogate:
    input:
        **stage_input("fit_surrogate"),
    output:
        **stage_output("fit_surrogate"),
    wildcard_constraints:
        **stage_wildcards("fit_surrogate"),
    params:
        settings=stage_settings("fit_surrogate"),
    threads: stage_threads("fit_surrogate")
    resources:
        **stage_resources("fit_surrogate"),
    log:
        stage_log("fit_surrogate"),
    benchmark:
        stage_benchmark("fit_surrogate")
    shell:
        stage_shell("fit_surrogate")


rule search:
    input:
        **stage_input("search"),
    output:
        **stage_output("search"),
    wildcard_constraints:
        **stage_wildcards("search"),
    params:
        settings=stage_settings("search"),
    threads: stage_threads("search")
    resources:
        **stage_resources("search"),
    log:
        stage_log("search"),
    benchmark:
        stage_benchmark("search")
    shell:
        stage_shell("search")


rule update_archive:
    input:
        **stage_input("update_archive"),
    output:
        **stage_output("update_archive"),
    wildcard_constraints:
        **stage_wildcards("update_archive"),
    params:
        settings=stage_settings("update_archive"),
    threads: stage_threads("update_archive")
    resources:
        **stage_resources("update_archive"),
    log:
        stage_log("update_archive"),
    benchmark:
        stage_benchmark("update_archive")
    shell:
        stage_shell("update_archive")


rule adapt_supernet:
    input:
        **stage_input("adapt_supernet"),
    output:
        **stage_output("adapt_supernet"),
    wildcard_constraints:
        **stage_wildcards("adapt_supernet"),
    params:
        settings=stage_settings("adapt_supernet"),
    threads: stage_threads("adapt_supernet")
    resources:
        **stage_resources("adapt_supernet"),
    log:
        stage_log("adapt_supernet"),
    benchmark:
        stage_benchmark("adapt_supernet")
    shell:
        stage_shell("adapt_supernet")
