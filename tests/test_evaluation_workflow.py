"""The evaluate_version rule: one job per version for every evaluation set, settings as params, bad sets refused."""

from __future__ import annotations

import re

from workflow_util import snakemake, tiny_config

VERSIONS = {"a": {"backbone": "mobilenetv3_small", "epochs": 1},
            "b": {"backbone": "mobilenetv3_small", "epochs": 1, "parent": "a", "freeze_encoder_epochs": 0}}


def _jobs(stdout: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stdout, re.M)}


def test_every_version_is_evaluated_on_every_dataset_by_default(tmp_path):
    cfg = tiny_config(training={"versions": VERSIONS})
    targets = [f"results/evaluation/{v}/{d}.json" for v in VERSIONS for d in ("corridors", "rooms")]
    proc = snakemake(tmp_path, "-n", "-p", *targets, config=cfg)
    assert _jobs(proc.stdout)["evaluate_version"] == 2  # one per version; it writes every set's JSON
    assert "--set corridors rooms --out-dir results/evaluation/b --version-name b" in proc.stdout
    assert "--bootstrap 1000 --seed 0 --batch-size 8 --device cpu" in proc.stdout


def test_evaluation_sets_and_bootstrap_come_from_the_config(tmp_path):
    cfg = tiny_config(training={"versions": VERSIONS},
                      evaluation={"sets": ["rooms"], "bootstrap": {"resamples": 50, "seed": 7}})
    proc = snakemake(tmp_path, "-n", "-p", "results/evaluation/a/rooms.json", config=cfg)
    assert "--bootstrap 50 --seed 7" in proc.stdout and "gpu=0" in proc.stdout
    refused = snakemake(tmp_path, "-n", "results/evaluation/a/corridors.json", config=cfg, check=False)
    assert refused.returncode != 0  # corridors is not an evaluation set: no rule makes it


def test_unknown_evaluation_set_stops_the_dry_run_naming_it(tmp_path):
    cfg = tiny_config(training={"versions": VERSIONS}, evaluation={"sets": ["rooms", "hallz"]})
    proc = snakemake(tmp_path, "-n", config=cfg, check=False)
    assert proc.returncode != 0 and "evaluation.sets names 'hallz'" in proc.stdout + proc.stderr
