# Evaluation: every trained version on the test split of every evaluation set (docs/evaluation.md).


rule evaluate_version:
    input:
        checkpoint="results/train/{version}/best.pt",
        manifest="results/manifest/manifest.h5",
    output:
        json="results/evaluation/{version}/{dataset}.json",
        frames="results/evaluation/{version}/{dataset}.frames.jsonl",
    wildcard_constraints:
        version="[A-Za-z0-9_.-]+",
        dataset=evaluation_set_pattern(),
    params:
        settings=evaluation_args(),
    log:
        "logs/evaluate_version/{version}/{dataset}.log",
    benchmark:
        "results/benchmarks/evaluate_version/{version}/{dataset}.tsv"
    threads: 1  # per job: on a few cores, jobs side by side beat threads (imports and I/O are serial)
    resources:
        **job_resources("evaluate_version", gpu=evaluation_gpus()),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery evaluate --checkpoint {input.checkpoint} --manifest {input.manifest} "
        "--set {wildcards.dataset} --out {output.json} --version-name {wildcards.version} "
        "{params.settings} --threads {threads} --quiet > {log} 2>&1"
