"""Shared bits of the benchmark scripts: timing, machine facts, JSON output."""

from __future__ import annotations

import json
import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path

# Where figures go; the smoke tests point it at a scratch folder.
OUT_DIR = Path(os.environ.get("DISTILLERY_BENCH_OUT") or Path(__file__).parent / "out")


@contextmanager
def timer(results: dict, name: str):
    start = time.perf_counter()
    yield
    results[name] = time.perf_counter() - start


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}


def report(name: str, figures: dict) -> Path:
    """Print figures as `key: value` lines and write them to benchmarks/out/<name>.json."""
    figures = {"benchmark": name, "machine": machine(), **figures}
    for key, value in figures.items():
        print(f"{key}: {value}")
    OUT_DIR.mkdir(exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(figures, indent=1) + "\n")
    print(f"written: {path}")
    return path
