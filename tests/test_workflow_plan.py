"""The workflow's decisions (distillery.workflow), called directly on configs a user writes: no Snakemake run.

Each config is the demo (config/demo.yaml) or the real-run template with a user's edit, validated against
the schema the way common.smk validates it (defaults filled), then given to `load`.
"""

from __future__ import annotations

import copy

import pytest
import yaml
from snakemake.utils import validate
from workflow_util import DEMO, ROOT, on_demo

from distillery import cluster
from distillery.workflow import jobs, load

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def validated(config: dict) -> dict:
    config = copy.deepcopy(config)
    validate(config, schema=str(SCHEMA))
    return config


def demo(**change) -> dict:
    return validated(on_demo(change))


@pytest.fixture(scope="module")
def wf():
    return load(validated(yaml.safe_load(DEMO.read_text())))


def test_demo_builds_every_version_parents_first_and_deploys_the_chosen_ones(wf):
    built = wf.built_versions()
    assert built == wf.versions and len(built) == 10
    for version in built:
        parent = wf.parent(version)
        assert parent is None or built.index(parent) < built.index(version)
    assert wf.deployable() and wf.deploy_note() is None
    assert wf.deploy_versions() == ["V5", "V9"]
    assert wf.deploy_targets() == [f"results/deploy/{v}/jetson_bundle.tar.gz" for v in ("V5", "V9")]
    assert wf.report_targets() == ["results/report/lineage.html"]


def test_build_list_limits_versions_and_engines_add_latency_and_agreement():
    wf = load(demo(training={"build": ["V1"]},
                   deploy={"versions": None, "engines": True, "precisions": ["fp32", "int8"]}))
    assert wf.built_versions() == ["V1"]
    assert set(wf.deploy_targets()) == {"results/deploy/V1/jetson_bundle.tar.gz",
                                        "results/deploy/V1/engines/fp32.latency.json",
                                        "results/deploy/V1/engines/int8.latency.json",
                                        "results/deploy/V1/engines/int8.agreement.json"}


def test_deploy_versions_default_to_every_built_one_and_name_versions():
    assert load(demo(deploy={"versions": None})).deploy_versions() == load(demo()).built_versions()
    assert load(demo(training={"build": ["V5"]}, deploy={"versions": ["V5", "V7"]})).deploy_versions() == ["V5"]
    with pytest.raises(ValueError, match=r"deploy.versions \['V55'\] are not versions"):
        load(demo(deploy={"versions": ["V5", "V55"]}))


def test_frames_of_another_size_deploy_nothing_and_say_why_once():
    wf = load(demo(ingest={"height": 120, "width": 160}))
    assert not wf.deployable() and wf.deploy_versions() == [] and wf.deploy_targets() == []
    assert "120x160" in wf.deploy_note() and "240x320" in wf.deploy_note()
    assert wf.report_targets()  # training, evaluation and the report go on


def test_evaluation_sets_resolve_roles_and_name_a_wrong_one():
    wf = load(demo(evaluation={"sets": ["corridor", "corridor"]}))
    assert wf.evaluation_sets == [wf.roles["corridor"]]
    assert wf.evaluation_targets(["V1"]) == [f"results/evaluation/V1/{wf.roles['corridor']}.json"]
    with pytest.raises(ValueError, match="evaluation.sets names 'hallz'"):
        load(demo(evaluation={"sets": ["hallz"]}))


def test_relative_depth_without_a_relative_teacher_names_the_version_even_as_an_ancestor():
    cfg = demo()
    cfg["teachers"]["models"] = [m for m in cfg["teachers"]["models"] if m["backend"] != "sim_da2"]
    relative = [v for v, e in cfg["training"]["versions"].items() if (e or {}).get("depth_teacher") == "relative"]
    assert relative
    with pytest.raises(ValueError, match=rf"training.versions.{relative[0]}.depth_teacher is 'relative'"):
        load(cfg)
    child = {"parent": relative[0], "depth_teacher": "metric", "freeze_encoder_epochs": 0}
    cfg["training"]["versions"]["child"] = child
    cfg["training"]["build"] = ["child"]
    with pytest.raises(ValueError, match="depth_teacher is 'relative'"):
        load(cfg)  # the parent is trained first, so it needs its teacher too


def test_train_settings_drop_workflow_keys_resolve_roles_and_size_the_job():
    wf = load(demo(training={"defaults": {"gpus": 2, "num_workers": 3}}))
    version = wf.versions[0]
    settings = wf.train_settings(version)
    assert "gpus" not in settings and "parent" not in settings
    assert set(settings.get("dataset_weights", {})) <= set(wf.datasets)
    assert wf.train_gpus(version) == 2 and wf.train_threads(version) == 8
    assert wf.train_launcher(version).startswith("torchrun --standalone --nproc_per_node 2")


# The reference implementation's real-data figures, as the report has always quoted them for V1..V9.
REFERENCE_FIGURES = {
    "V1": "NYU RMSE 75 m (no metric scale)", "V2": "diagnostic (Kendall clamp)", "V3": "NYU RMSE 1.160 m",
    "V4": "NYU RMSE 0.774 m", "V5": "NYU RMSE 0.572 m", "V6": "NYU RMSE 0.519 m",
    "V7": "corridor RMSE 0.445 m (forgets NYU)", "V8": "mixing hurt", "V9": "corridor RMSE 0.382 m",
}


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml"])
def test_reference_figures_reach_the_report_and_never_training(name):
    config = yaml.safe_load((ROOT / "config" / name).read_text())
    if name == "config.yaml":  # the template has no dataset yet: give the roles one
        config["datasets"] = [{"name": "rooms", "path": "/data/rooms", "layout": "native"}]
        config["lineage"]["roles"] = {role: "rooms" for role in ("nyu", "sun", "diode", "corridor")}
    wf = load(validated(config))
    summary = wf.lineage_summary()
    assert {v: e["reference"] for v, e in summary.items() if "reference" in e} == REFERENCE_FIGURES
    assert all("reference" not in wf.train_settings(v) for v in wf.versions)


def test_teachers_of_the_demo_are_simulated_on_one_cpu_and_their_settings_key_the_labels(wf):
    tid = wf.teacher_ids("segment")[0]
    assert not wf.teacher_real(tid) and wf.teacher_device(tid) == "cpu" and wf.teacher_gpus(tid) == 0
    assert wf.teacher_threads(tid) == 1 and wf.teacher_size(tid) == "teacher_sim"
    assert set(wf.teacher_settings(tid)) == {"teacher", "labeller"}
    assert "batch_size" not in wf.teacher_spec(tid)
    assert wf.teacher_id_pattern("depth").count("|") == len(wf.teacher_ids("depth")) - 1
    assert wf.max_failed_share() == wf.teachers["max_failed_share"]


def test_without_teachers_nothing_is_labelled_and_no_failure_limit_applies():
    cfg = demo()
    del cfg["teachers"]
    cfg["training"]["versions"] = {k: v for k, v in cfg["training"]["versions"].items()
                                   if (v or {}).get("depth_teacher") != "relative"}
    cfg["training"]["build"] = None
    for entry in cfg["training"]["versions"].values():
        if (entry or {}).get("parent") not in cfg["training"]["versions"]:
            (entry or {}).pop("parent", None)
    cfg["training"]["defaults"]["depth_teacher"] = "tof"
    wf = load(cfg)
    assert wf.teacher_ids() == [] and wf.teacher_id_pattern() == "(?!)"


NODES = (cluster.Node("g1", 32, 256000, {"a100": 4}),)


def test_job_sizes_grow_per_attempt_and_retries_stop_at_the_largest_node():
    assert jobs.mem_mb("teacher_real", 1) == 32000 and jobs.runtime("teacher_real", 2) == 480
    assert jobs.mem_mb("teacher_real", 3) == 96000
    assert jobs.mem_mb("teacher_real", 9, node_max=256000) == 256000
    profile = jobs.Profile(True, "cpu", "gpu", "a100")
    assert profile.partition(0) == "cpu" and profile.partition(1) == "gpu" and profile.gpu_model(0) is None
    assert jobs.node_max_mem(profile, 1, NODES) == 256000
    assert jobs.node_max_mem(jobs.Profile(), 1, NODES) is None  # off Slurm: no cap


def test_a_job_no_node_can_hold_is_refused_naming_rule_and_partition_only_on_slurm():
    profile = jobs.Profile(True, "cpu", "gpu", "a100")
    jobs.check_fit("teacher_depth", profile, "teacher_real", 1, 4, nodes=NODES)
    with pytest.raises(cluster.RequestTooLarge, match=r"rule train_student .*'gpu'"):
        jobs.check_fit("train_student", profile, "train_gpu", 8, 9, nodes=NODES)
    jobs.check_fit("train_student", jobs.Profile(), "train_gpu", 8, 9, nodes=NODES)  # local: not checked


def test_every_teacher_job_is_sized_before_the_shards_exist(wf):
    rules = [rule for rule, *_ in jobs.teacher_jobs(wf)]
    assert rules.count("teacher_sanity") == len(wf.teacher_ids("depth"))
    assert {"teacher_depth", "teacher_detect", "teacher_segment"} <= set(rules)
    assert all(size in jobs.JOB_SIZES for _, size, _, _ in jobs.teacher_jobs(wf))


def test_the_sanity_gate_reads_as_many_shards_as_it_checks_frames_spread_over_the_plan(wf):
    names = [f"shard-{i:016x}" for i in range(5000)]
    count = wf.teachers["sanity"]["frames"]
    picked = wf.sanity_shards(names)
    assert len(picked) == count and picked[0] == names[0] and picked[-1] == names[-1]
    assert picked == sorted(set(picked))  # distinct, in plan order
    assert wf.sanity_shards(names[:3]) == names[:3]
