"""What a validated config asks the workflow to build, as one object (`load(config)`).

Snakemake calls input functions thousands of times while it builds the DAG;
each answer here is a lookup or a short computation over the config, done
once per `Workflow`, so the rules stay wiring and the decisions stay testable:
datasets and their folders, the lineage (versions parents first, the built
ones, each version's `distillery train` settings), evaluation sets, the
teachers in use and what their labels depend on, and whether the frames fit
the deployed graph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from distillery.deploy import spec
from distillery.select.novelty import SelectSettings
from distillery.workflow import lineage
from distillery.workflow import versions as training_versions
from distillery.teachers import registry as teacher_registry
from distillery.teachers import weights as teacher_weights
from distillery.teachers.backends import backend_info
from distillery.teachers.settings import WEIGHTS_CACHE
from distillery.workflow import checks, defaults

DEPLOY_SIZE = (spec.HEIGHT, spec.WIDTH)  # the deployed graph's input: H x W


def load(config: dict) -> "Workflow":
    """The Workflow of a schema-validated config, whose left-out settings it first fills in place from the
    code's defaults (distillery.workflow.defaults); raises ValueError naming a wrong setting."""
    return Workflow(defaults.fill(config))


# Sections whose `null` means the same as leaving them out (no teachers; every frame labelled): a null does
# not pass the schema's checks of the section, so it is dropped before validation.
NULL_MEANS_ABSENT = ("teachers", "select")


def load_validated(config: dict, schema: str) -> "Workflow":
    """The Workflow of the config Snakemake read, as the Snakefile builds it: null sections dropped, the
    config validated against `schema` (which also creates its empty sections), then `load`. In place."""
    from snakemake.utils import validate

    for section in NULL_MEANS_ABSENT:
        if section in config and config[section] is None:
            del config[section]
    validate(config, schema=schema)
    return load(config)


@dataclass
class Workflow:
    """Every decision the rules need, computed from a schema-validated config at DAG build."""

    config: dict
    datasets: dict = field(init=False)
    roles: dict = field(init=False)
    training: dict = field(init=False)
    versions: list = field(init=False)
    teachers: dict = field(init=False)
    teacher_roles: dict = field(init=False)
    teacher_by_id: dict = field(init=False)
    weights_cache: str = field(init=False)
    evaluation_sets: list = field(init=False)

    def __post_init__(self):
        cfg = self.config
        self.datasets = {d["name"]: d for d in cfg["datasets"]}
        if len(self.datasets) != len(cfg["datasets"]):
            raise ValueError("config: dataset names must be unique")
        self.training = cfg.get("training") or {}
        self.roles = (cfg.get("lineage") or {}).get("roles") or {}
        self.versions = lineage.check_lineage(self.training, self.roles, list(self.datasets))  # parents first
        training_versions.check_versions(self.training, list(self.datasets))
        self.teachers = cfg.get("teachers") or {}
        self.weights_cache = self.teachers.get("weights_cache", WEIGHTS_CACHE)  # encoders use it without teachers
        self.teacher_roles = teacher_registry.check_config(self.teachers) if self.teachers else {}
        self.teacher_by_id = {entry["id"]: entry for entry in self.teacher_roles.values()}
        for entry in self.teacher_by_id.values():
            teacher_weights.check_present(entry["backend"], entry.get("weights"), self.weights_cache,
                                          include_hub=False)
        self.check_depth_teachers()
        self.evaluation_sets = self._evaluation_sets()
        self.check_deploy_versions()

    # Datasets -------------------------------------------------------------------------------------------
    @property
    def synth_datasets(self) -> list[str]:
        return [name for name, d in self.datasets.items() if "synth" in d]

    def dataset_folder(self, name: str) -> str:
        """The folder a dataset is indexed from: generated worlds and extracted bags live under results/."""
        entry = self.datasets[name]
        if "synth" in entry:
            return f"results/synth/{name}"
        if "bag" in entry:
            return f"results/bags/{name}"
        return entry["path"]

    def synth_settings(self, name: str) -> dict:
        """`distillery synth` settings of a generated dataset (its frame size defaults to ingest's)."""
        s, ingest = self.datasets[name]["synth"], self.config["ingest"]
        return {"family": s["family"], "seed": s["seed"], "sequences": s["sequences"], "frames": s["frames"],
                "height": s.get("height", ingest["height"]), "width": s.get("width", ingest["width"])}

    def reader_settings(self, name: str) -> dict:
        """`distillery index` reader settings: layout (extracted bags are native), depth scale, intrinsics."""
        entry = self.datasets[name]
        return {"layout": "native" if "bag" in entry else entry["layout"],
                "depth_scale": entry.get("depth_scale"), "intrinsics": entry.get("intrinsics"),
                "max_pair_dt": self.config["ingest"]["max_pair_dt"]}

    def split_overrides(self) -> dict[str, str]:
        """Datasets whose config entry puts every sequence into one split."""
        return {name: d["split"] for name, d in self.datasets.items() if d.get("split")}

    # Lineage ----------------------------------------------------------------------------------------------
    def built_versions(self) -> list[str]:
        """The versions the default target builds: training.build, or every version when it is null."""
        build = self.training.get("build")
        return list(self.versions) if build is None else [v for v in self.versions if v in build]

    def version_entry(self, version: str) -> dict:
        """training.defaults, then the version's own keys."""
        return lineage.version_entry(self.training, version)

    def parent(self, version: str) -> str | None:
        return self.version_entry(version).get("parent")

    def train_gpus(self, version: str) -> int:
        """GPUs a version's job asks for; 0 trains on CPU."""
        return int(self.version_entry(version).get("gpus", 0))

    def train_threads(self, version: str) -> int:
        """Per process (one per GPU, or one on the CPU) the trainer and its DataLoader workers."""
        from distillery.student.config import TrainConfig

        workers = self.version_entry(version).get("num_workers", TrainConfig.num_workers)
        return (int(workers) + 1) * max(self.train_gpus(version), 1)

    def train_launcher(self, version: str) -> str:
        """`distillery`, or torchrun with one DDP process per GPU when a version asks for several."""
        gpus = self.train_gpus(version)
        return f"torchrun --standalone --nproc_per_node {gpus} -m distillery.cli" if gpus > 1 else "distillery"

    def encoder_file(self, version: str):
        """The ImageNet weights a version's encoder starts from (None: a fine-tune, random or a file)."""
        return checks.encoder_file(self.version_entry(version), self.weights_cache)

    def train_settings(self, version: str) -> dict:
        """`distillery train` settings: workflow keys dropped, roles resolved, the weights cache when the
        encoder starts from ImageNet weights."""
        settings = lineage.resolved_settings(self.version_entry(version), self.roles, list(self.datasets), version)
        if self.encoder_file(version) is not None:
            settings["weights_cache"] = self.weights_cache
        return settings

    def lineage_summary(self) -> dict:
        """The built versions' entries (defaults applied, roles resolved), for the report."""
        summary = lineage.lineage_summary(self.training, self.roles, list(self.datasets))
        return {v: summary[v] for v in self.built_versions()}

    def slurm_training_message(self) -> str | None:
        return checks.slurm_training_message(self.training, self.roles, self.datasets, self.built_versions())

    def check_depth_teachers(self) -> None:
        """A built version (or an ancestor) that learns relative depth needs a relative depth teacher."""
        if "relative_depth" in self.teacher_roles:
            return
        for name in checks.ancestors_and_self(self.training, self.built_versions()):
            if self.version_entry(name).get("depth_teacher") == "relative":
                raise ValueError(
                    f"config: training.versions.{name}.depth_teacher is 'relative', but no relative depth "
                    "teacher is configured (teachers.models, e.g. {id: da2, backend: da2, weights: ...}); add "
                    "one, choose depth_teacher: metric or tof, or leave the version out of training.build")

    # Evaluation -------------------------------------------------------------------------------------------
    def _evaluation_sets(self) -> list[str]:
        """evaluation.sets (roles resolved), else every dataset with test frames."""
        names = self.config["evaluation"]["sets"]
        if names is None:
            return [n for n, d in self.datasets.items() if d.get("split") in (None, "test")]
        return list(dict.fromkeys(lineage.resolve_name(n, self.roles, list(self.datasets), "evaluation.sets")
                                  for n in names))

    def evaluation_targets(self, versions) -> list[str]:
        return [f"results/evaluation/{v}/{d}.json" for v in versions for d in self.evaluation_sets]

    # Teachers -------------------------------------------------------------------------------------------
    def teacher_ids(self, task: str | None = None) -> list[str]:
        """Ids of the teachers in use (of one task: depth covers metric and relative)."""
        return [tid for tid, e in self.teacher_by_id.items() if task is None or e["task"] == task]

    def teacher_id_pattern(self, task: str | None = None) -> str:
        """Wildcard constraint of a task's rules: exactly its ids (a pattern matching nothing when none)."""
        return "|".join(re.escape(tid) for tid in self.teacher_ids(task)) or "(?!)"

    def teacher_real(self, tid: str) -> bool:
        return not backend_info(self.teacher_by_id[tid]["backend"]).simulated

    def teacher_spec(self, tid: str) -> dict:
        """A teacher's entry as `distillery teach --teacher` takes it (the batch size is a job setting)."""
        return {k: v for k, v in self.teacher_by_id[tid].items() if k != "batch_size"}

    def teacher_device(self, tid: str) -> str:
        """teachers.device for a real backend; simulated teachers always run on the CPU."""
        return self.teachers["device"] if self.teacher_real(tid) else "cpu"

    def teacher_batch_size(self, tid: str) -> int:
        return self.teacher_by_id[tid].get("batch_size", self.teachers["batch_size"])

    def teacher_gpus(self, tid: str) -> int:
        """1 for a real backend on CUDA, 0 otherwise."""
        return int(self.teacher_real(tid) and self.teachers["device"] == "cuda")

    def teacher_threads(self, tid: str) -> int:
        """The main process plus DataLoader workers for a real network; simulated ones need one CPU."""
        return 4 if self.teacher_real(tid) else 1

    def teacher_size(self, tid: str) -> str:
        """The job-sizes row of a teacher's jobs."""
        return "teacher_real" if self.teacher_real(tid) else "teacher_sim"

    def teacher_settings(self, tid: str) -> dict:
        """What a teacher's labels depend on (its entry; real backends: precision; segment: the labeller):
        written to results/teachers/<id>/settings.json, so a change re-labels exactly its layers."""
        content = {"teacher": self.teacher_spec(tid)}
        if self.teacher_real(tid):
            content["precision"] = self.teachers["precision"]
        if self.teacher_by_id[tid]["task"] == "segment":
            content["labeller"] = self.teachers.get("labeller", {})
        return content

    def weight_files(self, tid: str) -> list:
        entry = self.teacher_by_id[tid]
        return teacher_weights.weight_files(entry["backend"], entry.get("weights"), self.weights_cache)

    def hub_weights(self) -> dict:
        """Every hub file download_weights fetches (teachers' and student encoders'), by its cache path."""
        files = [f for tid in self.teacher_by_id for f in self.weight_files(tid) if f.repo]
        files += [f for f in map(self.encoder_file, self.versions) if f is not None]
        return {str(f.path): f for f in files}

    def sanity_shards(self, names) -> list[str]:
        """The shards the sanity gate reads: as many as it checks frames (teachers.sanity.frames), spread
        evenly over the plan. With every shard as its input, each of the thousands of label jobs waiting on
        the gate made Snakemake scan the gate's whole input list: a DAG build quadratic in the shards."""
        count = (self.teachers.get("sanity") or {}).get("frames")
        if count is None:
            from distillery.teachers.sanity import SanityLimits

            count = SanityLimits.frames
        names = list(names)
        if len(names) <= count:
            return names
        step = (len(names) - 1) / (count - 1) if count > 1 else 0
        return [names[round(i * step)] for i in range(count)]

    def max_failed_share(self) -> float:
        """teachers.max_failed_share (without teachers there are no failure lists to gate)."""
        from distillery.manifest.failures import MAX_FAILED_SHARE

        return self.teachers.get("max_failed_share", MAX_FAILED_SHARE)

    # Frame selection (docs/selection.md) ------------------------------------------------------------------
    def selects(self) -> bool:
        """Whether frames are selected before the teachers (a `select:` section)."""
        return bool(self.config.get("select"))

    def selection_targets(self) -> list[str]:
        return ["results/manifest/selection.jsonl"] if self.selects() else []

    def selection_file(self, shard: str) -> str | None:
        """The selection JSON a shard's teacher jobs label from, or None when every frame is labelled."""
        return f"results/select/{shard}.json" if self.selects() else None

    def select_settings(self) -> dict:
        """`distillery select` settings: how (share or threshold) and how much, the novelty scales (a config
        without `select:`, whose rule never runs, shows SelectSettings' own)."""
        s = self.config.get("select") or {}
        how = "share" if s.get("share") is not None else "threshold"
        scales = {key: s.get(key, getattr(SelectSettings, key)) for key in ("translation_m", "rotation_deg",
                                                                              "depth_weight")}
        return {"how": how, "amount": s.get(how), **scales}

    # Deployment -----------------------------------------------------------------------------------------
    def frame_size(self) -> tuple[int, int]:
        return (self.config["ingest"]["height"], self.config["ingest"]["width"])

    def deployable(self) -> bool:
        """Whether the manifest's frames fit the deployed graph (distillery.deploy.spec)."""
        return self.frame_size() == DEPLOY_SIZE

    def deploy_note(self) -> str | None:
        """Why nothing is deployed (frames of another size), else None."""
        if self.deployable():
            return None
        (h, w), (dh, dw) = self.frame_size(), DEPLOY_SIZE
        return (f"deployment skipped: frames are stored at {h}x{w}, the deployed graph takes {dh}x{dw} "
                "(set ingest.height/width to deploy)")

    def deploy_versions(self) -> list[str]:
        """The built versions that deploy.versions lists (null: every built version), when the frames fit
        the deployed graph."""
        if not self.deployable():
            return []
        chosen = (self.config.get("deploy") or {}).get("versions")
        return [v for v in self.built_versions() if chosen is None or v in chosen]

    def check_deploy_versions(self) -> None:
        unknown = [v for v in (self.config.get("deploy") or {}).get("versions") or [] if v not in self.versions]
        if unknown:
            raise ValueError(f"config: deploy.versions {unknown} are not versions of training.versions "
                             f"({self.versions})")

    def deploy_targets(self) -> list[str]:
        """Every deployed version's bundle, and with deploy.engines its engines' latency and agreement
        (agreement needs the FP32 engine as its reference)."""
        deploy, versions = self.config["deploy"], self.deploy_versions()
        targets = [f"results/deploy/{v}/jetson_bundle.tar.gz" for v in versions]
        if deploy["engines"]:
            precisions = deploy["precisions"]
            targets += [f"results/deploy/{v}/engines/{p}.latency.json" for v in versions for p in precisions]
            if "fp32" in precisions:
                targets += [f"results/deploy/{v}/engines/{p}.agreement.json"
                            for v in versions for p in precisions if p != "fp32"]
        return targets

    def report_targets(self) -> list[str]:
        """The report, when any version is built."""
        return ["results/report/lineage.html"] if self.built_versions() else []
