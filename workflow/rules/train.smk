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
        settings=train_settings,
        init_from=init_from_arg,
        launcher=train_launcher,
    log:
        "logs/train_student/{version}.log",
    benchmark:
        "results/benchmarks/train_student/{version}.tsv"
    threads: train_threads
    resources:
        **job_resources(train_size, gpu=train_gpus, cpus=train_threads),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "{params.launcher} train --manifest {input.manifest} --out {params.out} "
        "--config-json {params.settings} {params.init_from} --threads {threads} --quiet "
        "> {log} 2>&1"
