# Config validation, the one Workflow object (src/distillery/workflow/) and the thin input functions
# the rules use. Every decision lives in the package and is unit-tested there.
import inspect
import json
import os
import re
import sys
from pathlib import Path

from snakemake.common import overwrite_function_params
from snakemake.logging import logger

from distillery import workflow as checks
from distillery.deploy.engine import FILES as DEPLOY_FILES, ONNX_FILES
from distillery.ingest.shards import SHARD_PATTERN, shard_names as plan_shard_names
from distillery.workflow import jobs

# The untouched template (no datasets) stops here with one line: what to add, or `make demo`.
if checks.no_datasets_message(config):
    sys.exit(checks.no_datasets_message(config))

# Validated against the schema (`teachers: null` / `select: null` as absent sections), defaults filled; raises
# naming a wrong setting: dataset, lineage, version, teacher, evaluation set.
SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
wf = checks.load_validated(config, str(SCHEMA))
DATASETS = wf.datasets
WEIGHTS_CACHE = wf.weights_cache
HUB_WEIGHTS = wf.hub_weights()
EVALUATION_SETS = wf.evaluation_sets
CALIBRATION = f"results/deploy/{DEPLOY_FILES['calibration']}"  # INT8 calibration frames, shared by every version
TEST_FRAMES = f"results/deploy/{DEPLOY_FILES['test_frames']}"  # test frames engines are compared on, shared likewise
if wf.deploy_note():
    logger.warning(wf.deploy_note())

# Conda environments (envs/*.yaml) install this project from DISTILLERY_PROJECT, the workflow's folder.
os.environ.update(DISTILLERY_PROJECT=str(Path(workflow.basedir).resolve()))


wildcard_constraints:
    dataset="[A-Za-z0-9_.-]+",
    shard=SHARD_PATTERN,  # named by content (src/distillery/ingest/shards.py)
    version="[A-Za-z0-9_.-]+",
    precision="fp32|fp16|int8",


def as_json(value):
    """A structured setting as one JSON text (the shell line quotes it with :q)."""
    return json.dumps(value, sort_keys=True)


# Shards: known once the plan_shards checkpoint has run (the plan is parsed once per file version).
def shard_names(wildcards):
    return plan_shard_names(checkpoints.plan_shards.get().output.plan)


def shard_files(wildcards):
    return expand("results/shards/{shard}.h5", shard=shard_names(wildcards))


def sanity_shard_files(wildcards):
    """The shards a depth teacher's sanity gate checks (a few, spread over the plan)."""
    return expand("results/shards/{shard}.h5", shard=wf.sanity_shards(shard_names(wildcards)))


def quarantine_files(wildcards):
    """Every quarantine report: one per dataset index and one per packed shard."""
    return expand("results/index/{dataset}.quarantine.jsonl", dataset=list(DATASETS)) + expand(
        "results/shards/{shard}.quarantine.jsonl", shard=shard_names(wildcards)
    )


def teacher_layers(wildcards):
    """Layer files the merge maps into the manifest: every teacher in use, every shard."""
    return expand("results/teachers/{teacher}/{shard}.h5", teacher=wf.teacher_ids(), shard=shard_names(wildcards))


def teacher_failure_lists(wildcards):
    """The failure list beside every teacher layer: merge inputs, so a shard's failed share is gated."""
    return [layer[: -len(".h5")] + ".failures.jsonl" for layer in teacher_layers(wildcards)]


def per_job(func):
    """`func` (an input, params or resources function), its parameters inspected once: Snakemake reads a
    function's signature at every call (snakemake.common.get_function_params), unless it is given."""
    overwrite_function_params(func, inspect.signature(func).parameters)
    return func


# Per-job settings of the label jobs (teachers x shards: tens of thousands at fleet scale) are plain values or
# wildcard patterns wherever they can be: Snakemake evaluates a function once per job, with an overhead
# (signature inspection, wildcard objects) several times that of the function itself.

# A teacher job's selection JSON as a named input, when selection is on: a pattern of {shard}, no function.
SELECTION_INPUT = {"selection": wf.selection_file("{shard}")} if wf.selects() else {}

# The selection JSON a teacher job labels from ("" labels every frame, with no per-job function).
selection_param = per_job(lambda wildcards: wf.selection_file(wildcards.shard)) if wf.selects() else ""

# The metric depth and detect layers of a shard, which the segment stage's labeller reads (a segment teacher
# needs both roles: distillery.teachers.registry).
SEGMENT_LAYERS = {
    role: f"results/teachers/{wf.teacher_roles[slot]['id']}/{{shard}}.h5"
    for role, slot in (("depth", "metric_depth"), ("detect", "detect"))
    if slot in wf.teacher_roles
}


def per_teacher(task, method, wrap=None):
    """A teacher setting of a task's rules: a plain value when every teacher of the task has the same one (one
    teacher, or simulated teachers that all run on one CPU), else a lookup by {teacher} in a table computed
    once: Snakemake calls a function once per job, and label jobs are teachers x shards."""
    wrap = wrap or (lambda value: value)
    values = {tid: wrap(method(tid)) for tid in wf.teacher_ids(task)}
    first = next(iter(values.values()), None)
    if values and all(value == first for value in values.values()):
        return first
    return per_job(lambda wildcards: values[wildcards.teacher])


def teacher_weights(tid):
    """The weight files a teacher loads (ancient: a re-download does not re-label)."""
    return [ancient(str(f.path)) for f in wf.weight_files(tid)]


def hub_weights_pattern():
    """Wildcard constraint of download_weights: exactly the configured hub files."""
    prefix = f"{WEIGHTS_CACHE}/"
    return "|".join(re.escape(p[len(prefix) :]) for p in HUB_WEIGHTS) or "(?!)"


def hub_file(wildcards):
    return HUB_WEIGHTS[f"{WEIGHTS_CACHE}/{wildcards.weights_file}"]


# Training: the first input function call, at DAG build, runs the Slurm training guard.
def on_slurm():
    """Whether jobs go to Slurm (known once the DAG is built: input functions, not at parse time)."""
    plugin = workflow.executor_plugin
    return plugin is not None and plugin.name == "slurm"


def train_inputs(wildcards):
    """The manifest, the parent's best.pt of a fine-tune, else the encoder's ImageNet weights."""
    if (on_slurm() or profile().slurm_partition) and wf.slurm_training_message():
        sys.exit(wf.slurm_training_message())
    inputs = {"manifest": "results/manifest/manifest.h5"}
    parent = wf.parent(wildcards.version)
    if parent:
        inputs["parent"] = f"results/train/{parent}/best.pt"
    encoder = wf.encoder_file(wildcards.version)
    if encoder is not None:
        inputs["encoder_weights"] = ancient(str(encoder.path))  # a re-download does not retrain
    return inputs


def report_inputs(wildcards):
    """Every evaluation, best.pt and INT8 accuracy of the built versions, and the manifest."""
    versions = wf.built_versions()
    return {
        "evaluations": wf.evaluation_targets(versions),
        "checkpoints": expand("results/train/{version}/best.pt", version=versions),
        "quantization": expand("results/deploy/{version}/quantization.json", version=wf.deploy_versions()),
        "manifest": "results/manifest/manifest.h5",
    }


def deployed(name):
    """A version's deployed file (distillery.deploy.engine.FILES: fp32, fp16, int8, fused, card), {version} left
    as the wildcard."""
    return f"results/deploy/{{version}}/{DEPLOY_FILES[name]}"


def engine_onnx(wildcards):
    """The ONNX file an engine of a precision is built from."""
    return f"results/deploy/{wildcards.version}/{ONNX_FILES[wildcards.precision]}"


# Job resources (src/distillery/workflow/jobs.py): the profile's partitions and GPU model (its
# default-resources, known when the Snakefile is read), the executor (known once the DAG is built).
def profile_default(name):
    """A default-resources value of the profile in use (None when it sets none)."""
    res = workflow.resource_settings.default_resources
    raw = getattr(res.get(name), "raw", res.get(name)) if res is not None else None
    return str(raw).strip("'\"") or None if raw is not None else None


PROFILE = {name: profile_default(name) for name in ("slurm_partition", "gpu_partition", "gpu_type")}


def profile():
    """The profile in use, and whether the executor is Slurm."""
    return jobs.Profile(on_slurm(), **PROFILE)


def job_resources(size, gpu=0, cpus=None):
    """A rule's resources: `size` is a jobs.JOB_SIZES row or a function of the wildcards naming one, `gpu`
    a count or such a function. `cpus` (likewise) is sent to Slurm as cpus_per_task: Snakemake caps threads
    at the submitting machine's cores, which must not shrink a job's request on a compute node. Under a
    profile naming partitions, evaluating `slurm_partition` checks that the partition can hold the job;
    without one, the partition fields are left out (each function costs every job of the DAG a call)."""
    at = lambda value, wildcards: value(wildcards) if callable(value) else value
    gpus = per_job(lambda wildcards: int(gpu(wildcards))) if callable(gpu) else int(gpu)

    @per_job
    def mem_mb(wildcards, attempt):
        cap = jobs.node_max_mem(profile(), at(gpus, wildcards))
        return jobs.mem_mb(at(size, wildcards), attempt, cap)

    @per_job
    def slurm_partition(wildcards, attempt, threads, rulename):
        cores = max(threads, int(at(cpus, wildcards))) if cpus is not None else threads
        jobs.check_fit(rulename, profile(), at(size, wildcards), at(gpus, wildcards), cores, attempt)
        return profile().partition(at(gpus, wildcards))

    resources = {
        "mem_mb": mem_mb,
        "runtime": per_job(lambda wildcards, attempt: jobs.runtime(at(size, wildcards), attempt)),
        "gpu": gpus,
    }
    if PROFILE["slurm_partition"] or PROFILE["gpu_partition"]:
        model = per_job(lambda wildcards: profile().gpu_model(at(gpus, wildcards)))
        resources.update(gpu_model=model if callable(gpus) else model(None), slurm_partition=slurm_partition)
    if cpus is not None:
        resources["cpus_per_task"] = per_job(lambda w: int(cpus(w))) if callable(cpus) else int(cpus)
    return resources


onstart:
    # On Slurm, every pending job's size is checked before anything is submitted, teacher jobs included
    # (they wait behind the plan_shards checkpoint, but their size depends on the teacher alone).
    if on_slurm():
        for job in workflow.dag.needrun_jobs():
            job.resources
        for rulename, size, gpus, cpus in jobs.teacher_jobs(wf):
            jobs.check_fit(rulename, profile(), size, gpus, cpus)
