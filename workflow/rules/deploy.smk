# Deployment (README "Deployment"): per version, export (FP32, FP16, fused graph; one process, as loading
# torch and the student costs seconds) -> INT8 on the shared calibration set, gated on its accuracy cost
# -> model card -> Jetson bundle; TensorRT engines per version x precision, their latency against the
# budget and their agreement with the FP32 engine when deploy.engines is true.
# Engine jobs need TensorRT and an NVIDIA GPU where they run; without them they stop, saying what is
# missing and where the README explains it, and nothing else is affected. A missing TensorRT is not
# transient, so engine jobs are never retried (`retries: 0` wins over the profile's `retries`).


rule export_onnx:
    input:
        checkpoint="results/train/{version}/best.pt",
        manifest="results/manifest/manifest.h5",
    output:
        onnx=deployed("fp32"),
        fp16=deployed("fp16"),
        parity="results/deploy/{version}/parity.json",
        fused=deployed("fused"),
        fused_report="results/deploy/{version}/fused.json",
    params:
        frames=config["deploy"]["parity_frames"],
        fused_frames=config["deploy"]["fused_frames"],
    log:
        "logs/export_onnx/{version}.log",
    benchmark:
        "results/benchmarks/export_onnx/{version}.tsv"
    threads: 1  # per job: on a few cores, jobs side by side beat threads (imports and I/O are serial)
    resources:
        **job_resources("export"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery export --checkpoint {input.checkpoint:q} --manifest {input.manifest:q} "
        "--out {output.onnx:q} --fp16-out {output.fp16} --parity-out {output.parity:q} "
        "--parity-frames {params.frames} --fused-out {output.fused:q} --fused-report {output.fused_report:q} "
        "--fused-frames {params.fused_frames} --threads {threads} > {log:q} 2>&1"


# One calibration set for every version: it depends on the manifest and the seed only.
rule calibration_set:
    input:
        manifest="results/manifest/manifest.h5",
    output:
        calibration=CALIBRATION,
    params:
        frames=config["deploy"]["calibration_frames"],
        seed=config["deploy"]["calibration_seed"],
    log:
        "logs/calibration_set/calibration_set.log",
    benchmark:
        "results/benchmarks/calibration_set/calibration_set.tsv"
    resources:
        **job_resources("export"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery calibrate --manifest {input.manifest:q} --out {output.calibration:q} "
        "--frames {params.frames} --seed {params.seed} > {log:q} 2>&1"


rule quantize_int8:
    input:
        onnx=deployed("fp32"),
        calibration=CALIBRATION,
        manifest="results/manifest/manifest.h5",
    output:
        onnx=deployed("int8"),
        report="results/deploy/{version}/quantization.json",
    params:
        eval_frames=config["deploy"]["eval_frames"],
        max_delta1_drop=config["deploy"]["int8_max_delta1_drop"],
        max_absrel_increase=config["deploy"]["int8_max_absrel_increase"],
        max_miou_drop=config["deploy"]["int8_max_miou_drop"],
    log:
        "logs/quantize_int8/{version}.log",
    benchmark:
        "results/benchmarks/quantize_int8/{version}.tsv"
    threads: 1  # per job: on a few cores, jobs side by side beat threads (imports and I/O are serial)
    resources:
        **job_resources("export"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery quantize --onnx {input.onnx:q} --calibration {input.calibration:q} "
        "--manifest {input.manifest:q} --out {output.onnx:q} --report {output.report:q} "
        "--eval-frames {params.eval_frames} --version {wildcards.version} --max-delta1-drop {params.max_delta1_drop} "
        "--max-absrel-increase {params.max_absrel_increase} --max-miou-drop {params.max_miou_drop} "
        "--threads {threads} > {log:q} 2>&1 || {{ tail -n 3 {log:q} >&2; exit 1; }}"


# The test frames engines are compared on, on the cluster and in every bundle (one file for all versions).
rule test_frames:
    input:
        manifest="results/manifest/manifest.h5",
    output:
        frames=TEST_FRAMES,
    params:
        frames=config["deploy"]["agreement_frames"],
    log:
        "logs/test_frames/test_frames.log",
    benchmark:
        "results/benchmarks/test_frames/test_frames.tsv"
    resources:
        **job_resources("export"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery test-frames --manifest {input.manifest:q} --out {output.frames:q} "
        "--frames {params.frames} > {log:q} 2>&1"


rule model_card:
    input:
        checkpoint="results/train/{version}/best.pt",
        manifest="results/manifest/manifest.h5",
        onnx=deployed("fp32"),
        int8=deployed("int8"),
        fused=deployed("fused"),
        calibration=CALIBRATION,
        evaluations=lambda w: wf.evaluation_targets([w.version]),
    output:
        card=deployed("card"),
    params:
        deploy_dir=lambda w, input: os.path.dirname(input.onnx),
        evaluation_dir="results/evaluation/{version}",
        parent=lambda w: wf.parent(w.version) or "",
    log:
        "logs/model_card/{version}.log",
    benchmark:
        "results/benchmarks/model_card/{version}.tsv"
    resources:
        **job_resources("deploy_small"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery model-card --version {wildcards.version} --parent '{params.parent}' "
        "--checkpoint {input.checkpoint:q} --manifest {input.manifest:q} "
        "--deploy-dir {params.deploy_dir} --calibration {input.calibration:q} "
        "--evaluation-dir {params.evaluation_dir} --out {output.card:q} > {log:q} 2>&1"


rule jetson_bundle:
    input:
        card=deployed("card"),
        onnx=deployed("fp32"),
        fp16=deployed("fp16"),
        int8=deployed("int8"),
        fused=deployed("fused"),
        calibration=CALIBRATION,
        test_frames=TEST_FRAMES,
    output:
        folder=directory("results/deploy/{version}/jetson_bundle"),
        tarball="results/deploy/{version}/jetson_bundle.tar.gz",
    params:
        deploy_dir=lambda w, input: os.path.dirname(input.card),
    log:
        "logs/jetson_bundle/{version}.log",
    benchmark:
        "results/benchmarks/jetson_bundle/{version}.tsv"
    resources:
        **job_resources("deploy_small"),
    conda:
        "../../envs/distillery.yaml"
    shell:
        "distillery jetson-bundle --deploy-dir {params.deploy_dir} --calibration {input.calibration:q} "
        "--test-frames {input.test_frames:q} --out-dir {output.folder:q} --tarball {output.tarball:q} > {log:q} 2>&1"


# TensorRT engines: a GPU job each. Exit status 2 and the reason on stderr where TensorRT or a GPU is
# missing (the log is echoed, so Snakemake's error shows it).
rule build_engine:
    input:
        onnx=engine_onnx,
    output:
        engine="results/deploy/{version}/engines/{precision}.plan",
        meta="results/deploy/{version}/engines/{precision}.json",
    log:
        "logs/build_engine/{version}/{precision}.log",
    benchmark:
        "results/benchmarks/build_engine/{version}/{precision}.tsv"
    retries: 0
    resources:
        **job_resources("deploy_gpu", gpu=1),
    conda:
        "../../envs/engines.yaml"
    shell:
        "distillery engine-build --onnx {input.onnx:q} --precision {wildcards.precision} "
        "--out {output.engine:q} --meta {output.meta:q} > {log:q} 2>&1 || {{ cat {log:q} >&2; exit 1; }}"


rule engine_latency:
    input:
        engine="results/deploy/{version}/engines/{precision}.plan",
        calibration=CALIBRATION,
    output:
        latency="results/deploy/{version}/engines/{precision}.latency.json",
    params:
        warmup=config["deploy"]["engine_warmup"],
        runs=config["deploy"]["engine_runs"],
        budget_ms=config["deploy"]["latency_budget_ms"],
    log:
        "logs/engine_latency/{version}/{precision}.log",
    benchmark:
        "results/benchmarks/engine_latency/{version}/{precision}.tsv"
    retries: 0
    resources:
        **job_resources("deploy_gpu", gpu=1),
    conda:
        "../../envs/engines.yaml"
    shell:
        "distillery engine-bench --engine {input.engine:q} --frames {input.calibration:q} "
        "--warmup {params.warmup} --runs {params.runs} --budget-ms {params.budget_ms} --out {output.latency:q} "
        "> {log:q} 2>&1 || {{ cat {log:q} >&2; exit 1; }}"


# FP16 and INT8 engines against the FP32 engine over deploy.agreement_frames test frames, batch 8 at a time;
# the FP16 engine fails its job past the FP16 bounds, INT8's figures are reported (its gate is quantize_int8).
rule engine_agreement:
    input:
        engine="results/deploy/{version}/engines/{precision}.plan",
        reference="results/deploy/{version}/engines/fp32.plan",
        frames=TEST_FRAMES,
    output:
        agreement="results/deploy/{version}/engines/{precision}.agreement.json",
    params:
        frames=config["deploy"]["agreement_frames"],
    wildcard_constraints:
        precision="fp16|int8",
    log:
        "logs/engine_agreement/{version}/{precision}.log",
    benchmark:
        "results/benchmarks/engine_agreement/{version}/{precision}.tsv"
    retries: 0
    resources:
        **job_resources("deploy_gpu", gpu=1),
    conda:
        "../../envs/engines.yaml"
    shell:
        "distillery engine-agreement --engine {input.engine:q} --reference {input.reference:q} "
        "--frames {input.frames:q} --count {params.frames} --precision {wildcards.precision} "
        "--out {output.agreement:q} > {log:q} 2>&1 || {{ cat {log:q} >&2; exit 1; }}"
