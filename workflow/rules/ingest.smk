# Ingest: index each dataset, plan shards, then decode/validate/resize each shard.


rule extract_bag:
    input:
        bag=lambda w: DATASETS[w.dataset]["bag"]["path"],
    output:
        folder=directory("results/bags/{dataset}"),
    params:
        settings=lambda w: as_json(DATASETS[w.dataset]["bag"]),
    log:
        "logs/extract_bag/{dataset}.log",
    benchmark:
        "results/benchmarks/extract_bag/{dataset}.tsv"
    resources:
        **job_resources("extract_bag"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery extract-bag {input.bag:q} --out {output.folder:q} --settings {params.settings:q} --quiet "
        "> {log:q} 2>&1"


rule index_dataset:
    input:
        folder=lambda w: wf.dataset_folder(w.dataset),
    output:
        index="results/index/{dataset}.jsonl",
        quarantine="results/index/{dataset}.quarantine.jsonl",
    params:
        layout=lambda w: wf.reader_settings(w.dataset)["layout"],
        depth_scale=lambda w: wf.reader_settings(w.dataset)["depth_scale"],
        intrinsics=lambda w: as_json(wf.reader_settings(w.dataset)["intrinsics"]),
        max_pair_dt=config["ingest"]["max_pair_dt"],
    log:
        "logs/index_dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/index_dataset/{dataset}.tsv"
    resources:
        **job_resources("index_dataset"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery index --dataset {input.folder:q} --name {wildcards.dataset} "
        "--layout {params.layout} --depth-scale {params.depth_scale} "
        "--intrinsics {params.intrinsics:q} --max-pair-dt {params.max_pair_dt} --out {output.index:q} --quarantine {output.quarantine:q} "
        "> {log:q} 2>&1"


checkpoint plan_shards:
    input:
        indexes=expand("results/index/{dataset}.jsonl", dataset=list(DATASETS)),
    output:
        plan=directory("results/shards/plan"),
    params:
        frames_per_shard=config["sharding"]["frames_per_shard"],
        seed=config["sharding"]["seed"],
        splits=as_json(config["sharding"]["splits"]),
        overrides=as_json(wf.split_overrides()),
    log:
        "logs/plan_shards/plan_shards.log",
    benchmark:
        "results/benchmarks/plan_shards/plan_shards.tsv"
    resources:
        **job_resources("plan_shards"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery plan-shards {input.indexes:q} --out {output.plan:q} "
        "--frames-per-shard {params.frames_per_shard} --seed {params.seed} "
        "--splits {params.splits:q} --split-overrides {params.overrides:q} > {log:q} 2>&1"


# A shard's name is a hash of its frame list: an existing name means unchanged frames, so the re-written
# list of a re-run plan (ancient) re-packs nothing; pack settings are params and still re-pack every shard.
rule pack_shard:
    input:
        frames=ancient("results/shards/plan/{shard}.jsonl"),
    output:
        h5="results/shards/{shard}.h5",
        quarantine="results/shards/{shard}.quarantine.jsonl",
    params:
        height=config["ingest"]["height"],
        width=config["ingest"]["width"],
        fit=config["ingest"]["fit"],
        max_depth=config["ingest"]["max_depth_m"],
        trusted_floor=config["ingest"]["trusted_floor"],
        compression_level=config["manifest"]["compression_level"],
    log:
        "logs/pack_shard/{shard}.log",
    benchmark:
        "results/benchmarks/pack_shard/{shard}.tsv"
    resources:
        **job_resources("pack_shard"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery pack-shard --frames {input.frames:q} --out {output.h5:q} "
        "--quarantine {output.quarantine:q} --height {params.height} --width {params.width} --fit {params.fit} "
        "--max-depth {params.max_depth} --trusted-floor {params.trusted_floor} "
        "--compression-level {params.compression_level} > {log:q} 2>&1"
