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
