"""Tests of `distillery synth`: the synthetic RGB-D world, its ToF simulation and its files."""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from distillery.ingest.frames import FrameRef, Intrinsics, load_frame
from distillery.synth import CLASS_NAMES, generate_world, synthesize_frame, tof_invalid_share
from distillery.synth import cli as synth_cli
from distillery.synth import world as synth_world
from distillery.synth.render import Rendering
from distillery.synth.scene import FLOOR, GLASS, PERSON, WALL
from distillery.synth.tof import noise_sigma, simulate
from distillery.synth.world import sensor_for

SMALL = dict(height=120, width=160, progress=False)
SEEDS = (0, 1, 2, 3)
SAMPLE_FRAMES = (0, 75)


def _files(root: Path) -> dict[str, bytes]:
    """Every file under root (by relative path) with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _rotation_from_quaternion(x, y, z, w) -> np.ndarray:
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _flat_rendering(depth: float, nir: float, cos: float = 1.0, polished: bool = False) -> Rendering:
    """A 40 x 40 rendering of one flat surface, to test the ToF model on its own."""
    shape = (40, 40)
    full = lambda v, dtype=np.float32: np.full(shape, v, dtype)  # noqa: E731
    return Rendering(rgb=np.zeros((*shape, 3), np.uint8), depth=full(depth), semantics=full(WALL, np.uint8),
                     instances=full(0, np.uint16), ray_length=full(1.0), cos_incidence=full(cos), nir=full(nir),
                     polished=full(polished, bool), glass=full(False, bool), behind_depth=full(depth), behind_cos=full(cos))


@pytest.fixture(scope="module")
def corridor_world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corridor-s3"
    generate_world(out, "corridor", 3, 2, 6, **SMALL)
    return out


@pytest.fixture(scope="module")
def sampled() -> dict[str, list]:
    """Full-size frames of a few seeds of each family (shared by the ToF statistics tests)."""
    return {family: [synthesize_frame(family, seed, 0, frame) for seed in SEEDS for frame in SAMPLE_FRAMES]
            for family in ("corridor", "room")}


def test_layout_types_and_shapes(corridor_world):
    world = json.loads((corridor_world / "world.json").read_text())
    assert world["format"] == "distillery-synth" and world["version"] == 1
    assert (world["family"], world["seed"], world["frames_per_sequence"]) == ("corridor", 3, 6)
    assert world["sequences"] == ["corridor-s3-00", "corridor-s3-01"]
    assert (world["height"], world["width"]) == (120, 160)
    for name in world["sequences"]:
        seq = corridor_world / name
        k = json.loads((seq / "intrinsics.json").read_text())
        assert (k["width"], k["height"]) == (160, 120) and k["fx"] == k["fy"] > 0
        stamps = (seq / "timestamps.txt").read_text().splitlines()
        assert stamps[0] == "000000 0.000000" and stamps[3] == "000003 0.100000" and len(stamps) == 6
        for frame in range(6):
            paths = synth_world.frame_paths(seq, frame)
            with Image.open(paths["rgb"]) as im:
                assert im.mode == "RGB" and im.size == (160, 120)
            with Image.open(paths["truth_semantics"]) as im:
                assert im.mode == "L"
                semantics = np.asarray(im)
            with Image.open(paths["truth_instances"]) as im:
                assert im.mode == "I;16"
                instances = np.asarray(im)
            depth, confidence, truth = (np.load(paths[k]) for k in ("depth", "confidence", "truth_depth"))
            for array in (depth, confidence, truth):
                assert array.dtype == np.float32 and array.shape == (120, 160)
            assert semantics.max() <= 5 and (truth > 0).all() and np.isfinite(truth).all()
            assert confidence.min() >= 0 and confidence.max() <= 1
            assert (instances[np.isin(semantics, [PERSON, 3, GLASS])] > 0).all()
            assert (instances[semantics == FLOOR] == 0).all()


def test_frames_load_with_the_project_reader(corridor_world):
    seq = corridor_world / "corridor-s3-01"
    paths = synth_world.frame_paths(seq, 2)
    k = Intrinsics(**json.loads((seq / "intrinsics.json").read_text()))
    ref = FrameRef("synth", seq.name, "000002", str(paths["rgb"]), str(paths["depth"]), confidence=str(paths["confidence"]),
                   intrinsics=k, truth_depth=str(paths["truth_depth"]), truth_semantics=str(paths["truth_semantics"]))
    frame = load_frame(ref, max_depth_m=50.0)
    assert frame.rgb.shape == (120, 160, 3) and not frame.confidence_derived
    assert frame.truth_semantics.shape == frame.truth_depth.shape == (120, 160)


def test_truth_depth_pose_and_intrinsics_agree(corridor_world):
    """Floor pixels back-projected with intrinsics.json and poses.txt land on the plane z = 0."""
    seq = corridor_world / "corridor-s3-00"
    k = json.loads((seq / "intrinsics.json").read_text())
    for line in (seq / "poses.txt").read_text().splitlines():
        fid, *values = line.split()
        t, (x, y, z, w) = np.array(values[:3], float), np.array(values[3:], float)
        assert abs(x * x + y * y + z * z + w * w - 1) < 1e-6
        rotation = _rotation_from_quaternion(x, y, z, w)
        depth = np.load(seq / "truth" / "depth" / f"{fid}.npy")
        floor = np.asarray(Image.open(seq / "truth" / "semantics" / f"{fid}.png")) == FLOOR
        v, u = np.nonzero(floor)
        d = depth[v, u]
        cam = np.stack([(u - k["cx"]) / k["fx"] * d, (v - k["cy"]) / k["fy"] * d, d])
        world_z = (rotation @ cam)[2] + t[2]
        assert floor.mean() > 0.1 and np.percentile(np.abs(world_z), 95) < 0.01  # rugs are 8 mm thick


def test_quaternions_round_trip_through_the_turns():
    """Poses along a whole corridor run (turning round at its ends) and a room loop survive poses.txt's quaternion."""
    for family, seed in (("corridor", 2), ("room", 2)):
        for frame in range(0, 3000, 37):
            pose = synth_world.camera_pose(family, seed, 0, frame)
            q = synth_world.quaternion_xyzw(pose[:3, :3])
            assert q[3] >= 0 and np.allclose(_rotation_from_quaternion(*q), pose[:3, :3], atol=1e-9)
    half_turn = np.diag([-1.0, -1.0, 1.0])
    assert np.allclose(_rotation_from_quaternion(*synth_world.quaternion_xyzw(half_turn)), half_turn)


def test_same_seed_is_bit_identical_and_other_seed_differs(corridor_world, tmp_path):
    again = tmp_path / "again"
    generate_world(again, "corridor", 3, 2, 6, **SMALL)
    reference, repeat = _files(corridor_world), _files(again)
    assert reference.keys() == repeat.keys() and len(reference) == 2 * (6 * 6 + 3) + 1
    assert all(reference[name] == repeat[name] for name in reference)
    other = tmp_path / "other"
    generate_world(other, "corridor", 4, 1, 2, **SMALL)
    for key in ("rgb", "truth_depth", "depth"):
        a = synth_world.frame_paths(corridor_world / "corridor-s3-00", 1)[key].read_bytes()
        b = synth_world.frame_paths(other / "corridor-s4-00", 1)[key].read_bytes()
        assert a != b


def test_sequences_of_a_world_are_different_scenes():
    a, b = synthesize_frame("room", 5, 0, 0, 60, 80), synthesize_frame("room", 5, 1, 0, 60, 80)
    assert not np.array_equal(a.depth, b.depth)
    assert a.intrinsics == b.intrinsics  # one camera per world


def test_corridor_invalid_share_matches_the_real_corridor(sampled):
    shares = [tof_invalid_share(f.tof_depth) for f in sampled["corridor"]]
    assert 0.72 <= np.mean(shares) <= 0.83, shares


def test_room_invalid_share_is_clearly_lower(sampled):
    corridor = np.mean([tof_invalid_share(f.tof_depth) for f in sampled["corridor"]])
    room = np.mean([tof_invalid_share(f.tof_depth) for f in sampled["room"]])
    assert 0.25 <= room <= 0.55 and room < corridor - 0.15


def test_corridor_semantics_has_floor_wall_and_glass(corridor_world, sampled):
    seen = set()
    for path in corridor_world.rglob("truth/semantics/*.png"):
        seen |= set(np.unique(np.asarray(Image.open(path))).tolist())
    assert {FLOOR, WALL, GLASS} <= seen and seen <= set(range(len(CLASS_NAMES)))
    for frame in sampled["corridor"][::2]:  # first frame of every seed shows glass
        assert {FLOOR, WALL, GLASS} <= set(np.unique(frame.semantics).tolist())


def _check_glass_contract(frame, sensor) -> tuple[int, int]:
    """Valid ToF on glass must carry the depth behind the glass (within noise), never the glass's own."""
    glass = frame.semantics == GLASS
    valid = glass & (frame.tof_depth > 0)
    behind = frame.rendering.behind_depth[valid]
    sigma = noise_sigma(sensor, behind * frame.rendering.ray_length[valid])
    assert (np.abs(frame.tof_depth[valid] - behind) <= 6 * sigma + 1e-4).all()
    assert (behind >= frame.depth[valid]).all()  # truth depth is the glass, in front of what ToF reports
    return int(glass.sum()), int(valid.sum())


def test_glass_is_invalid_in_rendered_frames(sampled):
    totals = np.zeros(2)
    for family, frames in sampled.items():
        seeds = [s for s in SEEDS for _ in SAMPLE_FRAMES]
        for seed, frame in zip(seeds, frames):
            totals += _check_glass_contract(frame, sensor_for(family, seed))
    assert totals[0] > 1000 and totals[1] <= 0.05 * totals[0]  # multipath through glass is occasional


def test_multipath_through_glass_reports_the_surface_behind():
    """A pane in front of a near bright wall: with multipath the ToF sees the wall, else nothing."""
    rendering = replace(_flat_rendering(1.6, 0.8), depth=np.full((40, 40), 0.8, np.float32),
                        semantics=np.full((40, 40), GLASS, np.uint8), instances=np.full((40, 40), 7, np.uint16),
                        glass=np.ones((40, 40), bool))
    sensor = sensor_for("corridor", 0)
    frame = SimpleNamespace(semantics=rendering.semantics, rendering=rendering, depth=rendering.depth)
    for share, expect_valid in ((0.0, False), (1.0, True)):
        depth, confidence = simulate(rendering, replace(sensor, multipath_share=share), np.random.default_rng(0))
        frame.tof_depth = depth
        glass, valid = _check_glass_contract(frame, sensor)
        assert (valid > 0.9 * glass) if expect_valid else valid == 0
        assert (np.abs(depth[depth > 0] - 1.6) < 0.1).all()  # the wall behind, never the pane at 0.8 m
        assert (confidence[depth == 0] == 0).all() and (confidence[depth > 0] <= 0.5).all()


@pytest.mark.parametrize("depth, nir, cos, polished, valid", [
    (1.5, 0.6, 1.0, False, True),  # a bright wall in front of the robot
    (1.5, 0.02, 1.0, False, False),  # a dark surface
    (6.0, 0.9, 1.0, False, False),  # beyond the range limit
    (1.0, 0.6, 0.3, True, False),  # polished floor at grazing incidence
    (1.0, 0.6, 0.3, False, True),  # the same incidence on a matte surface
])
def test_tof_failure_modes(depth, nir, cos, polished, valid):
    tof_depth, confidence = simulate(_flat_rendering(depth, nir, cos, polished), sensor_for("room", 0), np.random.default_rng(1))
    share_valid = np.mean(tof_depth > 0)
    assert share_valid > 0.95 if valid else share_valid == 0
    assert (confidence[tof_depth == 0] == 0).all()


def test_confidence_is_zero_exactly_where_depth_is_invalid(sampled):
    for frame in sampled["corridor"] + sampled["room"]:
        depth, confidence = frame.tof_depth, frame.tof_confidence
        assert confidence.dtype == np.float32 and 0 <= confidence.min() and confidence.max() <= 1
        assert (confidence[depth == 0] == 0).all() and (confidence[depth > 0] > 0).all()


def test_tof_noise_grows_with_distance(sampled):
    errors = {"near": [], "far": []}
    for frame in sampled["corridor"] + sampled["room"]:
        r = frame.rendering
        ok = (frame.tof_depth > 0) & ~r.glass & (frame.tof_confidence > 0.15)
        rel = frame.tof_depth[ok] / frame.depth[ok] - 1
        rng = (frame.depth * r.ray_length)[ok]
        errors["near"].append(rel[(rng > 0.5) & (rng < 1.5)] * rng[(rng > 0.5) & (rng < 1.5)])
        errors["far"].append(rel[(rng > 2.5) & (rng < 4.0)] * rng[(rng > 2.5) & (rng < 4.0)])
    mad = {k: 1.4826 * np.median(np.abs(np.concatenate(v))) for k, v in errors.items()}
    assert mad["far"] > 3 * mad["near"] > 0, mad


def test_flying_pixels_and_polished_floor(sampled):
    mixed = 0
    seeds = [s for s in SEEDS for _ in SAMPLE_FRAMES]
    for seed, frame in zip(seeds, sampled["corridor"]):
        d = frame.rendering.behind_depth
        pad = np.pad(d, 1, mode="edge")
        shifts = [pad[1 + dv:1 + dv + d.shape[0], 1 + du:1 + du + d.shape[1]] for dv in (-1, 0, 1) for du in (-1, 0, 1)]
        near, far = np.min(shifts, 0), np.max(shifts, 0)
        between = (frame.tof_depth > near * 1.1) & (frame.tof_depth < far * 0.9) & (far > 1.3 * near)
        mixed += between.sum()
        assert (frame.tof_confidence[between] < 0.35).all()
        limit = np.cos(np.radians(sensor_for("corridor", seed).polished_max_incidence_deg))
        floor = frame.rendering.polished & (frame.rendering.behind_cos < limit)
        assert floor.mean() > 0.1
        assert (frame.tof_depth[floor] == 0).all()  # grazing polished floor never returns
    assert mixed > 20


def test_resume_rewrites_only_what_is_missing(tmp_path):
    out = tmp_path / "w"
    generate_world(out, "room", 2, 1, 3, height=48, width=64, progress=False)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    summary = generate_world(out, "room", 2, 1, 3, height=48, width=64, progress=False)
    assert summary["frames_written"] == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    victim = synth_world.frame_paths(out / "room-s2-00", 1)["truth_instances"]
    content = victim.read_bytes()
    victim.unlink()
    summary = generate_world(out, "room", 2, 1, 3, height=48, width=64, progress=False)
    assert summary["frames_written"] == 1 and victim.read_bytes() == content
    changed = {p for p in before if p.stat().st_mtime_ns != before[p]}
    assert changed == {victim, out / "world.json"}  # the other files of frame 1 were kept as they were


def test_interrupted_run_leaves_no_partial_files_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "w"
    calls = {"n": 0}
    real_replace = synth_world.os.replace

    def failing_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 20:
            raise KeyboardInterrupt("simulated interruption")
        return real_replace(src, dst)

    monkeypatch.setattr(synth_world.os, "replace", failing_replace)
    with pytest.raises(KeyboardInterrupt):
        generate_world(out, "corridor", 1, 1, 4, height=48, width=64, progress=False)
    monkeypatch.undo()
    assert not (out / "world.json").exists() and not list(out.rglob("*.tmp"))
    summary = generate_world(out, "corridor", 1, 1, 4, height=48, width=64, progress=False)
    assert 0 < summary["frames_written"] < 4
    fresh = tmp_path / "fresh"
    generate_world(fresh, "corridor", 1, 1, 4, height=48, width=64, progress=False)
    assert _files(out) == _files(fresh) and not list(out.rglob("*.tmp"))


def test_parallel_workers_write_the_same_files(tmp_path):
    generate_world(tmp_path / "one", "room", 7, 2, 3, height=48, width=64, progress=False)
    generate_world(tmp_path / "two", "room", 7, 2, 3, height=48, width=64, progress=False, workers=2)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


def test_a_different_world_in_the_same_folder_is_refused(tmp_path):
    generate_world(tmp_path, "room", 1, 1, 2, height=48, width=64, progress=False)
    with pytest.raises(FileExistsError):
        generate_world(tmp_path, "room", 1, 1, 3, height=48, width=64, progress=False)
    shutil.rmtree(tmp_path / "room-s1-00" / "rgb")
    (tmp_path / "world.json").unlink()
    with pytest.raises(FileExistsError):  # no world.json, but the frames are of another size
        generate_world(tmp_path, "room", 1, 1, 2, height=64, width=64, progress=False)
    with pytest.raises(ValueError):
        generate_world(tmp_path / "x", "garden", 1, 1, 2, progress=False)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distillery")
    synth_cli.register(parser.add_subparsers(dest="command"))
    return parser


def test_cli_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["synth", "--help"])
    text = capsys.readouterr().out
    for option in ("--out", "--family", "--seed", "--sequences", "--frames", "--height", "--width", "--quiet"):
        assert option in text
    assert "corridor" in text and "room" in text


def test_cli_runs_and_summarises(tmp_path, capsys):
    args = _parser().parse_args(["synth", "--out", str(tmp_path / "w"), "--family", "room", "--seed", "4",
                                 "--sequences", "1", "--frames", "2", "--height", "48", "--width", "64", "--quiet"])
    assert args.func(args) == 0
    line = capsys.readouterr().out.strip()
    assert "wrote 2 of 2 frames" in line and str(tmp_path / "w") in line and "invalid share" in line
    assert (tmp_path / "w" / "world.json").is_file()
    args = _parser().parse_args(["synth", "--out", str(tmp_path / "w"), "--family", "room", "--seed", "4",
                                 "--sequences", "1", "--frames", "3", "--height", "48", "--width", "64", "--quiet"])
    assert args.func(args) == 2  # another world in the same folder


@pytest.mark.parametrize("family", ["corridor", "room"])
def test_tof_never_reports_past_its_range_even_at_edges_and_windows(family):
    from distillery.synth import synthesize_frame

    deepest = max(float(synthesize_frame(family, seed, seq, 0, 60, 80).tof_depth.max())
                  for seed in (1, 2, 3) for seq in (0, 1, 2))
    assert 0 < deepest < 4.7  # sensors range 3.6-4.6 m; flying pixels never mix in out-of-range returns
