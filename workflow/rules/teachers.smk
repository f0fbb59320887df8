# Teachers: per depth teacher a sanity gate, then depth (metric and relative), detect and segment
# (SAM 2 + geometric labeller) per shard. Every job is keyed by the teacher's id ({teacher}) and writes
# results/teachers/<id>/<shard>.h5, a layer file that merge_manifest copies into the manifest's slots.


localrules:
    download_weights,
    download_weights_all,
    teacher_settings,


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
        "distillery teach download-weights {params.args} > {log:q} 2>&1"


rule download_weights_all:
    input:
        list(HUB_WEIGHTS),


rule teacher_settings:
    output:
        settings="results/teachers/{teacher}/settings.json",
    wildcard_constraints:
        teacher=teacher_id_pattern(),
    params:
        settings=teacher_settings,
    log:
        "logs/teacher_settings/{teacher}.log",
    benchmark:
        "results/benchmarks/teacher_settings/{teacher}.tsv"
    resources:
        **job_resources("teacher_settings"),
    conda:
        "../../envs/teachers.yaml"
    shell:
        "distillery teach settings --settings {params.settings} --out {output.settings:q} > {log:q} 2>&1"


rule teacher_sanity:
    input:
        shards=shard_files,
        settings="results/teachers/{teacher}/settings.json",
        weights=teacher_weights_input,
    output:
        report="results/teachers/{teacher}/sanity.json",
    wildcard_constraints:
        teacher=teacher_id_pattern("depth"),
    params:
        teacher=teacher_spec,
        runtime=teacher_runtime_args,
        limits=teacher_sanity_args(),
    log:
        "logs/teacher_sanity/{teacher}.log",
    benchmark:
        "results/benchmarks/teacher_sanity/{teacher}.tsv"
    resources:
        **job_resources(teacher_size, gpu=teacher_gpus),
    conda:
        "../../envs/teachers.yaml"
    shell:
        "distillery teach sanity --shards {input.shards:q} --teacher {params.teacher} "
        "{params.runtime} --limits {params.limits} --out {output.report:q} > {log:q} 2>&1"


rule teacher_depth:
    input:
        unpack(selection_input),  # with select: in the config, only the selected frames
        shard="results/shards/{shard}.h5",
        # ancient: the gate re-runs when a shard is added; that must not re-label the other shards
        sanity=ancient("results/teachers/{teacher}/sanity.json"),
        settings="results/teachers/{teacher}/settings.json",  # changed settings re-label its layers
        weights=teacher_weights_input,
    output:
        layer="results/teachers/{teacher}/{shard}.h5",
        failures="results/teachers/{teacher}/{shard}.failures.jsonl",
    wildcard_constraints:
        teacher=teacher_id_pattern("depth"),
    params:
        teacher=teacher_spec,
        runtime=teacher_runtime_args,
        selection=selection_arg,
        batch_size=teacher_batch_size,
    log:
        "logs/teacher_depth/{teacher}/{shard}.log",
    benchmark:
        "results/benchmarks/teacher_depth/{teacher}/{shard}.tsv"
    threads: teacher_threads
    resources:
        **job_resources(teacher_size, gpu=teacher_gpus),
    conda:
        "../../envs/teachers.yaml"
    shell:
        "distillery teach depth --shard {input.shard:q} --out {output.layer:q} "
        "--failures {output.failures:q} --teacher {params.teacher} {params.runtime} "
        "{params.selection} --batch-size {params.batch_size} --threads {threads} > {log:q} 2>&1"


rule teacher_detect:
    input:
        unpack(selection_input),  # with select: in the config, only the selected frames
        shard="results/shards/{shard}.h5",
        settings="results/teachers/{teacher}/settings.json",
        weights=teacher_weights_input,
    output:
        layer="results/teachers/{teacher}/{shard}.h5",
        failures="results/teachers/{teacher}/{shard}.failures.jsonl",
    wildcard_constraints:
        teacher=teacher_id_pattern("detect"),
    params:
        teacher=teacher_spec,
        runtime=teacher_runtime_args,
        selection=selection_arg,
        batch_size=teacher_batch_size,
    log:
        "logs/teacher_detect/{teacher}/{shard}.log",
    benchmark:
        "results/benchmarks/teacher_detect/{teacher}/{shard}.tsv"
    threads: teacher_threads
    resources:
        **job_resources(teacher_size, gpu=teacher_gpus),
    conda:
        "../../envs/teachers.yaml"
    shell:
        "distillery teach detect --shard {input.shard:q} --out {output.layer:q} "
        "--failures {output.failures:q} --teacher {params.teacher} {params.runtime} "
        "{params.selection} --batch-size {params.batch_size} --threads {threads} > {log:q} 2>&1"


rule teacher_segment:
    input:
        unpack(segment_layers),
        unpack(selection_input),  # with select: in the config, only the selected frames
        shard="results/shards/{shard}.h5",
        settings="results/teachers/{teacher}/settings.json",
        weights=teacher_weights_input,
    output:
        layer="results/teachers/{teacher}/{shard}.h5",
        failures="results/teachers/{teacher}/{shard}.failures.jsonl",
    wildcard_constraints:
        teacher=teacher_id_pattern("segment"),
    params:
        teacher=teacher_spec,
        runtime=teacher_runtime_args,
        selection=selection_arg,
        batch_size=teacher_batch_size,
        labeller=teacher_labeller_args(),
    log:
        "logs/teacher_segment/{teacher}/{shard}.log",
    benchmark:
        "results/benchmarks/teacher_segment/{teacher}/{shard}.tsv"
    threads: teacher_threads
    resources:
        **job_resources(teacher_size, gpu=teacher_gpus),
    conda:
        "../../envs/teachers.yaml"
    shell:
        "distillery teach segment --shard {input.shard:q} --depth-layer {input.depth:q} "
        "--detect-layer {input.detect:q} --out {output.layer:q} --failures {output.failures:q} "
        "--teacher {params.teacher} --labeller {params.labeller} {params.runtime} "
        "{params.selection} --batch-size {params.batch_size} --threads {threads} > {log:q} 2>&1"
