# Super-net training: one job per progressive-shrinking phase (every width inside), chained by train.lineage,
# then the run's super-net file. The same commands are in dvc.yaml (train_full, train_phase@*, assemble_supernet).


rule train_full:
    input:
        split=rules.prepare_data.output.split,
        code=code("train_supernet"),
    output:
        ckpt="results/supernet/full.pt",
        metrics="results/supernet/full.metrics.csv",
        manifest="results/supernet/full.manifest.json",
    params:
        threads=THREADS,
        settings=settings("train_full"),
    threads: THREADS
    resources:
        mem_mb=8000,
        gpu=1,
    log:
        "results/logs/train_supernet/full.log",
    benchmark:
        "results/benchmarks/train_supernet/full.tsv"
    shell:
        "python -m nat2.stages.train_supernet --params params.yaml --threads {params.threads} --phase full "
        "--split {input.split} --out {output.ckpt} --log {log}"


rule train_phase:
    input:
        split=rules.prepare_data.output.split,
        init=previous_phase,
        full=rules.train_full.output.ckpt,
        code=code("train_supernet"),
    output:
        ckpt="results/supernet/{phase}.pt",
        metrics="results/supernet/{phase}.metrics.csv",
        manifest="results/supernet/{phase}.manifest.json",
    wildcard_constraints:
        phase="|".join(LINEAGE),
    params:
        threads=THREADS,
        settings=settings("train_phase"),
    threads: THREADS
    resources:
        mem_mb=8000,
        gpu=1,
    log:
        "results/logs/train_supernet/{phase}.log",
    benchmark:
        "results/benchmarks/train_supernet/{phase}.tsv"
    shell:
        "python -m nat2.stages.train_supernet --params params.yaml --threads {params.threads} "
        "--phase {wildcards.phase} --split {input.split} --init {input.init} --full {input.full} "
        "--out {output.ckpt} --log {log}"


rule assemble_supernet:
    input:
        ckpt=f"results/supernet/{FINAL_PHASE}.pt",
        code=code("assemble_supernet"),
    output:
        supernet="results/supernet/supernet.pt",
        manifest="results/supernet/supernet.manifest.json",
    params:
        threads=THREADS,
        settings=settings("assemble_supernet"),
    threads: 1
    resources:
        mem_mb=4000,
    log:
        "results/logs/assemble_supernet.log",
    benchmark:
        "results/benchmarks/assemble_supernet.tsv"
    shell:
        "python -m nat2.stages.assemble_supernet --params params.yaml --threads {params.threads} "
        "--phase-ckpt {input.ckpt} --out {output.supernet} --log {log}"
