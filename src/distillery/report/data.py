"""What the report shows, as plain data: evaluation results, lineage, deployment accuracy.

Every evaluation JSON (`distillery evaluate`, one per version x evaluation
set) is read and checked for the fields the report needs, so a wrong file
fails naming the file and the field instead of leaving a blank cell. The
lineage comes from the workflow config (each version's parent and recipe).
The real-data figures of the reference implementation come from the config
too (a version's `reference:` text, in the lineage) and are kept apart: they
only ever appear in a column labelled "reference, real data", never mixed
with what this run measured.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

REFERENCE_COLUMN = "reference, real data"
DEPTH_METRICS = ("rmse", "rmse_pooled", "mae", "absrel", "delta1", "delta2", "delta3")
LOWER_IS_BETTER = {"rmse": True, "rmse_pooled": True, "mae": True, "absrel": True,
                   "delta1": False, "delta2": False, "delta3": False, "miou": False}
RANGE_REGIONS = ("near", "mid", "far")
REQUIRED_KEYS = ("version", "set", "frames", "depth")


@dataclass
class Evaluation:
    """One evaluation JSON: a version scored on one evaluation set."""

    version: str
    set: str
    path: Path
    data: dict = field(repr=False)

    @property
    def frames(self) -> int:
        return int(self.data["frames"])

    def depth(self, reference: str, region: str = "all", metric: str = "rmse", kind: str = "depth") -> dict | None:
        """{"mean", "ci95"} of one depth metric, or None when that reference/region is absent."""
        value = ((((self.data.get(kind) or {}).get(reference) or {}).get(region) or {}).get(metric))
        return value if isinstance(value, dict) and _finite(value.get("mean")) else None

    def miou(self) -> dict | None:
        value = (self.data.get("segmentation") or {}).get("miou")
        return value if isinstance(value, dict) and _finite(value.get("mean")) else None

    def per_class_iou(self) -> dict[str, float]:
        per_class = (self.data.get("segmentation") or {}).get("per_class_iou") or {}
        return {k: float(v) if _finite(v) else math.nan for k, v in per_class.items()}


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def load_evaluation(path: str | Path) -> Evaluation:
    """Read one evaluation JSON; a missing field raises ValueError naming the file and the field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); re-run its evaluate_version job") from err
    for key in REQUIRED_KEYS:
        if key not in data:
            raise ValueError(f"{path}: evaluation JSON has no {key!r}; re-run its evaluate_version job")
    return Evaluation(str(data["version"]), str(data["set"]), path, data)


def load_evaluations(paths: list[str | Path], versions: list[str]) -> list[Evaluation]:
    """Every evaluation, ordered by lineage version then set name; duplicates are an error."""
    evals = [load_evaluation(p) for p in paths]
    seen: dict[tuple[str, str], Path] = {}
    for e in evals:
        if (e.version, e.set) in seen:
            raise ValueError(f"{e.path} and {seen[e.version, e.set]} both evaluate {e.version} on {e.set}")
        seen[e.version, e.set] = e.path
    order = {v: i for i, v in enumerate(versions)}
    return sorted(evals, key=lambda e: (order.get(e.version, len(order)), e.version, e.set))


def load_quantization(deploy_dir: str | Path | None, versions: list[str]) -> dict[str, dict]:
    """version -> quantization.json of results/deploy/<version>/, for the versions that have one."""
    if deploy_dir is None:
        return {}
    out = {}
    for v in versions:
        path = Path(deploy_dir) / v / "quantization.json"
        if path.is_file():
            data = json.loads(path.read_text())
            if not {"fp32", "int8"} <= set(data):
                raise ValueError(f"{path}: quantization JSON needs 'fp32' and 'int8' entries")
            out[v] = data
    return out


def sets_of(evals: list[Evaluation]) -> list[str]:
    return sorted({e.set for e in evals})


def versions_of(evals: list[Evaluation]) -> list[str]:
    return list(dict.fromkeys(e.version for e in evals))


def main_reference(evals: list[Evaluation]) -> str:
    """The reference the headline numbers use: truth when any set has it, else the teacher."""
    for ref in ("truth", "teacher", "tof"):
        if any(e.depth(ref) for e in evals):
            return ref
    return "truth"


def lineage_depths(lineage: dict[str, dict]) -> dict[str, int]:
    """Generation of each version: 0 for a version without a parent, parent's + 1 otherwise."""
    depth: dict[str, int] = {}

    def visit(v: str, trail: tuple[str, ...]) -> int:
        if v in depth:
            return depth[v]
        parent = (lineage.get(v) or {}).get("parent")
        if parent in trail:
            raise ValueError(f"lineage: {v} is its own ancestor through {parent}")
        depth[v] = 0 if not parent or parent not in lineage else visit(parent, (*trail, v)) + 1
        return depth[v]

    for v in lineage:
        visit(v, ())
    return depth


def recipe_line(entry: dict) -> str:
    """A short human description of a version's recipe, from its config entry."""
    parts = [entry.get("backbone", "efficientvit_b1")]
    teacher = entry.get("depth_teacher")
    if teacher:
        parts.append(f"{teacher} teacher")
    if entry.get("depth_loss") == "l1":
        parts.append("L1")
    if entry.get("augment"):
        parts.append("aug")
    data = entry.get("datasets")
    if data:
        names = list(data) if isinstance(data, (dict, list)) else [str(data)]
        parts.append("+".join(str(n) for n in names))
    if entry.get("encoder_weights") == "random" and not entry.get("parent"):
        parts.append("encoder from random weights" + (": no frozen epochs, full encoder LR"
                     if not entry.get("freeze_encoder_epochs") and entry.get("encoder_lr_scale", 0.1) == 1.0 else ""))
    return ", ".join(parts)


def fmt_ci(value: dict | None, digits: int = 3) -> str:
    """'0.512 [0.480, 0.551]' for a metric with its 95 % interval; '0.512 (range of 2 sequences: 0.480-0.551)'
    when there were too few sequences for one (evaluation/bootstrap.py); '-' when absent."""
    if not value:
        return "-"
    mean = f"{value['mean']:.{digits}f}"
    lo, hi = (value.get("ci95") or [math.nan, math.nan])[:2]
    if _finite(lo) and _finite(hi):
        return f"{mean} [{lo:.{digits}f}, {hi:.{digits}f}]"
    lo, hi = (value.get("range") or [math.nan, math.nan])[:2]
    if _finite(lo) and _finite(hi):
        return f"{mean} ({value.get('interval', 'range')}: {lo:.{digits}f}-{hi:.{digits}f})"
    return mean