"""`distillery evaluate`: every number of the JSON recomputed with plain numpy from the dumped
predictions and the manifest; test split only; frames.jsonl; readable errors.

The recomputation below deliberately uses nothing from distillery but the CLI
that produced the files: it re-derives references, regions, the fusion, the
per-image and pooled metrics, the sequence bootstrap and the confusion matrix
from docs/evaluation.md alone.
"""

from __future__ import annotations

import json
import math
import shutil

import h5py
import numpy as np
import pytest
import torch
from test_student_data import write_manifest

from distillery.cli import main
from distillery.student.checkpoint import atomic_save, snapshot, weights_file
from distillery.student.config import TrainConfig
from distillery.student.losses import StudentLoss
from distillery.student.model import build_student

CLASSES = ("floor", "wall", "person", "furniture", "glass", "other")
BINS = {"near": (0.3, 1.0), "mid": (1.0, 2.0), "far": (2.0, 4.0)}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A two-dataset manifest (train/val/test sequences), a random-weight student, one evaluation."""
    tmp = tmp_path_factory.mktemp("eval")
    manifest = write_manifest(tmp / "manifest.h5", frames=24, size=(48, 64), datasets=("rooms", "halls"),
                              splits=("train", "val", "test"))
    with h5py.File(manifest, "a") as f:  # rooms/seq2/0005 (test): ToF confidence too low everywhere
        row = list(f["key"].asstr()[:]).index("rooms/seq2/0005")
        f["tof_confidence"][row] = 0.3
        f["tof_depth"][row + 6, :2] = np.nan  # rooms/seq5/0011: NaN ToF rows
        f["truth_depth"][row - 1] = f["truth_depth"][row - 1] * 0.4  # rooms/seq2/0004: near-range truth
        f.attrs["content_id"] = "c0ffee"  # what the merge records
        f.attrs["teachers"] = json.dumps([{"id": "sim_da3", "task": "depth", "kind": "metric"}])
    torch.manual_seed(0)
    cfg = TrainConfig(backbone="mobilenetv3_small", encoder_weights="random")
    model = build_student(cfg)
    ckpt = tmp / "train" / "V3" / "best.pt"
    ckpt.parent.mkdir(parents=True)
    atomic_save(weights_file(snapshot(model, StudentLoss()), cfg, {}, 0, 0, "random"), ckpt)
    out = tmp / "evaluation" / "V3" / "rooms.json"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--manifest", manifest, "--set", "rooms", "--out", str(out),
                 "--dump-predictions", str(tmp / "dump"), "--bootstrap", "200", "--seed", "3", "--quiet"]) == 0
    return {"manifest": manifest, "checkpoint": ckpt, "json": json.loads(out.read_text()),
            "frames": [json.loads(line) for line in (out.parent / "rooms.frames.jsonl").read_text().splitlines()],
            "npz": dict(np.load(tmp / "dump" / "rooms.predictions.npz")), "tmp": tmp}


def _frame_inputs(f: h5py.File, row: int) -> dict:
    """A frame's references as the docs define them (non-finite and negative depth read as 0)."""
    def depth(name, flag=None):
        if flag is not None and not f[flag][row]:
            return np.zeros(f["tof_depth"].shape[1:], np.float64)
        return np.clip(np.nan_to_num(f[name][row].astype(np.float32), nan=0, posinf=0, neginf=0), 0, None)

    return {"tof": depth("tof_depth"), "conf": depth("tof_confidence"),
            "truth": depth("truth_depth", "has_truth_depth"), "teacher": depth("teacher_depth", "has_teacher_depth"),
            "label": f["truth_label"][row].astype(np.int64) if f["has_truth_label"][row] else None}


def _fuse(student, tof, conf):
    trusted = (conf >= 0.5) & (tof > 0.05) & (tof < 10)
    ok = trusted & np.isfinite(student) & (student > 0)
    s = float(np.median(tof[ok] / student[ok])) if ok.any() else 1.0
    return np.where(trusted, tof, s * np.where(np.isfinite(student) & (student > 0), student, 0)), trusted


def _sums(pred, ref, mask):
    p, t = np.maximum(pred[mask].astype(np.float64), 1e-6), ref[mask]
    ratio = np.maximum(p / t, t / p)
    return np.array([mask.sum(), ((p - t) ** 2).sum(), np.abs(p - t).sum(), (np.abs(p - t) / t).sum(),
                     (ratio < 1.25).sum(), (ratio < 1.25**2).sum(), (ratio < 1.25**3).sum()], np.float64)


def _regions(ref, valid, trusted):
    out = {"all": valid}
    out.update({k: valid & (ref >= lo) & (ref < hi) for k, (lo, hi) in BINS.items()})
    return out | {"tof_invalid": valid & ~trusted, "tof_valid": valid & trusted}


def _stats(sums, w):
    """Every metric under frame weights w [R, F] from per-frame sums [F, 7]."""
    n = sums[:, 0]
    has = n > 0
    safe = np.where(has, n, 1)
    per = {"rmse": np.sqrt(sums[:, 1] / safe), "mae": sums[:, 2] / safe, "absrel": sums[:, 3] / safe,
           "delta1": sums[:, 4] / safe, "delta2": sums[:, 5] / safe, "delta3": sums[:, 6] / safe}
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {k: (w * np.where(has, v, 0)).sum(1) / (w * has).sum(1) for k, v in per.items()}
        out["rmse_pooled"] = np.sqrt((w * sums[:, 1]).sum(1) / (w * n).sum(1))
    return out


def _check(entry, values, sequences, alone=None):
    """A 95 % percentile interval from five or more sequences; from fewer, the range of the sequences'
    values (`alone`: the statistic of each sequence by itself), and never a ci95."""
    assert entry["mean"] == pytest.approx(values[0], rel=1e-6, abs=1e-9)
    kept = values[1:][np.isfinite(values[1:])]
    if sequences >= 5:
        assert entry["ci95"] == pytest.approx(list(np.percentile(kept, [2.5, 97.5])), rel=1e-6, abs=1e-9)
        assert entry["interval"] == f"95 % bootstrap over {sequences} sequences"
    else:
        assert entry["ci95"] is None and entry["interval"] == f"range of {sequences} sequences"
        alone = alone[np.isfinite(alone)]
        assert entry["range"] == pytest.approx([alone.min(), alone.max()], rel=1e-6, abs=1e-9)


def test_every_number_recomputes_from_predictions_and_manifest(evaluated):
    result, npz = evaluated["json"], evaluated["npz"]
    with h5py.File(evaluated["manifest"], "r") as f:
        keys, splits = list(f["key"].asstr()[:]), f["split"].asstr()[:]
        rows = [keys.index(k) for k in npz["keys"]]
        assert {splits[r] for r in rows} == {"test"} and {f["dataset"].asstr()[r] for r in rows} == {"rooms"}
        test_rooms = [i for i, k in enumerate(keys) if splits[i] == "test" and k.startswith("rooms/")]
        assert sorted(rows) == test_rooms
        frames = [_frame_inputs(f, r) for r in rows]
        seq_ids = [f"rooms/{f['sequence'].asstr()[r]}" for r in rows]
    sums = {("depth", r): [] for r in ("truth", "tof", "teacher")} | {("fused", r): [] for r in ("truth", "teacher")}
    confusion = np.zeros((len(rows), 6, 6))
    for i, fr in enumerate(frames):
        fused, trusted = _fuse(npz["depth"][i].astype(np.float64), fr["tof"], fr["conf"])
        np.testing.assert_allclose(npz["fused"][i], fused, rtol=1e-5, atol=1e-6)
        refs = {"truth": (fr["truth"], fr["truth"] > 0), "tof": (fr["tof"], (fr["tof"] >= 0.1) & (fr["tof"] <= 5)),
                "teacher": (fr["teacher"], fr["teacher"] > 0)}
        for (kind, ref), acc in sums.items():
            pred = npz["depth"][i] if kind == "depth" else npz["fused"][i]
            acc.append([_sums(pred, refs[ref][0], m) for m in _regions(*refs[ref], trusted).values()])
        keep = fr["label"] != 255
        np.add.at(confusion[i], (fr["label"][keep], npz["segmentation"][i][keep].astype(np.int64)), 1)
    # the documented bootstrap: sorted sequences, one integers() draw, counts as frame weights
    sequences = sorted(set(seq_ids))
    draws = np.random.default_rng(3).integers(0, len(sequences), size=(200, len(sequences)))
    counts = np.stack([np.bincount(d, minlength=len(sequences)) for d in draws])
    w = np.concatenate([np.ones((1, len(rows))), counts[:, [sequences.index(s) for s in seq_ids]]])
    alone = np.array([[float(s == q) for s in seq_ids] for q in sequences])  # each sequence by itself
    checked = 0
    for (kind, ref), acc in sums.items():
        acc = np.asarray(acc)  # [F, regions, 7]
        for j, region in enumerate(("all", "near", "mid", "far", "tof_invalid", "tof_valid")):
            if acc[:, j, 0].sum() == 0:
                assert region not in result[kind].get(ref, {})
                continue
            entry = result[kind][ref][region]
            assert entry["pixels"] == acc[:, j, 0].sum()
            by_sequence = _stats(acc[:, j], alone)
            for metric, values in _stats(acc[:, j], w).items():
                _check(entry[metric], values, len(sequences), by_sequence[metric])
                checked += 1
    assert checked >= 5 * 7 * 5  # truth, tof, teacher, fused truth, fused teacher: most regions present
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    total = confusion.sum(0)
    union = total.sum(0) + total.sum(1) - np.diag(total)
    iou = np.where(union > 0, np.diag(total) / np.where(union > 0, union, 1), np.nan)
    seg = result["segmentation"]
    assert seg["reference"] == "truth_label" and seg["confusion"] == total.astype(int).tolist()
    for name, value in zip(CLASSES, iou):
        got = seg["per_class_iou"][name]
        assert got is None if math.isnan(value) else got == pytest.approx(value)
    resampled = np.einsum("rf,fij->rij", w, confusion)
    r_tp = np.diagonal(resampled, axis1=1, axis2=2)
    r_union = resampled.sum(1) + resampled.sum(2) - r_tp
    with np.errstate(invalid="ignore", divide="ignore"):
        per_seq = np.einsum("rf,fij->rij", alone, confusion)
        s_tp = np.diagonal(per_seq, axis1=1, axis2=2)
        s_union = per_seq.sum(1) + per_seq.sum(2) - s_tp
        _check(seg["miou"], np.nanmean(np.where(r_union > 0, r_tp / r_union, np.nan), axis=1), len(sequences),
               np.nanmean(np.where(s_union > 0, s_tp / s_union, np.nan), axis=1))
    assert tp.sum() == np.trace(total)


def test_header_frames_and_fusion_flags(evaluated):
    result, frames = evaluated["json"], evaluated["frames"]
    assert result["version"] == "V3" and result["set"] == "rooms" and result["split"] == "test"
    assert result["frames"] == len(frames) == 8 and result["sequences"] == 4
    assert result["bootstrap"] == {"resamples": 200, "seed": 3, "unit": "sequence"}
    assert len(result["checkpoint_sha256"]) == 64 and result["manifest_content_id"] == "c0ffee"
    assert result["teachers"] == [{"id": "sim_da3", "task": "depth", "kind": "metric"}]
    by_key = {f["key"]: f for f in frames}
    assert by_key["rooms/seq2/0005"]["fusion"] == {"scale": 1.0, "no_trusted": True}
    assert result["fusion"]["no_trusted_frames"] == 1
    assert "teacher" not in by_key["rooms/seq2/0005"]["depth"]  # odd frames have no teacher depth
    assert set(by_key["rooms/seq2/0004"]["depth"]) == {"truth", "tof", "teacher"}
    assert list(evaluated["npz"]["keys"]) == [f["key"] for f in frames]
    for name in ("depth", "fused"):
        assert evaluated["npz"][name].dtype == np.float32 and np.isfinite(evaluated["npz"][name]).all()


def test_a_set_without_test_frames_fails_naming_it(evaluated, tmp_path, capsys):
    manifest = shutil.copy(evaluated["manifest"], tmp_path / "manifest.h5")
    args = ["evaluate", "--checkpoint", str(evaluated["checkpoint"]), "--manifest", str(manifest),
            "--out", str(tmp_path / "x.json"), "--quiet"]
    assert main([*args, "--set", "nowhere"]) == 1
    assert "no dataset 'nowhere'" in capsys.readouterr().err
    with h5py.File(manifest, "a") as f:
        split = f["split"].asstr()[:]
        f["split"][:] = np.where(split == "test", "val", split).astype(object)
    assert main([*args, "--set", "halls"]) == 1
    assert "has no 'test' frames" in capsys.readouterr().err


def test_fusion_cli_on_npy_files(tmp_path, capsys):
    student = np.full((2, 4, 5), 2.0, np.float32)
    tof = np.zeros_like(student)
    tof[0, :2] = 3.0
    for name, array in (("s", student), ("t", tof), ("c", np.ones_like(student))):
        np.save(tmp_path / f"{name}.npy", array)
    out = tmp_path / "fused.npz"
    assert main(["fusion", "--student", str(tmp_path / "s.npy"), "--tof", str(tmp_path / "t.npy"),
                 "--confidence", str(tmp_path / "c.npy"), "--out", str(out)]) == 0
    fused = np.load(out)
    assert fused["no_trusted"].tolist() == [False, True] and fused["scale"].tolist() == [1.5, 1.0]
    np.testing.assert_allclose(fused["fused"][0, 2:], 3.0)
    assert json.loads(capsys.readouterr().out)["no_trusted_frames"] == 1
    assert main(["fusion", "--student", str(tmp_path / "s.npy"), "--checkpoint", "x", "--out", str(out)]) == 1


def test_fusion_cli_on_a_manifest_split_matches_the_evaluation_dump(evaluated, tmp_path):
    out = tmp_path / "fused.npz"
    assert main(["fusion", "--checkpoint", str(evaluated["checkpoint"]), "--manifest", evaluated["manifest"],
                 "--split", "test", "--set", "rooms", "--out", str(out), "--quiet"]) == 0
    fused = np.load(out)
    assert list(fused["keys"]) == list(evaluated["npz"]["keys"])
    np.testing.assert_allclose(fused["student"], evaluated["npz"]["depth"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused["fused"], evaluated["npz"]["fused"], rtol=1e-5, atol=1e-6)
    assert fused["no_trusted"].sum() == 1


@pytest.mark.parametrize("count", [1, 2, 4, 5, 8])
def test_an_interval_from_fewer_than_five_sequences_is_a_labelled_range(count):
    from distillery.evaluation.bootstrap import depth_summary, sequence_weights

    rng = np.random.default_rng(count)
    ids = [f"w/s{i}" for i in range(count) for _ in range(3)]  # three frames per sequence
    sums = np.zeros((len(ids), 7))
    sums[:, 0] = 100
    sums[:, 1] = 100 * rng.uniform(0.1, 1.0, len(ids)) ** 2
    weights, sequences = sequence_weights(ids, 300, 0)
    rmse = depth_summary(sums, weights)["rmse"]
    assert len(sequences) == count
    if count < 5:
        assert rmse["ci95"] is None and rmse["interval"] == f"range of {count} sequence{'s' * (count != 1)}"
        per_sequence = [np.mean(np.sqrt(sums[3 * i:3 * i + 3, 1] / 100)) for i in range(count)]
        assert rmse["range"] == pytest.approx([min(per_sequence), max(per_sequence)])
    else:
        assert rmse["interval"] == f"95 % bootstrap over {count} sequences" and "range" not in rmse
        assert rmse["ci95"][0] < rmse["mean"] < rmse["ci95"][1]
