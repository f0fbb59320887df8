"""Every benchmark script runs at a tiny size, so none can rot unnoticed.

These check that a script runs to its end and writes its figures; the
figures themselves are the benchmarks' business (benchmarks/, not timed tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "bench_dryrun": (["--frames", "2000", "--shards", "4"], "dryrun"),
    "bench_ingest": (["--frames", "16", "--frames-per-shard", "8", "--real", "/nonexistent"], "ingest"),
    "bench_extract_bag": (["--frames", "8"], "extract_bag"),
    "bench_evaluate": (["--frames", "8", "--resamples", "20", "--backbone", "mobilenetv3_small"], "evaluate"),
    "bench_teachers": (["--teachers", "sim_da3,labeller,to_grid", "--frame", "48x64"], "teachers_cpu"),
}
SLOW = {
    "bench_deploy": (["--runs", "2", "--warmup", "1", "--profile-runs", "2"], "bench_deploy"),
    "bench_train": (["--backbone", "mobilenetv3_small", "--steps", "1", "--latency-runs", "2"], "bench_train"),
}


def run_benchmark(script: str, args: list[str], out: Path) -> dict:
    env = dict(os.environ, DISTILLERY_BENCH_OUT=str(out), PYTHONPATH=str(ROOT / "src"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([sys.executable, f"{script}.py", *args], cwd=ROOT / "benchmarks", env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    written = sorted(out.glob("*.json"))
    assert len(written) == 1, f"{script} wrote {written}"
    return json.loads(written[0].read_text())


@pytest.mark.parametrize("script", sorted(TINY))
def test_benchmark_runs_at_a_tiny_size(script, tmp_path):
    args, name = TINY[script]
    figures = run_benchmark(script, args, tmp_path)
    assert figures["benchmark"] == name


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SLOW))
def test_slow_benchmark_runs_at_a_tiny_size(script, tmp_path):
    args, name = SLOW[script]
    assert run_benchmark(script, args, tmp_path)["benchmark"] == name


def test_dry_run_benchmark_builds_every_stage_of_its_own_config(tmp_path):
    figures = run_benchmark("bench_dryrun", TINY["bench_dryrun"][0], tmp_path)
    assert figures["frames"] == 2000 and figures["pack_shard_jobs"] == "4"
    assert figures["plan_shards_frames_per_s"] > 0
    assert figures["floor_jobs"] == str(4 * (1 + 4) + 4 + 1) and figures["dry_run_vs_floor"] > 0


def test_every_benchmark_script_has_a_smoke_test():
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("bench_*.py")}
    untested = {"bench_lineage": "runs the whole demo workflow (minutes): `make demo` covers it",
                "bench_distill_vs_tof": "needs a manifest with teacher and truth depth (a demo run)",
                "bench_quality": "builds a world and trains five students (about 30 minutes): `make quality`"}
    assert scripts == set(TINY) | set(SLOW) | set(untested)
