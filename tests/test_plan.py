"""`distillery plan` pieces: dry-run parsing, records, units, partition fit, the rule graph, `make dag`."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from workflow_util import ROOT, snakemake, tiny_config

from distillery.plan.dryrun import Job, downstream_of, parse_job_stats, parse_jobs
from distillery import cluster
from distillery.plan.partition_fit import check_jobs
from distillery.plan.records import read_record
from distillery.plan.units import WorkSizes, job_units

@pytest.fixture(scope="module")
def slurm_dry_run(tmp_path_factory):
    """`snakemake -n --profile profiles/slurm` of the tiny config, as a user sees it."""
    workdir = tmp_path_factory.mktemp("slurm_dry")
    return snakemake(workdir, "-n", "--profile", str(ROOT / "profiles" / "slurm"), config=tiny_config())


def test_jobs_and_counts_of_a_real_dry_run(slurm_dry_run):
    text = slurm_dry_run.stdout + slurm_dry_run.stderr
    jobs = parse_jobs(text)
    counts = parse_job_stats(text)
    assert counts and sum(counts.values()) == len(jobs)
    assert {j.rule: sum(1 for k in jobs if k.rule == j.rule) for j in jobs} == counts
    plan = next(j for j in jobs if j.rule == "plan_shards")
    assert plan.checkpoint and plan.outputs == ["results/shards/plan"]
    synth = [j for j in jobs if j.rule == "synthesize_world"]
    assert {j.wildcards["dataset"] for j in synth} == {"corridors", "rooms"}
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    partition = profile["default-resources"]["slurm_partition"]
    assert all(j.resources["slurm_partition"] == partition and j.resource_int("mem_mb") > 0 for j in synth)


def test_downstream_follows_files_inside_a_checkpoint_folder():
    pack = Job("pack_shard", inputs=["results/shards/plan/shard-00000.jsonl"], outputs=["results/shards/s0.h5"])
    teach = Job("teach", inputs=["results/shards/s0.h5"], outputs=["t.h5"])
    other = Job("synth", outputs=["results/synth/x"])
    assert downstream_of([other, pack, teach], ["results/shards/plan"]) == [pack, teach]


def test_record_is_the_mean_of_its_rows(tmp_path):
    path = tmp_path / "shard-00001.tsv"
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                    "2.0\t0:00:02\t100.5\t200\t90\t95\t0.1\t0.2\t50.0\t1.5\n"
                    "4.0\t0:00:04\t120.5\t200\t90\t95\t0.1\t0.2\t50.0\t2.5\n")
    record = read_record(path)
    assert (record.wall_s, record.cpu_s, record.name) == (3.0, 2.0, "shard-00001")
    (tmp_path / "empty.tsv").write_text("")
    assert read_record(tmp_path / "empty.tsv") is None


def test_units_follow_wildcards_then_rule_then_job():
    sizes = WorkSizes(dataset_frames={"a": 10, "b": 5}, shard_frames={"shard-00000": 4},
                      training={"v": {"epochs": 3, "samples_per_epoch": 20}})
    assert job_units(Job("teacher_depth", wildcards={"teacher": "t", "shard": "shard-00000"}), sizes) == (4, "frames")
    assert job_units(Job("index_dataset", wildcards={"dataset": "b"}), sizes) == (5, "frames")
    assert job_units(Job("merge_manifest"), sizes) == (15, "frames")
    assert job_units(Job("train_student", wildcards={"version": "v"}), sizes) == (60, "samples")
    assert job_units(Job("some_new_rule", wildcards={"x": "y"}), sizes) == (1, "job")
    assert job_units(Job("pack_shard", wildcards={"shard": "unknown"}), sizes) == (1, "job")


def test_jobs_of_a_slurm_dry_run_checked_against_a_small_partition(slurm_dry_run):
    jobs = parse_jobs(slurm_dry_run.stdout + slurm_dry_run.stderr)
    small = cluster.parse_sinfo("node1|2|4000|(null)\n")
    misfits, checked, notes = check_jobs(jobs, query=lambda partition: small)
    assert not notes and checked
    too_big = {j.rule for j in jobs if "slurm_partition" in j.resources and not j.local
               and (j.cpus > 2 or j.resource_int("mem_mb") > 4000)}
    assert too_big and {m["rule"] for m in misfits} == too_big
    for m in misfits:
        assert f"{m['request']['mem_mb']} MB" in m["reason"] and "node1" in m["reason"]

    def unreachable(partition):
        raise cluster.SlurmQueryError("sinfo not found: cannot check job sizes against the cluster")

    misfits, checked, notes = check_jobs(jobs, query=unreachable)
    assert not misfits and not checked and "not checked" in notes[0]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed (make setup installs it as root)")
def test_rulegraph_svg_draws_every_rule(tmp_path):
    from distillery.plan import rulegraph_svg

    cfg = tmp_path / "config.yaml"
    snakemake(tmp_path, "--rulegraph", config=tiny_config())  # writes config.yaml
    svg = rulegraph_svg(tmp_path, cfg)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    for rule in ("synthesize_world", "index_dataset", "plan_shards", "merge_manifest"):
        assert rule in svg


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_setup_installs_graphviz_and_make_dag_writes_svgs(tmp_path):
    dry = subprocess.run(["make", "-n", "-o", ".venv/.installed", "setup"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert "apt-get install" in dry.stdout and "graphviz" in dry.stdout
    if shutil.which("dot") is None:
        pytest.skip("Graphviz not installed: `make setup` installs it as root")
    dag, rules = tmp_path / "dag.svg", tmp_path / "rules.svg"
    # .venv/.installed counts as up to date: this test runs inside the set-up venv.
    subprocess.run(["make", "-o", ".venv/.installed", "dag", f"DAG_SVG={dag}", f"RULES_SVG={rules}"], cwd=ROOT,
                   capture_output=True, text=True, check=True, timeout=300)
    # Before the plan (a checkpoint) exists the graphs end there; after it they start at pack_shard
    # (README, "Running the workflow").
    planned = (ROOT / "results" / "shards" / "plan" / "shards.json").is_file()
    for svg in (dag, rules):
        text = svg.read_text()
        assert "<svg" in text and "merge_manifest" in text
        assert ("pack_shard" if planned else "plan_shards") in text


def test_table_names_sources_upper_bounds_gpu_jobs_and_misfits():
    from distillery.plan.cli import format_table
    from distillery.plan.estimate import Plan, RuleEstimate

    depth = RuleEstimate("teacher_depth", "da3", "gpu", 500, 1, 4, "gpu", 1e6, "frames", 1.38, 1.38, 10.0, 50.0,
                         1.79e10, "default: bench_teachers.py, 201 frames/s", "default", 500)
    sanity = RuleEstimate("teacher_sanity", "da3", "gpu", 1, 1, 4, "gpu", 1, "job", 4.0, 4.0, 14400.0, 14400.0,
                          None, "no record or default: the rule's runtime request (240 min/job), an upper bound",
                          "unknown")
    misfit = {"rule": "teacher_depth", "partition": "gpu", "jobs": 500, "request": {},
              "reason": "asks for 64 CPUs, but no node of partition 'gpu' has that much"}
    table = format_table(Plan([sanity, depth], 100, "slurm", misfits=[misfit], fit_checked=["gpu"]))
    row = next(line for line in table.splitlines() if line.startswith("teacher_depth[da3]"))
    assert "500 (500 est.)" in row and "17.9 GB" in row and row.endswith("201 frames/s (per frame)")
    total = next(line for line in table.splitlines() if line.startswith("total (estimates)"))
    assert "1.38" in total and "5.38" not in table  # the estimate alone: the bound is never added to it
    bounds = next(line for line in table.splitlines() if line.startswith("upper bounds, apart"))
    assert "4.00" in bounds and "not in the estimates: 4.00 GPU-h" in table
    assert "teacher_depth[da3]: 500 x 1 GPU on partition gpu" in table
    assert "500 jobs fit no node" in table and "64 CPUs" in table


def test_gpu_defaults_scale_to_the_profiles_gpu_model_by_a_stated_ratio():
    from distillery.plan.costs import from_defaults, load_defaults
    from distillery.plan.dryrun import Job
    from distillery.plan.units import WorkSizes

    defaults = load_defaults()
    sizes = WorkSizes(dataset_frames={"a": 100}, shard_frames={"shard-0000000000000000": 50},
                      teacher_backends={"da3": "da3"})
    job = Job(rule="teacher_depth", wildcards={"teacher": "da3", "shard": "shard-0000000000000000"},
              resources={"gpu": "1"})
    base = from_defaults(job, sizes, defaults)
    assert "(on H100)" in base.source and base.wall_s == defaults["backends"]["da3"]["gpu"]["wall_s"]
    on_l40s = from_defaults(Job(**{**job.__dict__, "resources": {"gpu": "1", "gpu_model": "l40s"}}), sizes, defaults)
    assert on_l40s.wall_s == pytest.approx(base.wall_s * 2.73) and "x2.73 for l40s: stated ratio" in on_l40s.source
    other = from_defaults(Job(**{**job.__dict__, "resources": {"gpu": "1", "gpu_model": "t4"}}), sizes, defaults)
    assert other.wall_s == base.wall_s and "no figure for t4" in other.source
