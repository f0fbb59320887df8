#!/usr/bin/env python3
"""A stand-in for `conda` that Snakemake's own conda deployment (`--sdm conda`) can drive offline.

It answers what Snakemake asks (`--version`, `info --json`, `config --get`),
and for `env create --file F --prefix P` does what conda does with the pip
section: writes it to a requirements file beside F and hands it to pip from
F's folder, here as `pip install --dry-run --no-deps --no-index`, so pip
resolves every path (and expands `${VARS}`) exactly as it would and a
project it cannot find fails the creation. Conda packages are recorded, not
installed. The environment it makes runs this machine's Python and
`distillery`, and a `pip` that records post-deploy installs instead of
installing. Every request is appended as a JSON line to $CONDA_STUB_LOG.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(os.environ["CONDA_STUB_ROOT"])
LOG = Path(os.environ["CONDA_STUB_LOG"])
BIN = Path(sys.executable).parent

ACTIVATE = """\
# Snakemake sources this with the environment's prefix: put its bin/ first.
export PATH="$1/bin:$PATH"
export CONDA_PREFIX="$1"
"""

PIP = """\
#!/usr/bin/env bash
# Records what a post-deploy script asks pip to install (no network here).
printf '%s\\n' "$(printf '%q ' "$@")" >> "{log}.pip"
"""


def record(entry: dict) -> None:
    with open(LOG, "a") as fh:
        fh.write(json.dumps(entry) + "\n")


def env_create(args: list[str]) -> int:
    file = Path(args[args.index("--file") + 1].strip('"'))
    prefix = Path(args[args.index("--prefix") + 1].strip('"'))
    spec = yaml.safe_load(file.read_text())
    conda_deps = [d for d in spec.get("dependencies", []) if isinstance(d, str)]
    pip_deps = [r for d in spec.get("dependencies", []) if isinstance(d, dict) for r in d.get("pip", [])]
    reqs = file.parent / f"condaenv.{os.getpid()}.requirements.txt"
    reqs.write_text("\n".join(pip_deps) + "\n")
    try:
        proc = subprocess.run([str(BIN / "python"), "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index",
                               "--no-build-isolation", "--quiet", "-r", reqs.name], cwd=file.parent,
                              capture_output=True, text=True)
    finally:
        reqs.unlink()
    record({"create": str(file), "prefix": str(prefix), "channels": spec.get("channels", []), "conda": conda_deps,
            "pip": pip_deps, "pip_ok": proc.returncode == 0, "pip_output": proc.stdout[-2000:] + proc.stderr[-2000:],
            "cwd": str(file.parent), "expanded": [os.path.expandvars(r) for r in pip_deps]})
    if proc.returncode != 0:
        print(f"Pip subprocess error:\n{proc.stderr}", file=sys.stderr)
        return 1
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    for tool in ("python", "python3", "distillery", "snakemake", "torchrun"):
        if (BIN / tool).exists():
            (prefix / "bin" / tool).symlink_to(BIN / tool)
    (prefix / "bin" / "pip").write_text(PIP.format(log=LOG))
    (prefix / "bin" / "pip").chmod(0o755)
    (prefix / "conda-meta").mkdir(exist_ok=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--version"]:
        print("conda 24.11.0")
    elif argv[:2] == ["info", "--json"]:
        (ROOT / "bin").mkdir(parents=True, exist_ok=True)
        (ROOT / "bin" / "activate").write_text(ACTIVATE)
        print(json.dumps({"conda_prefix": str(ROOT), "platform": "linux-64", "conda_version": "24.11.0"}))
    elif argv[:2] == ["config", "--get"]:
        print(json.dumps({"get": {"channel_priority": "strict"}, "rc_path": None}))
    elif argv[:2] == ["env", "create"]:
        return env_create(argv)
    elif argv[:1] == ["clean"]:
        record({"clean": argv[1:]})
    else:
        record({"unsupported": argv})
        print(f"conda stub: unsupported command {argv}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
