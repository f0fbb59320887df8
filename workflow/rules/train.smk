# Student training: one run per version of config["training"]["versions"].


rule train_student:
    input:
        unpack(train_inputs),
    output:
        best="results/train/{version}/best.pt",
    wildcard_constraints:
        version="[A-Za-z0-9_.-]+",
    params:
        out="results/train/{version}",
        settings=lambda w: as_json(wf.train_settings(w.version)),
        init_from=lambda w: f"results/train/{wf.parent(w.version)}/best.pt" if wf.parent(w.version) else "",
        launcher=lambda w: wf.train_launcher(w.version),
    log:
        "logs/train_student/{version}.log",
    benchmark:
        "results/benchmarks/train_student/{version}.tsv"
    threads: lambda w: wf.train_threads(w.version)
    # Trainings first among ready jobs: the lineage's parent-child chains are the run's longest path,
    # and evaluation and deployment of finished versions can fill the gaps.
    priority: 10
    resources:
        **job_resources(
            lambda w: "train_gpu" if wf.train_gpus(w.version) else "train_cpu",
            gpu=lambda w: wf.train_gpus(w.version),
            cpus=lambda w: wf.train_threads(w.version),
        ),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "{params.launcher} train --manifest {input.manifest:q} --out {params.out} "
        "--config-json {params.settings:q} --init-from '{params.init_from}' --threads {threads} --quiet "
        "> {log:q} 2>&1"
