"""Job sizes against a cluster: sinfo parsing, the fit check, and what the workflow asks Slurm for."""

import re

import pytest
from workflow_util import snakemake, tiny_config

from distillery.cluster import Node, Request, RequestTooLarge, check_request, fit_problem, parse_gres, parse_sinfo

SINFO = """\
cpu01|2|21000|(null)
cpu02|2|21000|(null)
gpu01|8|64000|gpu:l40s:2(S:0-1)
gpu02|16|128000|gpu:a100:4,gpu:l40s:1
"""


def test_sinfo_lines_become_nodes_with_gpus_per_model():
    nodes = parse_sinfo(SINFO)
    assert [n.name for n in nodes] == ["cpu01", "cpu02", "gpu01", "gpu02"]
    assert nodes[0] == Node("cpu01", 2, 21000, {})
    assert nodes[3].gpus == {"a100": 4, "l40s": 1} and nodes[3].gpu_count() == 5
    assert parse_gres("gpu:4") == {"": 4} and parse_gres("(null)") == {}


def test_a_request_fits_when_one_node_has_all_of_it():
    nodes = parse_sinfo(SINFO)
    assert fit_problem(Request(2, 20000), "cpu", nodes[:2]) is None
    assert fit_problem(Request(8, 64000, 2, "l40s"), "gpu", nodes[2:]) is None
    assert fit_problem(Request(4, 64000, 3, "a100"), "gpu", nodes[2:]) is None
    # 2 l40s on gpu01, 1 on gpu02: no single node has 3
    assert "GPUs" in fit_problem(Request(1, 1000, 3, "l40s"), "gpu", nodes[2:])


def test_a_request_no_node_can_hold_names_rule_request_and_the_largest_node():
    nodes = parse_sinfo(SINFO)[:2]
    with pytest.raises(RequestTooLarge) as err:
        check_request("teacher_sanity", Request(4, 32000), "cpu", nodes)
    message = str(err.value)
    assert "rule teacher_sanity asks for 4 CPUs, 32000 MB" in message
    assert "partition 'cpu'" in message and "CPUs and memory" in message
    assert "largest node is cpu01: 2 CPUs, 21000 MB, no GPUs" in message


def _jobs(stdout: str) -> dict:
    """rule -> resources line of each job block of a dry run (`snakemake -n`)."""
    out = {}
    for block in stdout.split("\n\n"):
        rule = re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):", block, re.M)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if rule and res:
            out.setdefault(rule.group(1), dict(kv.split("=", 1) for kv in res.group(1).split(", ")))
    return out


def test_cpu_jobs_go_to_the_cpu_partition_without_gpu_fields_and_gpu_jobs_to_the_gpu_partition(tmp_path):
    cfg = tiny_config(training={"build": ["gpu", "cpu"], "versions": {
        "gpu": {"gpus": 1, "num_workers": 1, "epochs": 1},
        "cpu": {"gpus": 0, "num_workers": 0, "epochs": 1, "parent": "gpu", "freeze_encoder_epochs": 0}}})
    proc = snakemake(tmp_path, "-n", "--default-resources", "slurm_partition=small", "gpu_partition=big",
                     "gpu_type=l40s", config=cfg)
    jobs = _jobs(proc.stdout)
    synth = jobs["synthesize_world"]
    assert synth["slurm_partition"] == "small" and synth["gpu"] == "0" and "gpu_model" not in synth
    assert synth["mem_mb"] == "2000" and synth["runtime"] == "60"
    blocks = [b for b in proc.stdout.split("\n\n") if "rule train_student:" in b]
    by_version = {re.search(r"wildcards: version=(\w+)", b).group(1): _jobs(b)["train_student"] for b in blocks}
    threads = {re.search(r"wildcards: version=(\w+)", b).group(1): re.findall(r"threads: (\d+)", b) or ["1"]
               for b in blocks}  # a one-thread job prints no threads line
    assert by_version["gpu"]["slurm_partition"] == "big" and by_version["gpu"]["gpu_model"] == "l40s"
    assert by_version["gpu"]["mem_mb"] == "16000" and by_version["gpu"]["gpu"] == "1"
    assert by_version["cpu"]["slurm_partition"] == "small" and "gpu_model" not in by_version["cpu"]
    assert by_version["cpu"]["mem_mb"] == "8000" and threads == {"gpu": ["2"], "cpu": ["1"]}  # trainer + workers


def test_the_slurm_profile_names_partitions_and_leaves_sizes_to_the_workflow():
    from pathlib import Path

    import yaml

    profile = yaml.safe_load((Path(__file__).parents[1] / "profiles/slurm/config.yaml").read_text())
    assert set(profile["default-resources"]) == {"slurm_partition", "gpu_partition", "slurm_account", "gpu_type"}
    assert "set-resources" not in profile and "groups" not in profile
