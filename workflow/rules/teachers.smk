# Teachers: a sanity gate, then depth, detect and segment (SAM 2 + geometric labeller) per shard.
# Each shard job writes a layer file that merge_manifest copies into the manifest's teacher slots.


localrules:
    download_weights,
    download_weights_all,


rule download_weights:
    output:
        f"{WEIGHTS_CACHE}/{{weights_file}}",
    params:
        args=download_args,
    wildcard_constraints:
        weights_file=hub_weights_pattern(),
    log:
        "logs/download_weights/{weights_file}.log",
    benchmark:
        "results/benchmarks/download_weights/{weights_file}.tsv"
    conda:
        "../../envs/teachers.yaml"
    shell:
        "distillery teach download-weights {params.args} > {log} 2>&1"


rule download_weights_all:
    input:
        list(HUB_WEIGHTS),


rule teacher_sanity:
    input:
        shards=shard_files,
        weights=all_teacher_weights(),
    output:
        report="results/teachers/sanity.json",
    params:
        teacher=teacher_spec("depth"),
        runtime=teacher_runtime_args("depth"),
        limits=teacher_sanity_args(),
    log:
        "logs/teacher_sanity/teacher_sanity.log",
    benchmark:
        "results/benchmarks/teacher_sanity/teacher_sanity.tsv"
    resources:
        gpu=teacher_gpus("depth"),
        mem_mb=teacher_mem_mb("depth"),
        runtime=teacher_runtime("depth"),
    conda:
        "../../envs/teachers.yaml"
    shell:
        "distillery teach sanity --shards {input.shards} --teacher {params.teacher} "
        "{params.runtime} --limits {params.limits} --out {output.report} > {log} 2>&1"


rule teacher_depth:
    input:
        shard="results/shards/{shard}.h5",
        # ancient: the gate re-runs when a shard is added; that must not re-label the other shards
        sanity=ancient("results/teachers/sanity.json"),
        weights=teacher_weights_input("depth"),
    output:
        layer="results/teachers/depth/{shard}.h5",
        failures="results/teachers/depth/{shard}.failures.jsonl",
    params:
        teacher=teacher_spec("depth"),
        runtime=teacher_runtime_args("depth"),
        batch_size=teacher_batch_size("depth"),
    log:
        "logs/teacher_depth/{shard}.log",
    benchmark:
        "results/benchmarks/teacher_depth/{shard}.tsv"
    threads: teacher_threads("depth")
    resources:
        gpu=teacher_gpus("depth"),
        mem_mb=teacher_mem_mb("depth"),
        runtime=teacher_runtime("depth"),
    conda:
        "../../envs/teachers.yaml"
    shell:
        "distillery teach depth --shard {input.shard} --out {output.layer} "
        "--failures {output.failures} --teacher {params.teacher} {params.runtime} "
        "--batch-size {params.batch_size} --threads {threads} > {log} 2>&1"


rule teacher_detect:
    input:
        shard="results/shards/{shard}.h5",
        sanity=ancient("results/teachers/sanity.json"),
        weights=teacher_weights_input("detect"),
    output:
        layer="results/teachers/detect/{shard}.h5",
        failures="results/teachers/detect/{shard}.failures.jsonl",
    params:
        teacher=teacher_spec("detect"),
        runtime=teacher_runtime_args("detect"),
        batch_size=teacher_batch_size("detect"),
    log:
        "logs/teacher_detect/{shard}.log",
    benchmark:
        "results/benchmarks/teacher_detect/{shard}.tsv"
    threads: teacher_threads("detect")
    resources:
        gpu=teacher_gpus("detect"),
        mem_mb=teacher_mem_mb("detect"),
        runtime=teacher_runtime("detect"),
    conda:
        "../../envs/teachers.yaml"
    shell:
        "distillery teach detect --shard {input.shard} --out {output.layer} "
        "--failures {output.failures} --teacher {params.teacher} {params.runtime} "
        "--batch-size {params.batch_size} --threads {threads} > {log} 2>&1"


rule teacher_segment:
    input:
        shard="results/shards/{shard}.h5",
        depth="results/teachers/depth/{shard}.h5",
        detect="results/teachers/detect/{shard}.h5",
        weights=teacher_weights_input("segment"),
    output:
        layer="results/teachers/segment/{shard}.h5",
        failures="results/teachers/segment/{shard}.failures.jsonl",
    params:
        teacher=teacher_spec("segment"),
        runtime=teacher_runtime_args("segment"),
        batch_size=teacher_batch_size("segment"),
        labeller=teacher_labeller_args(),
    log:
        "logs/teacher_segment/{shard}.log",
    benchmark:
        "results/benchmarks/teacher_segment/{shard}.tsv"
    threads: teacher_threads("segment")
    resources:
        gpu=teacher_gpus("segment"),
        mem_mb=teacher_mem_mb("segment"),
        runtime=teacher_runtime("segment"),
    conda:
        "../../envs/teachers.yaml"
    shell:
        "distillery teach segment --shard {input.shard} --depth-layer {input.depth} "
        "--detect-layer {input.detect} --out {output.layer} --failures {output.failures} "
        "--teacher {params.teacher} --labeller {params.labeller} {params.runtime} "
        "--batch-size {params.batch_size} --threads {threads} > {log} 2>&1"
