"""A run's identity is its inputs' content: manifest content ids, resume or fresh start, runs moved aside."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from frames_util import write_frames, write_shard_list
from test_student_data import write_manifest

from distillery.cli import main as distillery_main
from distillery.ingest.pack import PackSettings, pack_shard
from distillery.manifest import Manifest
from distillery.manifest.content import content_id
from distillery.manifest.merge import merge_manifest
from distillery.student.checkpoint import load_checkpoint
from distillery.student.config import TrainConfig
from distillery.student.rundir import run_fingerprint
from distillery.student.train import setup_run, train


def _shards(tmp_path, sizes, settings=PackSettings(height=24, width=32)):
    rows = write_frames(tmp_path / "raw", sum(sizes))
    paths, quarantines, start = [], [], 0
    for i, n in enumerate(sizes):
        frames = write_shard_list(tmp_path / f"s{i}.jsonl", rows[start:start + n])
        start += n
        paths.append(str(tmp_path / f"s{i}.h5"))
        quarantines.append(str(tmp_path / f"s{i}.q.jsonl"))
        pack_shard(frames, paths[-1], quarantines[-1], settings, progress=False)
    return paths, quarantines


def _merge(out, paths, quarantines) -> str:
    merge_manifest(paths, quarantines, str(out / "manifest.h5"), str(out / "manifest.jsonl"),
                   str(out / "quarantine.jsonl"), str(out / "summary.json"), 0.5, progress=False)
    return str(out / "manifest.h5")


def test_merge_writes_a_content_id_that_follows_content_not_path(tmp_path):
    paths, qs = _shards(tmp_path, [2, 2])
    first = Manifest(_merge(tmp_path / "a", paths, qs)).content_id
    assert len(first) == 64 and int(first, 16) >= 0
    again = Manifest(_merge(tmp_path / "b", paths, qs)).content_id  # the same data merged elsewhere
    assert again == first
    shutil.copytree(tmp_path / "a", tmp_path / "moved")
    assert Manifest(tmp_path / "moved" / "manifest.h5").content_id == first
    assert Manifest(_merge(tmp_path / "c", paths[:1], qs[:1])).content_id != first  # a shard fewer
    other, other_qs = _shards(tmp_path / "repacked", [2, 2], PackSettings(height=24, width=32, max_depth_m=5.0))
    assert Manifest(_merge(tmp_path / "d", [paths[0], other[1]], [qs[0], other_qs[1]])).content_id != first


def test_content_id_covers_every_layer_in_any_order(tmp_path):
    shard, a, b = (tmp_path / n for n in ("s.h5", "a.h5", "b.h5"))
    shard.write_bytes(b"shard")
    a.write_bytes(b"depth labels")
    b.write_bytes(b"segment labels")
    base = content_id([shard], [a, b])
    assert content_id([shard], [b, a]) == base and content_id([shard]) != base
    a.write_bytes(b"relabelled depth")
    assert content_id([shard], [a, b]) != base


def tiny(**overrides) -> TrainConfig:
    cfg = TrainConfig(backbone="mobilenetv3_small", encoder_weights="random", epochs=1, batch_size=2,
                      samples_per_epoch=4, max_val_frames=2, num_workers=0, freeze_encoder_epochs=0,
                      progress=False, log_every_steps=1)
    return dataclasses.replace(cfg, **overrides)


@pytest.fixture()
def manifest(tmp_path):
    (tmp_path / "data").mkdir()
    return write_manifest(tmp_path / "data" / "m.h5", frames=6, size=(32, 48))


def _steps(out) -> list[int]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows if r["kind"] == "train"]


def test_finished_run_is_retrained_and_the_old_one_kept_aside(manifest, tmp_path):
    out = tmp_path / "run"
    first = train(setup_run(tiny(), [manifest], out))
    before = load_checkpoint(out / "best.pt")
    (out / "best.pt").unlink()  # what Snakemake does to the outputs of a job it re-runs
    rerun = setup_run(tiny(), [manifest], out)
    assert rerun.progress.global_step == 0  # not "resumed" at the end of the finished run
    assert train(rerun)["global_step"] == first["global_step"] == 2
    assert _steps(out) == [1, 2]
    after = load_checkpoint(out / "best.pt")
    assert after["run"]["started"] >= before["run"]["started"] and after["run"]["fingerprint"] == rerun.fingerprint
    [archived] = list((out / "previous").iterdir())
    assert {"last.pt", "best.pt", "metrics.jsonl", "tensorboard", "archived.json"} <= {p.name for p in
                                                                                         archived.iterdir()}
    assert "finished" in json.loads((archived / "archived.json").read_text())["reason"]
    assert load_checkpoint(archived / "best.pt")["global_step"] == 2  # rebuilt from the archived last.pt


def test_interrupted_run_resumes_where_its_manifest_moved_but_not_on_other_data(manifest, tmp_path):
    out = tmp_path / "run"
    assert train(setup_run(tiny(max_steps=1), [manifest], out))["status"] == "stopped"
    moved = tmp_path / "elsewhere" / "m.h5"
    moved.parent.mkdir()
    shutil.copy(manifest, moved)
    assert setup_run(tiny(), [str(moved)], out).progress.global_step == 1  # same content: resume
    assert not (out / "previous").exists()
    write_manifest(moved, frames=6, size=(32, 48), seed=1)  # other pixels: another content
    fresh = setup_run(tiny(), [str(moved)], out)
    assert fresh.progress.global_step == 0
    [archived] = list((out / "previous").iterdir())
    assert "inputs" in json.loads((archived / "archived.json").read_text())["reason"]


def test_fine_tune_identity_is_the_parent_content_not_its_path(manifest, tmp_path):
    out = tmp_path / "parent"
    train(setup_run(tiny(), [manifest], out))
    copy = tmp_path / "copy.pt"
    shutil.copy(out / "best.pt", copy)
    a, inputs = run_fingerprint(tiny(init_from=str(out / "best.pt")), [manifest])
    assert run_fingerprint(tiny(init_from=str(copy)), [manifest])[0] == a
    assert inputs["parent_sha256"] and len(inputs["manifests"]) == 1
    train(setup_run(tiny(lr=5e-4), [manifest], out))  # the parent retrained: other weights
    assert run_fingerprint(tiny(init_from=str(out / "best.pt")), [manifest])[0] != a


def test_no_resume_and_archive_run_move_the_run_aside(manifest, tmp_path, capsys):
    out = tmp_path / "run"
    train(setup_run(tiny(max_steps=1), [manifest], out))
    fresh = setup_run(tiny(max_steps=1), [manifest], out, resume="never")
    assert fresh.progress.global_step == 0
    train(fresh)
    assert len(list((out / "previous").iterdir())) == 1
    assert distillery_main(["archive-run", str(out)]) == 0
    dest = json.loads(capsys.readouterr().out)["archived_to"]
    assert dest and Path(dest).is_dir() and not (out / "last.pt").exists()
    assert len(list((out / "previous").iterdir())) == 2 and {p.name for p in out.iterdir()} == {"previous"}
