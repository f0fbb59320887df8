# Ingest: index each dataset, plan shards, then decode/validate/resize each shard.


rule extract_bag:
    input:
        bag=bag_path,
    output:
        folder=directory("results/bags/{dataset}"),
    params:
        settings=bag_args,
    log:
        "logs/extract_bag/{dataset}.log",
    benchmark:
        "results/benchmarks/extract_bag/{dataset}.tsv"
    resources:
        **job_resources("extract_bag"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery extract-bag {input.bag:q} --out {output.folder:q} {params.settings} --quiet "
        "> {log:q} 2>&1"


rule index_dataset:
    input:
        folder=dataset_folder,
    output:
        index="results/index/{dataset}.jsonl",
        quarantine="results/index/{dataset}.quarantine.jsonl",
    params:
        reader=reader_args,
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
        "{params.reader} --out {output.index:q} --quarantine {output.quarantine:q} "
        "> {log:q} 2>&1"


checkpoint plan_shards:
    input:
        indexes=expand("results/index/{dataset}.jsonl", dataset=list(DATASETS)),
    output:
        plan=directory("results/shards/plan"),
    params:
        frames_per_shard=config["sharding"]["frames_per_shard"],
        seed=config["sharding"]["seed"],
        splits=shlex.quote(json.dumps(config["sharding"]["splits"])),
        overrides=shlex.quote(json.dumps(split_overrides())),
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
        "--splits {params.splits} --split-overrides {params.overrides} > {log:q} 2>&1"


# A shard's name is a hash of its frame list: an existing name means unchanged frames, so the re-written
# list of a re-run plan (ancient) re-packs nothing; pack settings are params and still re-pack every shard.
rule pack_shard:
    input:
        frames=ancient("results/shards/plan/{shard}.jsonl"),
    output:
        h5="results/shards/{shard}.h5",
        quarantine="results/shards/{shard}.quarantine.jsonl",
    params:
        settings=pack_args(),
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
        "--quarantine {output.quarantine:q} {params.settings} > {log:q} 2>&1"
