# After the search: the final subnets in fixed slots, their two-step fine-tuning (with test top-1 and checked
# ONNX / torch.export programs), and the report. dvc.yaml holds the same commands.


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
        settings=settings("extract"),
    threads: THREADS
    resources:
        mem_mb=4000,
        gpu=1,
    log:
        "results/logs/final/extract.log",
    benchmark:
        "results/benchmarks/final/extract.tsv"
    shell:
        "python -m nat2.stages.extract --params params.yaml --threads {params.threads} --archive {input.archive} "
        "--supernet {input.supernet} --split {input.split} --out {output} --log {log}"


rule finetune:
    input:
        extract=rules.extract.output[0],
        supernet=rules.extract.input.supernet,
        split=rules.prepare_data.output.split,
        code=code("finetune"),
    output:
        directory("results/final/finetune/slot_{slot}"),
    wildcard_constraints:
        slot="|".join(SLOTS),
    params:
        threads=THREADS,
        settings=settings("finetune"),
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
        "--slot results/final/extract/slot_{wildcards.slot} --supernet {input.supernet} --split {input.split} "
        "--out {output} --log {log}"


rule report:
    input:
        archives=expand("results/search/iter_{i}/archive.parquet", i=["0", *ITERATIONS]),
        surrogates=expand("results/search/iter_{i}/surrogate.json", i=ITERATIONS),
        updates=expand("results/search/iter_{i}/update.json", i=ITERATIONS),
        curves=expand("results/supernet/{phase}.metrics.csv", phase=["full", *LINEAGE]),
        slots=expand("results/final/finetune/slot_{slot}", slot=SLOTS),
        code=code("report"),
    output:
        summary="results/report/summary.md",
        metrics="results/report/metrics.json",
        hv="results/report/hv.csv",
        surrogate="results/report/surrogate.csv",
        archive="results/report/archive.csv",
        front="results/report/front.csv",
        training="results/report/training.csv",
        finetune="results/report/finetune.csv",
        manifest="results/report/manifest.json",
        figures=directory("results/report/figures"),
    params:
        threads=THREADS,
        settings=settings("report"),
    threads: 1
    resources:
        mem_mb=2000,
    log:
        "results/logs/final/report.log",
    benchmark:
        "results/benchmarks/final/report.tsv"
    shell:
        "python -m nat2.stages.report --params params.yaml --threads {params.threads} --search results/search "
        "--supernet-dir results/supernet --finetune results/final/finetune --out results/report --log {log}"
