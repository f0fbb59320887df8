"""Run the workflow's Snakemake in a scratch folder, as a user would from a shell."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEMO = ROOT / "config" / "demo.yaml"  # the embedded demo (`make demo`); config/config.yaml is the real-run template


def on_demo(config: dict) -> dict:
    """`config` merged over the demo, as a whole configuration for `--configfile`.

    A --configfile replaces the template (config/config.yaml) as a whole, so the small test configs
    below, which name only what they change, are laid over the demo the way Snakemake merges configs:
    mappings key by key, everything else replaced."""
    from snakemake.utils import update_config

    merged = copy.deepcopy(yaml.safe_load(DEMO.read_text()))
    update_config(merged, copy.deepcopy(config))
    return merged


def tiny_config(**overrides) -> dict:
    """A workflow config that runs the whole DAG in seconds on CPU (laid over the demo: on_demo)."""
    cfg = {
        "datasets": [
            {"name": "corridors", "synth": {"family": "corridor", "seed": 1, "sequences": 3, "frames": 3,
                                            "height": 60, "width": 80}},
            {"name": "rooms", "synth": {"family": "room", "seed": 2, "sequences": 2, "frames": 3,
                                        "height": 60, "width": 80}},
        ],
        "ingest": {"height": 48, "width": 64, "fit": "crop", "max_depth_m": 20.0, "max_bad_share": 0.05,
                   "max_pair_dt": 0.02},
        "sharding": {"frames_per_shard": 4, "seed": 0, "splits": {"train": 0.6, "val": 0.2, "test": 0.2}},
        "manifest": {"compression_level": 3},
        # Every lineage role on one of the two worlds (the default config's V1..V9 name roles), and one
        # tiny version for `rule all` (train, evaluate, report) instead of the whole lineage.
        "lineage": {"roles": {"nyu": "rooms", "sun": "rooms", "diode": "rooms", "corridor": "corridors"}},
        "training": {"build": ["demo"], "versions": {"demo": {
            "backbone": "mobilenetv3_small", "epochs": 1, "samples_per_epoch": 8, "batch_size": 4,
            "max_val_frames": 4, "freeze_encoder_epochs": 0}}},
    }
    deploy = {"versions": None, **overrides.pop("deploy", {})}  # deploy what is built (the demo lists two)
    cfg.update(overrides, deploy=deploy)
    return cfg


def snakemake(workdir: Path, *args: str, config: dict | None = None, check: bool = True,
              timeout: int = 600) -> subprocess.CompletedProcess:
    """`snakemake -s <project>/Snakefile -d workdir ...` with the project's venv on PATH; `config` is laid
    over the demo (on_demo) and written to workdir/config.yaml for --configfile."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2"]
    if config is not None:
        cfg_path = workdir / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(on_demo(config), sort_keys=False))
        cmd += ["--configfile", str(cfg_path)]
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([*cmd, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
