# Latency: the look-up table of the space's blocks on this run's device, its fitted overhead and validation.
# It times code, so it takes every thread runtime.threads gives it (nothing else should run beside it).


rule profile_latency:
    input:
        **stage_input("profile_latency"),
    output:
        **stage_output("profile_latency"),
    wildcard_constraints:
        **stage_wildcards("profile_latency"),
    params:
        settings=stage_settings("profile_latency"),
    threads: stage_threads("profile_latency")
    resources:
        **stage_resources("profile_latency"),
    log:
        stage_log("profile_latency"),
    benchmark:
        stage_benchmark("profile_latency")
    shell:
        stage_shell("profile_latency")
