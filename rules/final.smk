# After the search: the final subnets in fixed slots (fine-tuning, test evaluation, export and the report land
# with the post-processing issue). dvc.yaml holds the same command.


rule extract:
    input:
        archive=f"results/search/iter_{FINAL_ITERATION}/archive.parquet",
        supernet=f"results/search/iter_{FINAL_ITERATION}/supernet.pt",
        split=rules.prepare_data.output.split,
        code=code("extract"),
    output:
        directory("results/final/extract"),
    params:
        threads=THREADS,
    threads: THREADS
    resources:
        gpu=1,
    log:
        "results/logs/final/extract.log",
    shell:
        "python -m nat2.stages.extract --params params.yaml --threads {params.threads} --archive {input.archive} "
        "--supernet {input.supernet} --split {input.split} --out {output} --log {log}"


rule finetune:
    input:
        extract=rules.extract.output[0],
        split=rules.prepare_data.output.split,
        code=code("finetune"),
    output:
        directory("results/final/finetune/slot_{slot}"),
    wildcard_constraints:
        slot="|".join(SLOTS),
    params:
        threads=THREADS,
    threads: THREADS
    resources:
        mem_mb=8000,
        gpu=1,
    log:
        "results/logs/final/finetune_{slot}.log",
    benchmark:
        "results/benchmarks/final/finetune_{slot}.tsv"
    shell:
        "python -m nat2.stages.finetune --params params.yaml --threads {params.threads} "
        "--slot results/final/extract/slot_{wildcards.slot} --split {input.split} --out {output} --log {log}"
