"""Real recordings without teachers: `teachers: null` builds the manifest with a plain `snakemake`, and
teachers added later label the packed shards without re-packing them."""

from layouts import make_7scenes
from test_teachers_workflow import job_counts
from workflow_util import snakemake, tiny_config

from distillery.manifest import Manifest


def real_config(kitchen, teachers=None) -> dict:
    """A user's config: one 7-Scenes folder, no synthetic world, no training built by default."""
    return tiny_config(datasets=[{"name": "kitchen", "path": str(kitchen), "layout": "7scenes"}], teachers=teachers,
                       lineage={"roles": {"nyu": "kitchen", "sun": "kitchen", "diode": "kitchen",
                                          "corridor": "kitchen"}},
                       training={"build": []})


def test_real_folders_without_teachers_build_the_manifest_and_teachers_come_later_without_repacking(tmp_path):
    kitchen = make_7scenes(tmp_path / "data" / "kitchen", n_frames=4, sequences=["seq-01", "seq-02"])
    work = tmp_path / "work"
    cfg = real_config(kitchen)
    snakemake(work, config=cfg)  # the default target, as a user types it
    m = Manifest(work / "results/manifest/manifest.h5")
    assert len(m) == 8 and m.teachers == [] and not (work / "results/teachers").exists()
    assert not any(r["has_teacher_depth"] or r["has_teacher_depth_relative"] or r["has_seg"] for r in m.records)

    # Teachers added to the same config: the shards stay, only teacher jobs and the merge are planned.
    later = real_config(kitchen, teachers={"device": "cpu", "precision": "fp32", "models": [
        {"id": "da2", "backend": "da2", "weights": "random", "arch": "small"}]})
    plan = job_counts(snakemake(work, "-n", config=later).stdout)
    shards = len(list((work / "results/shards").glob("shard-*.h5")))
    assert plan == {"teacher_settings": 1, "teacher_sanity": 1, "teacher_depth": shards, "merge_manifest": 1,
                    "all": 1}
