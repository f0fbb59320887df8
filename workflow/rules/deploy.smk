# Deployment (README "Deployment"): per version, export -> INT8 -> fused graph -> model card -> Jetson
# bundle; TensorRT engines per version x precision and their latency when deploy.engines is true.
# Engine jobs need TensorRT and an NVIDIA GPU where they run; without them they stop, saying what is
# missing and where the README explains it, and nothing else is affected.
DEPLOY = config.get("deploy") or {}
DEPLOY_DIR = "results/deploy/{version}"


def deploy_setting(key, default):
    return DEPLOY.get(key, default)


def deploy_versions():
    """The versions `rule all` builds (common.smk's built_versions, where the lineage defines it)."""
    if "built_versions" in globals():
        return built_versions()
    return (config.get("training") or {}).get("build") or []


def deploy_targets():
    """What `rule all` asks of deployment: every built version's bundle (which needs every export
    stage), and its engines' latency when deploy.engines is true."""
    versions = deploy_versions()
    targets = expand(DEPLOY_DIR + "/jetson_bundle.tar.gz", version=versions)
    if deploy_setting("engines", False):
        targets += expand(
            DEPLOY_DIR + "/engines/{precision}.latency.json",
            version=versions,
            precision=deploy_setting("precisions", ["fp32", "fp16", "int8"]),
        )
    return targets


def deploy_parent(wildcards):
    """`--parent NAME` of a fine-tuned version, nothing for a run from scratch."""
    parent = train_version(wildcards).get("parent")
    return f"--parent {parent}" if parent else ""


def deploy_evaluations(wildcards):
    """The version's evaluation JSON files, which the model card quotes."""
    return evaluation_targets([wildcards.version])


def engine_onnx(wildcards):
    """The ONNX file an engine of a precision is built from (the precision is in the file)."""
    name = {"fp32": "student.onnx", "fp16": "student.fp16.onnx", "int8": "student.int8.onnx"}
    return f"results/deploy/{wildcards.version}/{name[wildcards.precision]}"


wildcard_constraints:
    version="[A-Za-z0-9_.-]+",
    precision="fp32|fp16|int8",


rule export_onnx:
    input:
        checkpoint="results/train/{version}/best.pt",
        manifest="results/manifest/manifest.h5",
    output:
        onnx=DEPLOY_DIR + "/student.onnx",
        fp16=DEPLOY_DIR + "/student.fp16.onnx",
        parity=DEPLOY_DIR + "/parity.json",
    params:
        frames=deploy_setting("parity_frames", 16),
    log:
        "logs/export_onnx/{version}.log",
    benchmark:
        "results/benchmarks/export_onnx/{version}.tsv"
    threads: 2
    resources:
        **job_resources("export"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery export --checkpoint {input.checkpoint} --manifest {input.manifest} "
        "--out {output.onnx} --fp16-out {output.fp16} --parity-out {output.parity} "
        "--parity-frames {params.frames} --threads {threads} > {log} 2>&1"


rule calibration_set:
    input:
        manifest="results/manifest/manifest.h5",
    output:
        calibration=DEPLOY_DIR + "/calibration.npz",
    params:
        frames=deploy_setting("calibration_frames", 64),
        seed=deploy_setting("calibration_seed", 0),
    log:
        "logs/calibration_set/{version}.log",
    benchmark:
        "results/benchmarks/calibration_set/{version}.tsv"
    resources:
        **job_resources("export"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery calibrate --manifest {input.manifest} --out {output.calibration} "
        "--frames {params.frames} --seed {params.seed} > {log} 2>&1"


rule quantize_int8:
    input:
        onnx=DEPLOY_DIR + "/student.onnx",
        calibration=DEPLOY_DIR + "/calibration.npz",
        manifest="results/manifest/manifest.h5",
    output:
        onnx=DEPLOY_DIR + "/student.int8.onnx",
        report=DEPLOY_DIR + "/quantization.json",
    params:
        eval_frames=(
            f"--eval-frames {deploy_setting('eval_frames', None)}"
            if deploy_setting("eval_frames", None)
            else ""
        ),
    log:
        "logs/quantize_int8/{version}.log",
    benchmark:
        "results/benchmarks/quantize_int8/{version}.tsv"
    threads: 2
    resources:
        **job_resources("export"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery quantize --onnx {input.onnx} --calibration {input.calibration} "
        "--manifest {input.manifest} --out {output.onnx} --report {output.report} "
        "{params.eval_frames} --threads {threads} > {log} 2>&1"


rule fused_graph:
    input:
        checkpoint="results/train/{version}/best.pt",
        manifest="results/manifest/manifest.h5",
    output:
        onnx=DEPLOY_DIR + "/fused.onnx",
        report=DEPLOY_DIR + "/fused.json",
    params:
        frames=deploy_setting("fused_frames", 16),
    log:
        "logs/fused_graph/{version}.log",
    benchmark:
        "results/benchmarks/fused_graph/{version}.tsv"
    threads: 2
    resources:
        **job_resources("export"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery fused-graph --checkpoint {input.checkpoint} --manifest {input.manifest} "
        "--out {output.onnx} --report {output.report} --frames {params.frames} "
        "--threads {threads} > {log} 2>&1"


rule model_card:
    input:
        checkpoint="results/train/{version}/best.pt",
        manifest="results/manifest/manifest.h5",
        onnx=DEPLOY_DIR + "/student.onnx",
        int8=DEPLOY_DIR + "/student.int8.onnx",
        fused=DEPLOY_DIR + "/fused.onnx",
        calibration=DEPLOY_DIR + "/calibration.npz",
        evaluations=deploy_evaluations,
    output:
        card=DEPLOY_DIR + "/model_card.json",
    params:
        deploy_dir=DEPLOY_DIR,
        evaluation_dir="results/evaluation/{version}",
        parent=deploy_parent,
    log:
        "logs/model_card/{version}.log",
    benchmark:
        "results/benchmarks/model_card/{version}.tsv"
    resources:
        **job_resources("deploy_small"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery model-card --version {wildcards.version} {params.parent} "
        "--checkpoint {input.checkpoint} --manifest {input.manifest} "
        "--deploy-dir {params.deploy_dir} --evaluation-dir {params.evaluation_dir} "
        "--out {output.card} > {log} 2>&1"


rule jetson_bundle:
    input:
        card=DEPLOY_DIR + "/model_card.json",
        onnx=DEPLOY_DIR + "/student.onnx",
        fp16=DEPLOY_DIR + "/student.fp16.onnx",
        int8=DEPLOY_DIR + "/student.int8.onnx",
        fused=DEPLOY_DIR + "/fused.onnx",
        calibration=DEPLOY_DIR + "/calibration.npz",
    output:
        folder=directory(DEPLOY_DIR + "/jetson_bundle"),
        tarball=DEPLOY_DIR + "/jetson_bundle.tar.gz",
    params:
        deploy_dir=DEPLOY_DIR,
    log:
        "logs/jetson_bundle/{version}.log",
    benchmark:
        "results/benchmarks/jetson_bundle/{version}.tsv"
    resources:
        **job_resources("deploy_small"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery jetson-bundle --deploy-dir {params.deploy_dir} --out-dir {output.folder} "
        "--tarball {output.tarball} > {log} 2>&1"


# TensorRT engines: a GPU job each. Exit status 2 and the reason on stderr where TensorRT or a GPU is
# missing (the log is echoed, so Snakemake's error shows it).
rule build_engine:
    input:
        onnx=engine_onnx,
    output:
        engine=DEPLOY_DIR + "/engines/{precision}.plan",
        meta=DEPLOY_DIR + "/engines/{precision}.json",
    log:
        "logs/build_engine/{version}/{precision}.log",
    benchmark:
        "results/benchmarks/build_engine/{version}/{precision}.tsv"
    resources:
        **job_resources("deploy_gpu", gpu=1),
    shell:
        "distillery engine-build --onnx {input.onnx} --precision {wildcards.precision} "
        "--out {output.engine} --meta {output.meta} > {log} 2>&1 || {{ cat {log} >&2; exit 1; }}"


rule engine_latency:
    input:
        engine=DEPLOY_DIR + "/engines/{precision}.plan",
        calibration=DEPLOY_DIR + "/calibration.npz",
    output:
        latency=DEPLOY_DIR + "/engines/{precision}.latency.json",
    params:
        warmup=deploy_setting("engine_warmup", 50),
        runs=deploy_setting("engine_runs", 1000),
    log:
        "logs/engine_latency/{version}/{precision}.log",
    benchmark:
        "results/benchmarks/engine_latency/{version}/{precision}.tsv"
    resources:
        **job_resources("deploy_gpu", gpu=1),
    shell:
        "distillery engine-bench --engine {input.engine} --frames {input.calibration} "
        "--warmup {params.warmup} --runs {params.runs} --out {output.latency} "
        "> {log} 2>&1 || {{ cat {log} >&2; exit 1; }}"
