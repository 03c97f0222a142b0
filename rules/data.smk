# Data: the deterministic train/validation/test index every later stage reads.


rule prepare_data:
    input:
        code=code("prepare_data"),
    output:
        split="data/split.parquet",
        manifest="data/split.manifest.json",
    params:
        threads=THREADS,
        settings=settings("prepare_data"),
    threads: THREADS
    resources:
        mem_mb=4000,
    log:
        "results/logs/prepare_data.log",
    benchmark:
        "results/benchmarks/prepare_data.tsv"
    shell:
        "python -m nat2.stages.prepare_data --params params.yaml --threads {params.threads} "
        "--out {output.split} --log {log}"
