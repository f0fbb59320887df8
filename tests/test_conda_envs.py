"""Conda environments through Snakemake's own deployment (`--sdm conda`), with a stub `conda` on PATH
(tests/conda_stub.py) that hands each env file's pip section to pip the way conda does: a project path
pip cannot find fails the environment, so a wrong path fails here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_util import BIN, ROOT, on_demo, tiny_config

STUB = Path(__file__).with_name("conda_stub.py")


@pytest.fixture
def conda(tmp_path):
    """PATH and variables that put the stub `conda` first; returns (env, log path)."""
    bindir = tmp_path / "stubbin"
    bindir.mkdir()
    (bindir / "conda").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STUB}" "$@"\n')
    (bindir / "conda").chmod(0o755)
    log = tmp_path / "conda.jsonl"
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}",
               CONDA_STUB_ROOT=str(tmp_path / "conda"), CONDA_STUB_LOG=str(log))
    env.pop("DISTILLERY_PROJECT", None)
    return env, log


def _snakemake(work: Path, env: dict, *args: str):
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(yaml.safe_dump(on_demo(tiny_config())))
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", "2", *args,
           "--configfile", str(work / "config.yaml"), "--sdm", "conda"]
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)


def test_every_stage_environment_installs_this_project_and_runs_a_job(tmp_path, conda):
    env, log = conda
    work = tmp_path / "work"
    proc = _snakemake(work, env, "--conda-create-envs-only", "results/manifest/manifest.h5",
                      "results/teachers/da3_sim/sanity.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    created = [c for c in map(json.loads, log.read_text().splitlines()) if "create" in c]
    assert all(c.get("pip_ok") for c in created), created
    assert sorted(c["expanded"][0] for c in created) == [f"--editable {ROOT}", f"--editable {ROOT}[teachers]"]
    # Copied into .snakemake/conda/ before conda reads them: resolved from there, still this project.
    assert all(Path(c["cwd"]).resolve() == (work / ".snakemake" / "conda").resolve() for c in created)
    assert (tmp_path / "conda.jsonl.pip").read_text().count("install") == 2  # teachers post-deploy: sam2, da3
    # The two files differ only in the teachers extra.
    a, b = (yaml.safe_load((ROOT / "envs" / f).read_text()) for f in ("distillery.yaml", "teachers.yaml"))
    assert a["channels"] == b["channels"] and a["dependencies"][:-1] == b["dependencies"][:-1]
    proc = _snakemake(work, env, "results/synth/rooms")  # a job run inside its environment
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (work / "results" / "synth" / "rooms").is_dir()


def test_a_project_path_relative_to_the_env_file_fails_as_it_does_under_conda(tmp_path, conda):
    env, log = conda
    copied = tmp_path / "work" / ".snakemake" / "conda"
    copied.mkdir(parents=True)
    bad = yaml.safe_load((ROOT / "envs" / "distillery.yaml").read_text())
    bad["dependencies"][-1]["pip"] = ["-e .."]  # what the env files once said
    (copied / "abc.yaml").write_text(yaml.safe_dump(bad))
    proc = subprocess.run([str(Path(env["PATH"].split(os.pathsep)[0]) / "conda"), "env", "create", "--file",
                           str(copied / "abc.yaml"), "--prefix", str(copied / "abc")], env=env,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and not json.loads(log.read_text().splitlines()[-1])["pip_ok"]
