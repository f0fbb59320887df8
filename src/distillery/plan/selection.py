"""What frame selection (`select:` in the config) saves: the teacher rows of a plan at the selected share.

The dry run sees one teacher job per shard whatever the selection, since
every shard is still labelled; what shrinks is the frames each job runs the
network on. With `select.share`, every per-frame teacher row is scaled to that
share (slightly more in practice: each sequence keeps its first frame and
rounds up), and a note states the teacher GPU-hours with and without
selection. A `select.threshold` depends on the camera's motion, so its share
is not known before the selection jobs run; the note says so and nothing is
scaled.
"""

from __future__ import annotations

TEACHER_RULES = ("teacher_depth", "teacher_detect", "teacher_segment")


def apply_selection(plan, config: dict) -> dict | None:
    """Scale the plan's per-frame teacher rows to `select.share`; return the with/without figures."""
    select = config.get("select") or {}
    rows = [r for r in plan.rules if r.rule in TEACHER_RULES and r.unit == "frames"]
    if not select or not rows:
        return None
    every = sum(r.gpu_hours for r in rows)
    share = select.get("share")
    if share is None:
        plan.notes.append(f"selection by novelty threshold {select.get('threshold')}: the labelled share is known "
                          f"only after select_frames runs; teacher GPU-hours for every frame: {every:.3g}")
        return {"threshold": select.get("threshold"), "teacher_gpu_hours_every_frame": every}
    for r in rows:
        r.units *= share
        r.gpu_hours *= share
        r.cpu_hours *= share
        r.job_wall_s *= share
        r.wall_s *= share
    selected = sum(r.gpu_hours for r in rows)
    plan.notes.append(f"selection: teachers label about {share:.0%} of each sequence's frames: "
                      f"{selected:.3g} teacher GPU-hours instead of {every:.3g} for every frame")
    return {"share": share, "teacher_gpu_hours_every_frame": every, "teacher_gpu_hours_selected": selected}
