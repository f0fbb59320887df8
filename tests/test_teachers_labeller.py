"""The geometric labeller's rules, each on an analytic scene with a known answer."""

import numpy as np
import pytest
from teacher_scenes import FLOOR, FURNITURE, GLASS, OTHER, PERSON, WALL, Corridor, iou

from distillery.teachers.labeller import (IGNORE, LabellerSettings, backproject, expected_return, label_frame,
                                          normals, paint_masks)


def label(scene: Corridor, depth=None, painted=None, **settings):
    r = scene.render()
    depth = r["depth"] if depth is None else depth
    painted = np.full(depth.shape, IGNORE, np.uint8) if painted is None else painted
    return label_frame(depth, scene.intrinsics, r["tof"], r["confidence"], r["rgb"], painted,
                       LabellerSettings(**settings)), r


def test_backprojection_and_normals_of_a_plane_facing_the_camera():
    depth = np.full((40, 60), 2.0, np.float32)
    k = np.array([50.0, 50.0, 29.5, 19.5])
    points = backproject(depth, k)
    assert np.allclose(points[..., 2], 2.0) and np.isclose(points[19, 0, 0], (0 - 29.5) / 50 * 2.0)
    n, ok = normals(points, depth > 0, 2, 3)
    assert ok[10:30, 10:50].all() and np.allclose(n[ok], [0, 0, -1], atol=1e-6)  # facing the camera


@pytest.mark.parametrize("pitch", [0.0, 6.0, -4.0])
def test_floor_is_the_fitted_ground_plane_for_level_and_pitched_cameras(pitch):
    lab, r = label(Corridor(pitch_deg=pitch))
    assert iou(lab, r["label"], FLOOR) > 0.95


def test_walls_are_the_vertical_planes_and_the_ceiling_is_other():
    lab, r = label(Corridor(glass=None))
    assert iou(lab, r["label"], WALL) > 0.93
    ceiling = r["label"] == OTHER
    assert (lab[ceiling] == OTHER).mean() > 0.85


def test_no_floor_is_invented_when_the_camera_faces_a_wall():
    scene = Corridor(glass=None, length=1.5, pitch_deg=-12.0, camera_height=1.5)
    r = scene.render()
    assert (r["label"] == FLOOR).mean() < 0.01
    lab, _ = label(scene)
    assert (lab == FLOOR).mean() < 0.01 and (lab == WALL).mean() > 0.5


def test_glass_is_a_wall_region_where_the_tof_lost_a_surface_the_teacher_sees():
    lab, r = label(Corridor())
    assert iou(lab, r["label"], GLASS) > 0.9


def test_a_tof_reading_behind_the_teacher_surface_is_glass_too():
    lab, r = label(Corridor(tof_through_glass=True))
    assert iou(lab, r["label"], GLASS) > 0.9


def test_glass_needs_the_tof_to_fail_there():
    scene = Corridor()
    r = scene.render()
    tof = np.where(r["label"] == GLASS, r["depth"], r["tof"])  # the sensor sees the pane: an ordinary wall
    lab = label_frame(r["depth"], scene.intrinsics, tof, np.where(tof > 0, 0.8, 0), r["rgb"],
                      np.full(tof.shape, IGNORE, np.uint8))
    assert (lab == GLASS).sum() == 0 and (lab[r["label"] == GLASS] == WALL).mean() > 0.9


def test_tof_loss_beyond_the_sensor_range_is_not_glass():
    lab, r = label(Corridor(glass=(4.5, 7.0, 0.4, 2.2)), tof_max_range_m=3.0)
    assert (lab[r["label"] == GLASS] == GLASS).mean() < 0.05


def test_tof_loss_on_a_dark_surface_is_a_weak_return_not_glass():
    scene = Corridor()
    r = scene.render()
    dark = r["rgb"].copy()
    dark[r["label"] == GLASS] = 3
    assert expected_return(backproject(r["depth"], scene.intrinsics),
                           normals(backproject(r["depth"], scene.intrinsics), r["depth"] > 0, 2, 5)[0],
                           dark)[r["label"] == GLASS].max() < LabellerSettings().weak_return
    lab = label_frame(r["depth"], scene.intrinsics, r["tof"], r["confidence"], dark,
                      np.full(dark.shape[:2], IGNORE, np.uint8))
    assert (lab[r["label"] == GLASS] == GLASS).mean() < 0.05


def test_masks_win_over_geometry_and_higher_scores_win_over_lower():
    masks = np.zeros((2, 10, 10), bool)
    masks[0, :6], masks[1, 4:] = True, True
    painted = paint_masks(masks, np.array([0.9, 0.5]), np.array([PERSON, FURNITURE]), (10, 10))
    assert (painted[:6] == PERSON).all() and (painted[6:] == FURNITURE).all()
    painted = paint_masks(masks, np.array([0.4, 0.5]), np.array([PERSON, FURNITURE]), (10, 10))
    assert (painted[:4] == PERSON).all() and (painted[4:] == FURNITURE).all()
    scene = Corridor(box=(2.0, 2.6, -1.2, -0.6, 0.8))
    r = scene.render()
    lab, _ = label(scene, painted=np.where(r["label"] == FURNITURE, FURNITURE, IGNORE).astype(np.uint8))
    assert iou(lab, r["label"], FURNITURE) == 1.0 and iou(lab, r["label"], FLOOR) > 0.95


def test_pixels_without_teacher_depth_are_ignored():
    scene = Corridor()
    r = scene.render()
    depth = r["depth"].copy()
    depth[:10] = 0
    depth[10:12] = np.nan
    lab, _ = label(scene, depth=depth)
    assert (lab[:12] == IGNORE).all() and (lab[12:] != IGNORE).all()


def test_teacher_scale_and_smooth_errors_keep_the_classes():
    scene = Corridor()
    r = scene.render()
    yy = np.linspace(-1, 1, r["depth"].shape[0])[:, None]
    depth = r["depth"] * 1.06 * (1 + 0.04 * yy)  # DA3-like: scale error plus a low-frequency bend
    lab, _ = label(scene, depth=depth.astype(np.float32))
    assert iou(lab, r["label"], FLOOR) > 0.9 and iou(lab, r["label"], WALL) > 0.85
    assert iou(lab, r["label"], GLASS) > 0.8
