"""Teacher failure lists at the merge: the share of frames each teacher failed on, per shard, and the gate.

Every teacher job writes `results/teachers/<teacher>/<shard>.failures.jsonl`,
one row per frame it could not label (a per-frame data error; fatal errors
fail the job instead). The merge reads every list: a shard where a teacher
failed on more than `teachers.max_failed_share` of the frames stops the run
before the manifest is written, naming the teacher, the shard and the share,
since training would silently fall back to ToF on those frames. The shares
always go into the manifest summary.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from distillery.atomic import read_jsonl

# teachers.max_failed_share: the largest share of a shard's frames one teacher may fail on before the
# merge stops (the default of the CLI, the merge and the workflow; the schema states the same value).
MAX_FAILED_SHARE = 0.05


class TooManyFailedFrames(RuntimeError):
    """A teacher failed on more frames of a shard than teachers.max_failed_share allows."""


def failure_source(path: str) -> tuple[str, str]:
    """(teacher, shard) of `results/teachers/<teacher>/<shard>.failures.jsonl`."""
    p = Path(path)
    return p.parent.name, p.name.split(".")[0]


def failure_report(failure_paths: list[str], frames_per_shard: dict[str, int], max_failed_share: float) -> dict:
    """Per "<teacher>/<shard>": frames, failed, share, ok, and the commonest reasons."""
    report = {}
    for path in sorted(failure_paths):
        teacher, shard = failure_source(path)
        if shard not in frames_per_shard:
            raise ValueError(f"{path}: failure list of shard {shard!r}, which is not among the merged shards")
        rows = read_jsonl(path)
        frames = frames_per_shard[shard]
        share = len(rows) / frames if frames else 0.0
        reasons = Counter(str(r.get("reason", "")).split(":")[0] for r in rows)
        report[f"{teacher}/{shard}"] = {"teacher": teacher, "shard": shard, "frames": frames, "failed": len(rows),
                                       "failed_share": round(share, 6), "ok": share <= max_failed_share,
                                       "reasons": dict(reasons.most_common(5)), "list": str(path)}
    return report


def check_failures(report: dict, max_failed_share: float) -> None:
    """Raise TooManyFailedFrames naming every teacher and shard past the threshold."""
    failing = [r for r in report.values() if not r["ok"]]
    if not failing:
        return
    lines = [f"  teacher {r['teacher']}, shard {r['shard']}: failed on {r['failed']} of {r['frames']} frames "
             f"({r['failed_share']:.1%}), reasons {r['reasons']}; list: {r['list']}" for r in failing]
    raise TooManyFailedFrames(
        f"teacher failure share above teachers.max_failed_share={max_failed_share:.1%}:\n" + "\n".join(lines)
        + "\nLook at the teacher logs (logs/teacher_*/) and the lists; if these frames are expected to fail, "
          "raise teachers.max_failed_share.")
