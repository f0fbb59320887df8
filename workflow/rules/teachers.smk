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
        repo=lambda w: hub_file(w).repo,
        file=lambda w: hub_file(w).filename,
        cache=lambda w: WEIGHTS_CACHE,
    wildcard_constraints:
        weights_file=hub_weights_pattern(),
    log:
        "logs/download_weights/{weights_file}.log",
    benchmark:
        "results/benchmarks/download_weights/{weights_file}.tsv"
    conda:
        "../../envs/teachers.yaml"
    shell:
        "distillery teach download-weights --repo {params.repo} --file {params.file:q} --cache {params.cache:q} "
        "> {log:q} 2>&1"


rule download_weights_all:
    input:
        list(HUB_WEIGHTS),


rule teacher_settings:
    output:
        settings="results/teachers/{teacher}/settings.json",
    wildcard_constraints:
        teacher=wf.teacher_id_pattern(),
    params:
        settings=lambda w: as_json(wf.teacher_settings(w.teacher)),
    log:
        "logs/teacher_settings/{teacher}.log",
    benchmark:
        "results/benchmarks/teacher_settings/{teacher}.tsv"
    resources:
        **job_resources("teacher_settings"),
    conda:
        "../../envs/teachers.yaml"
    shell:
        "distillery teach settings --settings {params.settings:q} --out {output.settings:q} > {log:q} 2>&1"


rule teacher_sanity:
    input:
        shards=sanity_shard_files,
        settings="results/teachers/{teacher}/settings.json",
        weights=per_teacher("depth", teacher_weights),
    output:
        report="results/teachers/{teacher}/sanity.json",
    wildcard_constraints:
        teacher=wf.teacher_id_pattern("depth"),
    params:
        teacher=per_teacher("depth", wf.teacher_spec, as_json),
        device=per_teacher("depth", wf.teacher_device),
        precision=wf.teachers.get("precision"),
        weights_cache=WEIGHTS_CACHE,
        limits=as_json(wf.teachers.get("sanity", {})),
    log:
        "logs/teacher_sanity/{teacher}.log",
    benchmark:
        "results/benchmarks/teacher_sanity/{teacher}.tsv"
    resources:
        **job_resources(per_teacher("depth", wf.teacher_size), gpu=per_teacher("depth", wf.teacher_gpus)),
    conda:
        "../../envs/teachers.yaml"
    shell:
        "distillery teach sanity --shards {input.shards:q} --teacher {params.teacher:q} "
        "--device {params.device} --precision {params.precision} --weights-cache {params.weights_cache:q} "
        "--limits {params.limits:q} --out {output.report:q} > {log:q} 2>&1"


rule teacher_depth:
    input:
        **SELECTION_INPUT,  # with select: in the config, only the selected frames
        shard="results/shards/{shard}.h5",
        # ancient: the gate re-runs when its shards change (a new plan); that must not re-label the others
        sanity=ancient("results/teachers/{teacher}/sanity.json"),
        settings="results/teachers/{teacher}/settings.json",  # changed settings re-label its layers
        weights=per_teacher("depth", teacher_weights),
    output:
        layer="results/teachers/{teacher}/{shard}.h5",
        failures="results/teachers/{teacher}/{shard}.failures.jsonl",
    wildcard_constraints:
        teacher=wf.teacher_id_pattern("depth"),
    params:
        selection=selection_param,
        teacher=per_teacher("depth", wf.teacher_spec, as_json),
        device=per_teacher("depth", wf.teacher_device),
        precision=wf.teachers.get("precision"),
        weights_cache=WEIGHTS_CACHE,
        batch_size=per_teacher("depth", wf.teacher_batch_size),
    log:
        "logs/teacher_depth/{teacher}/{shard}.log",
    benchmark:
        "results/benchmarks/teacher_depth/{teacher}/{shard}.tsv"
    threads: per_teacher("depth", wf.teacher_threads)
    resources:
        **job_resources(
            per_teacher("depth", wf.teacher_size),
            gpu=per_teacher("depth", wf.teacher_gpus),
            cpus=per_teacher("depth", wf.teacher_threads),
        ),
    conda:
        "../../envs/teachers.yaml"
    shell:
        "distillery teach depth --shard {input.shard:q} --out {output.layer:q} "
        "--failures {output.failures:q} --teacher {params.teacher:q} --device {params.device} "
        "--precision {params.precision} --weights-cache {params.weights_cache:q} "
        "--selection '{params.selection}' --batch-size {params.batch_size} --threads {threads} > {log:q} 2>&1"


rule teacher_detect:
    input:
        **SELECTION_INPUT,  # with select: in the config, only the selected frames
        shard="results/shards/{shard}.h5",
        settings="results/teachers/{teacher}/settings.json",
        weights=per_teacher("detect", teacher_weights),
    output:
        layer="results/teachers/{teacher}/{shard}.h5",
        failures="results/teachers/{teacher}/{shard}.failures.jsonl",
    wildcard_constraints:
        teacher=wf.teacher_id_pattern("detect"),
    params:
        selection=selection_param,
        teacher=per_teacher("detect", wf.teacher_spec, as_json),
        device=per_teacher("detect", wf.teacher_device),
        precision=wf.teachers.get("precision"),
        weights_cache=WEIGHTS_CACHE,
        batch_size=per_teacher("detect", wf.teacher_batch_size),
    log:
        "logs/teacher_detect/{teacher}/{shard}.log",
    benchmark:
        "results/benchmarks/teacher_detect/{teacher}/{shard}.tsv"
    threads: per_teacher("detect", wf.teacher_threads)
    resources:
        **job_resources(
            per_teacher("detect", wf.teacher_size),
            gpu=per_teacher("detect", wf.teacher_gpus),
            cpus=per_teacher("detect", wf.teacher_threads),
        ),
    conda:
        "../../envs/teachers.yaml"
    shell:
        "distillery teach detect --shard {input.shard:q} --out {output.layer:q} "
        "--failures {output.failures:q} --teacher {params.teacher:q} --device {params.device} "
        "--precision {params.precision} --weights-cache {params.weights_cache:q} "
        "--selection '{params.selection}' --batch-size {params.batch_size} --threads {threads} > {log:q} 2>&1"


rule teacher_segment:
    input:
        **SEGMENT_LAYERS,
        **SELECTION_INPUT,  # with select: in the config, only the selected frames
        shard="results/shards/{shard}.h5",
        settings="results/teachers/{teacher}/settings.json",
        weights=per_teacher("segment", teacher_weights),
    output:
        layer="results/teachers/{teacher}/{shard}.h5",
        failures="results/teachers/{teacher}/{shard}.failures.jsonl",
    wildcard_constraints:
        teacher=wf.teacher_id_pattern("segment"),
    params:
        selection=selection_param,
        teacher=per_teacher("segment", wf.teacher_spec, as_json),
        device=per_teacher("segment", wf.teacher_device),
        precision=wf.teachers.get("precision"),
        weights_cache=WEIGHTS_CACHE,
        batch_size=per_teacher("segment", wf.teacher_batch_size),
        labeller=as_json(wf.teachers.get("labeller", {})),
    log:
        "logs/teacher_segment/{teacher}/{shard}.log",
    benchmark:
        "results/benchmarks/teacher_segment/{teacher}/{shard}.tsv"
    threads: per_teacher("segment", wf.teacher_threads)
    resources:
        **job_resources(
            per_teacher("segment", wf.teacher_size),
            gpu=per_teacher("segment", wf.teacher_gpus),
            cpus=per_teacher("segment", wf.teacher_threads),
        ),
    conda:
        "../../envs/teachers.yaml"
    shell:
        "distillery teach segment --shard {input.shard:q} --depth-layer {input.depth:q} "
        "--detect-layer {input.detect:q} --out {output.layer:q} --failures {output.failures:q} "
        "--teacher {params.teacher:q} --labeller {params.labeller:q} --device {params.device} "
        "--precision {params.precision} --weights-cache {params.weights_cache:q} "
        "--selection '{params.selection}' --batch-size {params.batch_size} --threads {threads} > {log:q} 2>&1"
