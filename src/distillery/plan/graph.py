"""The workflow's rule graph as SVG text, for reports and `distillery plan --rulegraph`.

`snakemake --rulegraph` writes the graph in Graphviz's dot language and
Graphviz's `dot` draws it (`make setup` installs Graphviz). The SVG is
returned as text so that a report can embed it inline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from distillery.plan.dryrun import snakemake_bin


def graph_dot(workdir: str | Path, configfile: str | Path | None = None, kind: str = "rulegraph",
              snakefile: str | Path | None = None, extra_args: list[str] = ()) -> str:
    """`snakemake --rulegraph` (kind="rulegraph") or `--dag` (kind="dag") in `workdir`, as dot text."""
    if kind not in ("rulegraph", "dag"):
        raise ValueError(f"kind must be rulegraph or dag, got {kind!r}")
    from distillery.plan.build import default_snakefile

    snakefile = snakefile or default_snakefile()
    cmd = [snakemake_bin(), f"--{kind}", "-d", str(workdir), *(["-s", str(snakefile)] if snakefile else [])]
    if configfile:
        cmd += ["--configfile", str(Path(configfile).resolve())]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([*cmd, *extra_args], capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0 or "digraph" not in proc.stdout:
        tail = "\n".join(proc.stderr.strip().splitlines()[-10:])
        raise RuntimeError(f"snakemake --{kind} failed in {workdir}:\n{tail}")
    return proc.stdout[proc.stdout.index("digraph"):]


def render_svg(dot_text: str) -> str:
    """Graphviz's SVG of a dot graph; a readable error naming the fix when `dot` is missing."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("Graphviz's `dot` is not installed: run `make setup` (as root) or "
                           "`sudo apt-get install graphviz`")
    proc = subprocess.run([dot, "-Tsvg"], input=dot_text, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"dot -Tsvg failed: {proc.stderr.strip()}")
    return proc.stdout


def rulegraph_svg(workdir: str | Path = ".", configfile: str | Path | None = None,
                  snakefile: str | Path | None = None) -> str:
    """The rule graph of the workflow (with this config, in this working directory) as SVG text.

    One node per rule, an edge where a rule consumes another's output; it does not depend on how
    many jobs each rule has, so it reads well in a report at any data size.
    """
    svg = render_svg(graph_dot(workdir, configfile, "rulegraph", snakefile))
    return svg[svg.index("<svg"):] if "<svg" in svg else svg
