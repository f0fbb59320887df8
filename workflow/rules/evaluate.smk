# Evaluation: every trained version on the test split of every evaluation set (docs/evaluation.md), one
# job per version for all sets (the student and torch load once: seconds each on a CPU).


rule evaluate_version:
    input:
        checkpoint="results/train/{version}/best.pt",
        manifest="results/manifest/manifest.h5",
    output:
        json=expand("results/evaluation/{{version}}/{dataset}.json", dataset=EVALUATION_SETS),
        frames=expand("results/evaluation/{{version}}/{dataset}.frames.jsonl", dataset=EVALUATION_SETS),
    wildcard_constraints:
        version="[A-Za-z0-9_.-]+",
    params:
        sets=" ".join(EVALUATION_SETS),
        out_dir="results/evaluation/{version}",
        resamples=config["evaluation"]["bootstrap"]["resamples"],
        seed=config["evaluation"]["bootstrap"]["seed"],
        batch_size=config["evaluation"]["batch_size"],
        device=config["evaluation"]["device"],
    log:
        "logs/evaluate_version/{version}.log",
    benchmark:
        "results/benchmarks/evaluate_version/{version}.tsv"
    threads: 1  # per job: on a few cores, jobs side by side beat threads (imports and I/O are serial)
    resources:
        **job_resources("evaluate_version", gpu=int(config["evaluation"]["device"] == "cuda")),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery evaluate --checkpoint {input.checkpoint:q} --manifest {input.manifest:q} "
        "--set {params.sets} --out-dir {params.out_dir} --version-name {wildcards.version} "
        "--bootstrap {params.resamples} --seed {params.seed} --batch-size {params.batch_size} "
        "--device {params.device} --threads {threads} --quiet > {log:q} 2>&1"
