# Config validation and every input/param function the rules use.
import json
import os
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

from snakemake.logging import logger
from snakemake.utils import validate

from distillery import workflow as checks

# The untouched template (no datasets) stops here with one line: what to add, or `make demo`.
if checks.no_datasets_message(config):
    sys.exit(checks.no_datasets_message(config))

# `teachers: null` means no teachers, as an absent section does (validation fills defaults only into objects).
if "teachers" in config and config["teachers"] is None:
    del config["teachers"]
validate(config, schema="../schemas/config.schema.yaml")

DATASETS = {d["name"]: d for d in config["datasets"]}
if len(DATASETS) != len(config["datasets"]):
    raise ValueError("config: dataset names must be unique")
SYNTH_DATASETS = [name for name, d in DATASETS.items() if "synth" in d]


wildcard_constraints:
    dataset="[A-Za-z0-9_.-]+",
    shard=r"shard-[0-9a-f]{16}",  # named by content (src/distillery/ingest/shards.py)


def dataset_folder(wildcards):
    """The folder a dataset is indexed from: generated worlds live under results/synth."""
    entry = DATASETS[wildcards.dataset]
    if "synth" in entry:
        return f"results/synth/{wildcards.dataset}"
    if "bag" in entry:
        return f"results/bags/{wildcards.dataset}"
    return entry["path"]


def synth_params(wildcards):
    """The synth settings of a dataset entry, as the CLI options of `distillery synth`."""
    s = DATASETS[wildcards.dataset]["synth"]
    ingest = config["ingest"]
    return (
        f"--family {s['family']} --seed {s['seed']} --sequences {s['sequences']} "
        f"--frames {s['frames']} --height {s.get('height', ingest['height'])} "
        f"--width {s.get('width', ingest['width'])}"
    )


def bag_path(wildcards):
    """The bag a `bag:` dataset is extracted from."""
    return DATASETS[wildcards.dataset]["bag"]["path"]


def bag_args(wildcards):
    """A `bag:` entry's settings as the CLI options of `distillery extract-bag` (unset ones omitted)."""
    b = DATASETS[wildcards.dataset]["bag"]
    args = []
    for key in ("color_topic", "depth_topic", "color_info_topic", "depth_info_topic", "confidence_topic",
                "confidence_scale", "trusted_floor", "tolerance", "sequence_seconds", "depth_unit", "tf_topic"):
        if b.get(key) is not None:
            args += [f"--{key.replace('_', '-')}", shlex.quote(str(b[key]))]
    if b.get("confidence_range") is not None:
        args += ["--confidence-range"] + [shlex.quote(str(v)) for v in b["confidence_range"]]
    if b.get("extrinsic") is not None:
        args += ["--extrinsic", shlex.quote(json.dumps(b["extrinsic"]))]
    args += [f"--{flag}" for flag in ("registered", "undistort", "salvage") if b.get(flag)]
    return " ".join(args)


def reader_args(wildcards):
    """Per-dataset reader options (layout, depth scale, intrinsics) as CLI options."""
    entry = DATASETS[wildcards.dataset]
    args = ["--layout", "native" if "bag" in entry else entry.get("layout", "auto")]
    if entry.get("depth_scale") is not None:
        args += ["--depth-scale", str(entry["depth_scale"])]
    if entry.get("intrinsics") is not None:
        args += ["--intrinsics", shlex.quote(json.dumps(entry["intrinsics"]))]
    args += ["--max-pair-dt", str(config["ingest"]["max_pair_dt"])]
    return " ".join(args)


def split_overrides():
    """Datasets whose config entry puts every sequence into one split."""
    return {name: d["split"] for name, d in DATASETS.items() if d.get("split")}


def pack_args():
    """The storage settings shared by pack_shard, as CLI options."""
    ingest = config["ingest"]
    return (
        f"--height {ingest['height']} --width {ingest['width']} --fit {ingest['fit']} "
        f"--max-depth {ingest['max_depth_m']} --trusted-floor {ingest['trusted_floor']} "
        f"--compression-level {config['manifest']['compression_level']}"
    )


def shard_names(wildcards):
    """Shard names, known once the plan_shards checkpoint has run."""
    plan = checkpoints.plan_shards.get().output.plan
    return json.loads(Path(plan, "shards.json").read_text())["shards"]


def shard_files(wildcards):
    return expand("results/shards/{shard}.h5", shard=shard_names(wildcards))


def quarantine_files(wildcards):
    """Every quarantine report: one per dataset index and one per packed shard."""
    return expand(
        "results/index/{dataset}.quarantine.jsonl", dataset=list(DATASETS)
    ) + expand(
        "results/shards/{shard}.quarantine.jsonl", shard=shard_names(wildcards)
    )


# The lineage (docs/lineage.md): roles resolved, parents and names checked at DAG build, so a wrong
# parent, role or cycle stops `snakemake -n` naming the version and the value.
from distillery.student import lineage
from distillery.student import versions as training_versions

TRAINING = config.get("training") or {}
ROLES = (config.get("lineage") or {}).get("roles") or {}
VERSIONS = lineage.check_lineage(TRAINING, ROLES, list(DATASETS))  # parents first
# Each version's own settings (docs/training.md): no init_from, fine-tunes state freeze_encoder_epochs.
training_versions.check_versions(TRAINING, list(DATASETS))


def built_versions():
    """The versions the default target builds: training.build, or every version when it is null."""
    build = TRAINING.get("build")
    return VERSIONS if build is None else [v for v in VERSIONS if v in build]


def _on_slurm():
    """Whether jobs go to Slurm (known once the DAG is built: input functions, not at parse time)."""
    plugin = workflow.executor_plugin
    return plugin is not None and plugin.name == "slurm"


def check_slurm_training():
    """Under Slurm, a CPU training or a demo-sized one on real data stops the DAG build naming the version
    and the setting, unless training.allow_cpu_on_slurm / allow_demo_size_on_slurm says it is meant.
    A dry run (`-n --profile slurm`) runs no executor: a profile naming a Slurm partition counts."""
    slurm = _on_slurm() or _profile_default("slurm_partition") is not None
    message = slurm and checks.slurm_training_message(TRAINING, ROLES, DATASETS, built_versions())
    if message:
        sys.exit(message)


def training_targets():
    """best.pt of every built version (none without a training section)."""
    return expand("results/train/{version}/best.pt", version=built_versions())


def train_version(wildcards):
    """The settings of one training version: training.defaults, then the version's own keys."""
    return lineage.version_entry(TRAINING, wildcards.version)


def train_inputs(wildcards):
    """The manifest a version trains on, its parent's best.pt when it fine-tunes one, else its encoder's
    ImageNet weights (download_weights). The first call, at DAG build, runs the Slurm training check."""
    check_slurm_training()
    inputs = {"manifest": "results/manifest/manifest.h5"}
    parent = train_version(wildcards).get("parent")
    if parent:
        inputs["parent"] = f"results/train/{parent}/best.pt"
    encoder = encoder_weight_file(wildcards.version)
    if encoder is not None:
        inputs["encoder_weights"] = ancient(str(encoder.path))  # a re-download does not retrain
    return inputs


def train_settings(wildcards):
    """A version's `distillery train` settings as one shell-quoted JSON object: workflow keys (parent,
    gpus) dropped, roles in `datasets` / `val_datasets` resolved to dataset names."""
    settings = lineage.resolved_settings(train_version(wildcards), ROLES, list(DATASETS), wildcards.version)
    if encoder_weight_file(wildcards.version) is not None:
        settings["weights_cache"] = WEIGHTS_CACHE  # where the job reads the ImageNet weights
    return shlex.quote(json.dumps(settings, sort_keys=True))


def train_gpus(wildcards):
    """GPUs a version's job asks for (the generic `gpu` resource); 0 trains on CPU."""
    return int(train_version(wildcards).get("gpus", 0))


def train_launcher(wildcards):
    """`distillery`, or torchrun with one DDP process per GPU when a version asks for several."""
    gpus = train_gpus(wildcards)
    if gpus > 1:
        return f"torchrun --standalone --nproc_per_node {gpus} -m distillery.cli"
    return "distillery"


def init_from_arg(wildcards):
    """`--init-from <parent best.pt>` for a fine-tune, nothing for a run from scratch."""
    parent = train_version(wildcards).get("parent")
    return f"--init-from results/train/{parent}/best.pt" if parent else ""


# Teachers (docs/teachers.md). Checked at DAG build: backends fit their tasks and settings their
# backends, each manifest slot has at most one teacher, and a weights file given as a local path exists
# (hub weights are download_weights outputs). Every teacher job is keyed by the teacher id; its layers are
# results/teachers/<id>/<shard>.h5, so changing one teacher's settings re-labels that teacher's layers
# (and the labels of the segment stage that reads them) and nothing else.
import re

from distillery.teachers import registry as teacher_registry
from distillery.teachers import weights as teacher_weights

TEACHERS = config.get("teachers") or {}
WEIGHTS_CACHE = TEACHERS.get("weights_cache", "weights")
TEACHER_ROLES = teacher_registry.check_config(TEACHERS) if TEACHERS else {}  # slot -> teacher entry
TEACHER_BY_ID = {entry["id"]: entry for entry in TEACHER_ROLES.values()}
for _entry in TEACHER_BY_ID.values():
    teacher_weights.check_present(
        _entry["backend"], _entry.get("weights"), WEIGHTS_CACHE, include_hub=False
    )


def teacher_ids(task):
    """Ids of the teachers in use for a task (depth: metric and relative)."""
    return [tid for tid, entry in TEACHER_BY_ID.items() if entry["task"] == task]


def teacher_id_pattern(task=None):
    """Wildcard constraint of a task's rules (of every teacher's without a task): exactly the ids."""
    ids = teacher_ids(task) if task else list(TEACHER_BY_ID)
    return "|".join(re.escape(tid) for tid in ids) or "(?!)"


def _weight_files(tid):
    entry = TEACHER_BY_ID[tid]
    return teacher_weights.weight_files(entry["backend"], entry.get("weights"), WEIGHTS_CACHE)


HUB_WEIGHTS = {str(f.path): f for tid in TEACHER_BY_ID for f in _weight_files(tid) if f.repo}


def encoder_weight_file(version):
    """The ImageNet weights a version's encoder starts from (None: a fine-tune, random or a file)."""
    return checks.encoder_file(train_version(SimpleNamespace(version=version)), WEIGHTS_CACHE)


# Student encoders' ImageNet weights are hub files like teacher weights: download_weights fetches them.
HUB_WEIGHTS.update({str(f.path): f for f in map(encoder_weight_file, VERSIONS) if f is not None})


def teacher_weights_input(wildcards):
    """The weight files a teacher loads (ancient: a re-download does not re-label)."""
    return [ancient(str(f.path)) for f in _weight_files(wildcards.teacher)]


def hub_weights_pattern():
    """Wildcard constraint of download_weights: exactly the configured hub files."""
    prefix = f"{WEIGHTS_CACHE}/"
    names = [re.escape(p[len(prefix) :]) for p in HUB_WEIGHTS]
    return "|".join(names) if names else "(?!)"


def download_args(wildcards):
    f = HUB_WEIGHTS[f"{WEIGHTS_CACHE}/{wildcards.weights_file}"]
    return f"--repo {f.repo} --file {shlex.quote(f.filename)} --cache {shlex.quote(WEIGHTS_CACHE)}"


def _teacher_real(tid):
    return not teacher_registry.backend_info(TEACHER_BY_ID[tid]["backend"]).simulated


def teacher_spec(wildcards):
    """A teacher's config entry as one shell-quoted JSON object (`distillery teach --teacher`)."""
    entry = {k: v for k, v in TEACHER_BY_ID[wildcards.teacher].items() if k != "batch_size"}
    return shlex.quote(json.dumps(entry, sort_keys=True))


def teacher_runtime_args(wildcards):
    """Device, precision and weights cache; simulated teachers always run on the CPU."""
    device = TEACHERS["device"] if _teacher_real(wildcards.teacher) else "cpu"
    return (
        f"--device {device} --precision {TEACHERS['precision']} "
        f"--weights-cache {shlex.quote(WEIGHTS_CACHE)}"
    )


def teacher_batch_size(wildcards):
    return TEACHER_BY_ID[wildcards.teacher].get("batch_size", TEACHERS["batch_size"])


def teacher_gpus(wildcards):
    """gpu=1 for a real backend on CUDA, 0 otherwise."""
    return int(_teacher_real(wildcards.teacher) and TEACHERS["device"] == "cuda")


def teacher_threads(wildcards):
    """Threads of a teacher job: the main process plus DataLoader workers that decode frames while
    the GPU works; simulated teachers are cheap enough for the main process alone."""
    return 4 if _teacher_real(wildcards.teacher) else 1


def teacher_labeller_args():
    return shlex.quote(json.dumps(TEACHERS.get("labeller", {}), sort_keys=True))


def teacher_sanity_args():
    return shlex.quote(json.dumps(TEACHERS.get("sanity", {}), sort_keys=True))


def teacher_settings(wildcards):
    """What a teacher's labels depend on, as one shell-quoted JSON object: its entry (for real backends also
    the precision, for the segment teacher also the labeller). The teacher_settings rule writes it to
    results/teachers/<id>/settings.json, which every job of the teacher reads: a change re-labels exactly
    that teacher's layers (a batch size, device or new shard changes nothing there)."""
    tid = wildcards.teacher
    entry = TEACHER_BY_ID[tid]
    content = {"teacher": {k: v for k, v in entry.items() if k != "batch_size"}}
    if _teacher_real(tid):
        content["precision"] = TEACHERS["precision"]
    if entry["task"] == "segment":
        content["labeller"] = TEACHERS.get("labeller", {})
    return shlex.quote(json.dumps(content, sort_keys=True))


def segment_layers(wildcards):
    """The metric depth and detect layers of a shard, which the segment stage's labeller reads."""
    return {
        "depth": f"results/teachers/{TEACHER_ROLES['metric_depth']['id']}/{wildcards.shard}.h5",
        "detect": f"results/teachers/{TEACHER_ROLES['detect']['id']}/{wildcards.shard}.h5",
    }


def teacher_layers(wildcards):
    """Layer files the merge copies into the manifest: every teacher in use, every shard (none without teachers)."""
    return expand(
        "results/teachers/{teacher}/{shard}.h5",
        teacher=list(TEACHER_BY_ID),
        shard=shard_names(wildcards),
    )


def check_depth_teachers():
    """A built version that learns relative depth needs a relative teacher (docs/training.md, depth_teacher);
    a metric one without a metric teacher learns from each frame's ToF, as `depth_target: hybrid` says."""
    training = config.get("training") or {}
    versions, defaults = training.get("versions") or {}, training.get("defaults") or {}
    build = training.get("build")
    pending, seen = list(versions) if build is None else list(build), set()
    while pending:
        name = pending.pop()
        if name in seen or name not in versions:
            continue
        seen.add(name)
        entry = {**defaults, **versions[name]}
        pending += [entry["parent"]] if entry.get("parent") else []
        if entry.get("depth_teacher") == "relative" and "relative_depth" not in TEACHER_ROLES:
            raise ValueError(
                f"config: training.versions.{name}.depth_teacher is 'relative', but no relative depth teacher "
                "is configured (teachers.models, e.g. {id: da2, backend: da2, weights: ...}); add one, "
                "choose depth_teacher: metric or tof, or leave the version out of training.build"
            )


check_depth_teachers()


# Evaluation (docs/evaluation.md). Sets are dataset names (or lineage roles naming one); checked at
# DAG build so a typo stops `snakemake -n` naming the value.
EVALUATION = config["evaluation"]


def evaluation_sets():
    """The datasets each version is evaluated on: evaluation.sets, else every dataset with test frames
    (datasets whose config entry forces them into train or val have none)."""
    roles = (config.get("lineage") or {}).get("roles") or {}
    names = EVALUATION["sets"]
    if names is None:
        return [n for n, d in DATASETS.items() if d.get("split") in (None, "test")]
    sets = []
    for name in names:
        dataset = roles.get(name, name)
        if dataset not in DATASETS:
            raise ValueError(
                f"config: evaluation.sets names {name!r}, which is neither a dataset "
                f"({sorted(DATASETS)}) nor a lineage role ({sorted(roles)})"
            )
        sets.append(dataset)
    return list(dict.fromkeys(sets))


EVALUATION_SETS = evaluation_sets()


def evaluation_targets(versions):
    """The evaluation JSON of every version x evaluation set."""
    return expand(
        "results/evaluation/{version}/{dataset}.json",
        version=versions,
        dataset=EVALUATION_SETS,
    )


def evaluation_args():
    """Bootstrap, batch and device settings of `distillery evaluate`, as CLI options."""
    boot = EVALUATION["bootstrap"]
    return (
        f"--bootstrap {boot['resamples']} --seed {boot['seed']} "
        f"--batch-size {EVALUATION['batch_size']} --device {EVALUATION['device']}"
    )


def evaluation_gpus():
    return int(EVALUATION["device"] == "cuda")


# Report (docs/lineage.md): one page over every evaluation of every built version.
def report_targets():
    """The report, when any version is built (the default target asks for it)."""
    return ["results/report/lineage.html"] if built_versions() else []


def report_inputs(wildcards):
    """Every evaluation JSON, best.pt and INT8 accuracy (quantization.json) of the built versions, and
    the manifest: the report waits for quantization, so its INT8-vs-FP32 table is never left out."""
    versions = built_versions()
    return {
        "evaluations": evaluation_targets(versions),
        "checkpoints": expand("results/train/{version}/best.pt", version=versions),
        "quantization": expand(
            "results/deploy/{version}/quantization.json",
            version=versions if deployable() else [],
        ),
        "manifest": "results/manifest/manifest.h5",
    }


def report_lineage():
    """The built versions' entries (defaults applied, roles resolved) as one shell-quoted JSON object."""
    summary = lineage.lineage_summary(TRAINING, ROLES, list(DATASETS))
    built = built_versions()
    return shlex.quote(json.dumps({v: summary[v] for v in built}, sort_keys=True))


def report_checkpoint_args():
    """`--checkpoint VERSION=results/train/VERSION/best.pt` for every built version."""
    return " ".join(
        f"--checkpoint {v}=results/train/{v}/best.pt" for v in built_versions()
    )


# Job resources: what each job asks a cluster for, from this one table, sized by what the job really
# runs (a simulated teacher is numpy on one CPU, a real one a network on a GPU). Memory (MB) and runtime
# (minutes) are those of the first attempt; each retry multiplies both (a job killed for memory comes back
# with more), capped on Slurm at the partition's largest node. CPUs are the rules' threads, GPUs the
# generic `gpu`. Partitions and the GPU model come from the profile's default-resources (profiles/slurm):
# jobs with GPUs go to `gpu_partition`, the rest to `slurm_partition`, and zero-GPU jobs carry no GPU
# field. On Slurm, a job no node of its partition can hold stops the run before it is submitted
# (src/distillery/cluster.py), naming the rule, the request and the partition's largest node.
from distillery import cluster as slurm_fit

JOB_SIZES = {
    "synthesize_world": (2000, 60),
    "extract_bag": (4000, 120),
    "index_dataset": (2000, 30),
    "plan_shards": (2000, 30),
    "pack_shard": (2000, 60),
    "merge_manifest": (4000, 120),
    "select_frames": (2000, 2),  # frame selection of one shard (and gathering every shard's)
    "teacher_settings": (500, 5),  # writes a teacher's settings file (the re-label trigger)
    "teacher_sim": (2000, 30),  # simulated teacher (any task) and its sanity gate
    "teacher_real": (32000, 240),  # a real network: weights, activations, DataLoader workers
    "train_cpu": (8000, 720),
    "train_gpu": (16000, 720),  # the student and its DataLoader workers beside a GPU
    "evaluate_version": (4000, 60),
    "report": (4000, 30),
    "export": (4000, 30),  # ONNX export, INT8 calibration and quantisation, fused graph
    "deploy_small": (1000, 10),  # model card, bundle
    "deploy_gpu": (8000, 60),  # TensorRT engine build and latency
}


def _profile_default(name):
    """A default-resources value of the profile in use (None when it sets none)."""
    res = workflow.resource_settings.default_resources
    value = res.get(name) if res is not None else None
    raw = getattr(value, "raw", value)
    return str(raw).strip("'\"") or None if raw is not None else None


def _resolve(value, wildcards):
    return value(wildcards) if callable(value) else value


def _partition_for(gpus):
    """The profile's partition of a job with this many GPUs (None off Slurm profiles)."""
    return (gpus and _profile_default("gpu_partition")) or _profile_default("slurm_partition")


def job_resources(size, gpu=0, cpus=None):
    """A rule's resources: `size` names a JOB_SIZES row (or is a function of the wildcards that does),
    `gpu` is the GPU count (or a function of the wildcards). `cpus` (a count or a function of the
    wildcards) is sent to Slurm as cpus_per_task: Snakemake caps a rule's threads at the cores of the
    machine it runs on (a login node's few), which must not shrink a job's request on a compute node."""

    def gpus(wildcards):
        return int(_resolve(gpu, wildcards))

    def partition(wildcards):
        return _partition_for(gpus(wildcards))

    def mem_mb(wildcards, attempt):
        mem = JOB_SIZES[_resolve(size, wildcards)][0]
        if attempt > 1 and _on_slurm() and partition(wildcards):
            node_max = max(n.mem_mb for n in slurm_fit.partition_nodes(partition(wildcards)))
            return max(mem, min(mem * attempt, node_max))
        return mem * attempt

    def runtime(wildcards, attempt):
        return JOB_SIZES[_resolve(size, wildcards)][1] * attempt

    def gpu_model(wildcards):
        return _profile_default("gpu_type") if gpus(wildcards) else None

    def cpus_per_task(wildcards):
        return int(_resolve(cpus, wildcards))

    def slurm_partition(wildcards, attempt, threads, rulename):
        name = partition(wildcards)
        if name and _on_slurm():
            cores = max(threads, cpus_per_task(wildcards)) if cpus is not None else threads
            request = slurm_fit.Request(cores, mem_mb(wildcards, attempt), gpus(wildcards), gpu_model(wildcards))
            slurm_fit.check_request(rulename, request, name)
        return name

    resources = {"mem_mb": mem_mb, "runtime": runtime, "gpu": gpus, "gpu_model": gpu_model,
                 "slurm_partition": slurm_partition}
    return resources if cpus is None else {**resources, "cpus_per_task": cpus_per_task}


def check_job_sizes():
    """On Slurm, evaluate every pending job's resources before anything is submitted, so that a job no
    node can hold stops the run at once rather than when it becomes ready. The teacher jobs wait behind
    the plan_shards checkpoint, but their size depends on the teacher alone: they are checked too."""
    if not _on_slurm():
        return
    for job in workflow.dag.needrun_jobs():
        job.resources
    for tid, entry in TEACHER_BY_ID.items():
        wildcards = SimpleNamespace(teacher=tid)
        gpus = teacher_gpus(wildcards)
        partition = _partition_for(gpus)
        if not partition:
            continue
        mem, model = JOB_SIZES[teacher_size(wildcards)][0], _profile_default("gpu_type") if gpus else None
        rules = {f"teacher_{entry['task']}": teacher_threads(wildcards)}
        if entry["task"] == "depth":
            rules = {"teacher_sanity": 1, **rules}  # the gate runs first, on one CPU
        for rulename, threads in rules.items():
            slurm_fit.check_request(rulename, slurm_fit.Request(threads, mem, gpus, model), partition)


onstart:
    check_job_sizes()


def teacher_failure_lists(wildcards):
    """The failure list beside every teacher layer: merge inputs, so a shard's failed share is gated."""
    return [layer[: -len(".h5")] + ".failures.jsonl" for layer in teacher_layers(wildcards)]


def max_failed_share():
    """teachers.max_failed_share (no limit without teachers)."""
    return (config.get("teachers") or {}).get("max_failed_share", 1.0)


def teacher_size(wildcards):
    """sim or real row of JOB_SIZES, by the teacher's backend."""
    return "teacher_real" if _teacher_real(wildcards.teacher) else "teacher_sim"


def train_size(wildcards):
    return "train_gpu" if train_gpus(wildcards) else "train_cpu"


def train_threads(wildcards):
    """CPUs of a training job: per process (one per GPU, or one on the CPU) the trainer and its DataLoader
    workers, which decode and augment frames while it steps."""
    from distillery.student.config import TrainConfig

    workers = train_version(wildcards).get("num_workers", TrainConfig.num_workers)
    return (int(workers) + 1) * max(train_gpus(wildcards), 1)


# Conda environments (envs/*.yaml, `--sdm conda`) install this project from DISTILLERY_PROJECT, the
# workflow's own folder: Snakemake copies env files into .snakemake/conda/, so they cannot name it
# relative to themselves.
os.environ.update(DISTILLERY_PROJECT=str(Path(workflow.basedir).resolve()))


# Deployment (workflow/rules/deploy.smk, README "Deployment").
DEPLOY_DIR = "results/deploy/{version}"
CALIBRATION = "results/deploy/calibration.npz"  # INT8 calibration frames, shared by every version
TEST_FRAMES = "results/deploy/test_frames.npz"  # test frames engines are compared on, shared likewise


def deploy_setting(key):
    """A deploy setting; validation has filled every default from the schema (config.schema.yaml)."""
    return config["deploy"][key]


def deploy_versions():
    """The versions whose deployment the default target asks for: every built version."""
    return built_versions()


DEPLOY_SIZE = (240, 320)  # the deployed graph's input (distillery.deploy.spec): H x W


def deployable():
    """Whether the manifest's frames fit the deployed graph (ingest.height/width = 240/320). A workflow
    at another size trains, evaluates and reports, and says once why it deploys nothing."""
    size = (config["ingest"]["height"], config["ingest"]["width"])
    if size != DEPLOY_SIZE and not globals().get("_DEPLOY_NOTE_SHOWN"):
        globals()["_DEPLOY_NOTE_SHOWN"] = True
        logger.warning(
            f"deployment skipped: frames are stored at {size[0]}x{size[1]}, the deployed graph takes "
            f"{DEPLOY_SIZE[0]}x{DEPLOY_SIZE[1]} (set ingest.height/width to deploy)"
        )
    return size == DEPLOY_SIZE


def deploy_targets():
    """What the default target asks of deployment: every built version's bundle (which needs every export
    stage), and its engines' latency when deploy.engines is true."""
    if not deployable():
        return []
    versions = deploy_versions()
    targets = expand("results/deploy/{version}/jetson_bundle.tar.gz", version=versions)
    if deploy_setting("engines"):
        precisions = deploy_setting("precisions")
        targets += expand(
            "results/deploy/{version}/engines/{precision}.latency.json",
            version=versions,
            precision=precisions,
        )
        if "fp32" in precisions:  # agreement needs the FP32 engine as its reference
            targets += expand(
                "results/deploy/{version}/engines/{precision}.agreement.json",
                version=versions,
                precision=[p for p in precisions if p != "fp32"],
            )
    return targets


def deploy_dir(wildcards):
    """The deployment folder of a version (its files are the rules' named inputs and outputs)."""
    return DEPLOY_DIR.format(version=wildcards.version)


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


# Frame selection (select.smk, docs/selection.md): on when the config has `select:`.
def selection_enabled():
    return bool(config.get("select"))


def selection_input(wildcards):
    """A teacher job's selection JSON as a named input, when selection is on."""
    return {"selection": f"results/select/{wildcards.shard}.json"} if selection_enabled() else {}


def selection_arg(wildcards):
    """`--selection FILE` for the teacher CLIs, or nothing."""
    return f"--selection results/select/{wildcards.shard}.json" if selection_enabled() else ""


def select_args():
    """The selection settings as `distillery select` options (validated by the schema)."""
    s = config.get("select") or {}
    how = f"--share {s['share']}" if s.get("share") is not None else f"--threshold {s.get('threshold')}"
    return (
        f"{how} --translation-m {s.get('translation_m', 0.25)} --rotation-deg {s.get('rotation_deg', 10.0)} "
        f"--depth-weight {s.get('depth_weight', 1.0)}"
    )


def selection_targets():
    return ["results/manifest/selection.jsonl"] if selection_enabled() else []
