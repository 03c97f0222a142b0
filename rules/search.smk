# The search: the initial design evaluated in shards, then per iteration fit_surrogate -> search ->
# update_archive -> adapt_supernet, chained by search.iterations. dvc.yaml holds the same commands.

SPLIT = rules.prepare_data.output.split
SUPERNET = rules.assemble_supernet.output.supernet
FULL = rules.train_full.output.ckpt


rule sample_initial:
    input:
        code=code("sample_initial"),
    output:
        design="results/search/iter_0/design.parquet",
        manifest="results/search/iter_0/design.manifest.json",
    params:
        threads=THREADS,
        settings=settings("sample_initial"),
    threads: 1
    resources:
        mem_mb=2000,
    log:
        "results/logs/search/sample_initial.log",
    benchmark:
        "results/benchmarks/search/sample_initial.tsv"
    shell:
        "python -m nat2.stages.sample_initial --params params.yaml --threads {params.threads} --out {output.design} "
        "--log {log}"


rule evaluate_shard:
    input:
        genomes=rules.sample_initial.output.design,
        supernet=SUPERNET,
        split=SPLIT,
        code=code("evaluate"),
    output:
        shard="results/search/iter_0/evals/shard_{shard}.parquet",
        manifest="results/search/iter_0/evals/shard_{shard}.manifest.json",
    wildcard_constraints:
        shard="|".join(SHARDS),
    params:
        threads=THREADS,
        settings=settings("evaluate_shard"),
    threads: THREADS
    resources:
        mem_mb=4000,
        gpu=1,
    log:
        "results/logs/search/evaluate_{shard}.log",
    benchmark:
        "results/benchmarks/search/evaluate_{shard}.tsv"
    shell:
        "python -m nat2.stages.evaluate --params params.yaml --threads {params.threads} --genomes {input.genomes} "
        "--supernet {input.supernet} --split {input.split} --shard {wildcards.shard} --out {output.shard} --log {log}"


rule init_archive:
    input:
        evals=expand("results/search/iter_0/evals/shard_{shard}.parquet", shard=SHARDS),
        supernet=SUPERNET,
        split=SPLIT,
        code=code("init_archive"),
    output:
        archive="results/search/iter_0/archive.parquet",
        supernet="results/search/iter_0/supernet.pt",
        stats="results/search/iter_0/stats.json",
        manifest="results/search/iter_0/archive.manifest.json",
    params:
        threads=THREADS,
        settings=settings("init_archive"),
    threads: THREADS
    resources:
        mem_mb=4000,
    log:
        "results/logs/search/init_archive.log",
    benchmark:
        "results/benchmarks/search/init_archive.tsv"
    shell:
        "python -m nat2.stages.init_archive --params params.yaml --threads {params.threads} "
        "--evals results/search/iter_0/evals --supernet {input.supernet} --split {input.split} "
        "--out {output.archive} --out-supernet {output.supernet} --stats {output.stats} --log {log}"


rule fit_surrogate:
    input:
        archive=lambda w: f"results/search/iter_{ITERATIONS[w.i]}/archive.parquet",
        code=code("fit_surrogate"),
    output:
        model="results/search/iter_{i}/surrogate.model.json",
        report="results/search/iter_{i}/surrogate.json",
        manifest="results/search/iter_{i}/surrogate.manifest.json",
    wildcard_constraints:
        i="|".join(ITERATIONS),
    params:
        threads=THREADS,
        settings=settings("fit_surrogate"),
    threads: THREADS
    resources:
        mem_mb=4000,
    log:
        "results/logs/search/fit_surrogate_{i}.log",
    benchmark:
        "results/benchmarks/search/fit_surrogate_{i}.tsv"
    shell:
        "python -m nat2.stages.fit_surrogate --params params.yaml --threads {params.threads} --iteration {wildcards.i} "
        "--archive {input.archive} --out {output.model} --report {output.report} --log {log}"


rule search:
    input:
        archive=lambda w: f"results/search/iter_{ITERATIONS[w.i]}/archive.parquet",
        surrogate="results/search/iter_{i}/surrogate.model.json",
        split=SPLIT,
        code=code("search"),
    output:
        candidates="results/search/iter_{i}/candidates.parquet",
        stats="results/search/iter_{i}/search.json",
        manifest="results/search/iter_{i}/candidates.manifest.json",
    wildcard_constraints:
        i="|".join(ITERATIONS),
    params:
        threads=THREADS,
        settings=settings("search"),
    threads: 1
    resources:
        mem_mb=4000,
    log:
        "results/logs/search/search_{i}.log",
    benchmark:
        "results/benchmarks/search/search_{i}.tsv"
    shell:
        "python -m nat2.stages.search --params params.yaml --threads {params.threads} --iteration {wildcards.i} "
        "--archive {input.archive} --surrogate {input.surrogate} --split {input.split} "
        "--out {output.candidates} --stats {output.stats} --log {log}"


rule update_archive:
    input:
        archive=lambda w: f"results/search/iter_{ITERATIONS[w.i]}/archive.parquet",
        candidates="results/search/iter_{i}/candidates.parquet",
        supernet=lambda w: f"results/search/iter_{ITERATIONS[w.i]}/supernet.pt",
        split=SPLIT,
        code=code("update_archive"),
    output:
        archive="results/search/iter_{i}/updated.parquet",
        stats="results/search/iter_{i}/update.json",
        manifest="results/search/iter_{i}/updated.manifest.json",
    wildcard_constraints:
        i="|".join(ITERATIONS),
    params:
        threads=THREADS,
        settings=settings("update_archive"),
    threads: THREADS
    resources:
        mem_mb=4000,
        gpu=1,
    log:
        "results/logs/search/update_archive_{i}.log",
    benchmark:
        "results/benchmarks/search/update_archive_{i}.tsv"
    shell:
        "python -m nat2.stages.update_archive --params params.yaml --threads {params.threads} "
        "--iteration {wildcards.i} --archive {input.archive} --candidates {input.candidates} "
        "--supernet {input.supernet} --split {input.split} --out {output.archive} --stats {output.stats} --log {log}"


rule adapt_supernet:
    input:
        archive="results/search/iter_{i}/updated.parquet",
        supernet=lambda w: f"results/search/iter_{ITERATIONS[w.i]}/supernet.pt",
        split=SPLIT,
        full=FULL,
        code=code("adapt_supernet"),
    output:
        supernet="results/search/iter_{i}/supernet.pt",
        archive="results/search/iter_{i}/archive.parquet",
        stats="results/search/iter_{i}/adapt.json",
        manifest="results/search/iter_{i}/archive.manifest.json",
    wildcard_constraints:
        i="|".join(ITERATIONS),
    params:
        threads=THREADS,
        settings=settings("adapt_supernet"),
    threads: THREADS
    resources:
        mem_mb=8000,
        gpu=1,
    log:
        "results/logs/search/adapt_supernet_{i}.log",
    benchmark:
        "results/benchmarks/search/adapt_supernet_{i}.tsv"
    shell:
        "python -m nat2.stages.adapt_supernet --params params.yaml --threads {params.threads} "
        "--iteration {wildcards.i} --archive {input.archive} --supernet {input.supernet} --split {input.split} "
        "--full {input.full} --out-supernet {output.supernet} --out-archive {output.archive} "
        "--stats {output.stats} --log {log}"
