"""Qualitative panels: what each version sees on a few fixed test frames.

For each chosen frame, one figure: a top row with the inputs and references
(RGB, ToF depth, teacher depth, ground truth where the frame has it) and one
row per version with its student depth, the fused depth (distillery.fusion,
the runtime's rule), its segmentation and its absolute depth error against
the best reference the frame has. Depth images of one frame share one colour
scale, so a student without metric scale (a relative teacher's) stands out.

Frames are chosen deterministically (test frames taken in turn from each
dataset, in name order), so the same manifest always shows the same frames and the
panels of two runs can be compared side by side.
"""

from __future__ import annotations

import numpy as np
import torch

from distillery.classes import CLASS_NAMES, IGNORE_LABEL
from distillery.fusion import fuse, trusted_tof
from distillery.manifest import Manifest
from distillery.report.plots import plt, to_data_uri

# Segmentation colours in class order (floor, wall, person, furniture, glass, other); ignore is black.
PALETTE = np.array([[150, 110, 60], [170, 170, 170], [220, 40, 40], [40, 160, 60], [60, 200, 230],
                    [150, 80, 180]], dtype=np.uint8)
PANEL_FIELDS = ("rgb", "tof_depth", "tof_confidence", "teacher_depth", "teacher_depth_relative", "truth_depth")


def fixed_frames(manifest: Manifest, count: int = 3) -> list[int]:
    """Rows to show: test frames taken in turn from each dataset (name order), middle frame first.

    A dataset without test frames offers its val (then train) frames instead.
    """
    candidates = []
    for dataset in sorted({r["dataset"] for r in manifest.records}):
        for split in ("test", "val", "train"):
            rows = [int(r) for r in manifest.indices(split=split, dataset=dataset)]
            if rows:
                order = [len(rows) // 2, len(rows) // 4, (3 * len(rows)) // 4]
                candidates.append([rows[i] for i in dict.fromkeys(order)])
                break
    chosen: list[int] = []
    for turn in range(3):
        chosen += [c[turn] for c in candidates if turn < len(c)]
    return chosen[:count]


def colour_labels(label: np.ndarray) -> np.ndarray:
    """[H, W] class ids -> [H, W, 3] uint8 with PALETTE; ignore and unknown ids black."""
    out = np.zeros((*label.shape, 3), dtype=np.uint8)
    known = label < len(PALETTE)
    out[known] = PALETTE[label[known]]
    out[label == IGNORE_LABEL] = 0
    return out


@torch.no_grad()
def predict(model, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Student depth [H, W] (metres) and segmentation argmax [H, W] for one RGB uint8 [H, W, 3] frame."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0
    out = model(x)
    return out["depth"][0, 0].numpy(), out["segmentation"][0].argmax(0).numpy().astype(np.uint8)


def _depth_range(frame: dict) -> float:
    """Upper end of the frame's shared depth colour scale: the 99th percentile of its metric references."""
    values = [frame[k][frame[k] > 0] for k in ("truth_depth", "teacher_depth", "tof_depth")
              if frame.get(k) is not None]
    values = [v for v in values if v.size]
    return float(np.percentile(np.concatenate(values), 99)) if values else 5.0


def _show(ax, image, title: str, vmax: float | None = None, cmap: str = "turbo") -> None:
    if image is None:
        ax.text(0.5, 0.5, "absent", ha="center", va="center", fontsize=8, color="#777")
    elif image.ndim == 3:
        ax.imshow(image)
    else:
        ax.imshow(np.where(np.isfinite(image), image, 0), vmin=0, vmax=vmax, cmap=cmap)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def frame_panel(frame: dict, rows: list[tuple[str, np.ndarray, np.ndarray]], title: str) -> str:
    """The figure of one frame: inputs and references on top, then one row per (version, depth, seg)."""
    vmax = _depth_range(frame)
    reference = next((k for k in ("truth_depth", "teacher_depth") if frame.get(k) is not None), None)
    tof, conf = frame["tof_depth"].astype(np.float32), frame["tof_confidence"].astype(np.float32)
    fig, axes = plt.subplots(1 + len(rows), 4, figsize=(7.2, 1.45 * (1 + len(rows)) + 0.3), squeeze=False)
    teacher, teacher_title = frame.get("teacher_depth"), "teacher depth (metric)"
    if teacher is None and frame.get("teacher_depth_relative") is not None:
        teacher, teacher_title = frame["teacher_depth_relative"], "teacher depth (relative, own scale)"
    _show(axes[0][0], frame["rgb"], "RGB")
    _show(axes[0][1], np.where(trusted_tof(tof, conf), tof, 0), f"ToF, trusted ({trusted_tof(tof, conf).mean():.0%})", vmax)
    _show(axes[0][2], None if teacher is None else teacher.astype(np.float32), teacher_title,
          vmax if teacher is frame.get("teacher_depth") else None)
    _show(axes[0][3], frame.get("truth_depth"), "ground truth depth", vmax)
    for i, (version, depth, seg) in enumerate(rows, start=1):
        fused = fuse(depth, tof, conf)
        note = " (no trusted ToF: s=1)" if bool(fused.no_trusted) else f" (s={float(fused.scale):.2f})"
        _show(axes[i][0], depth, f"{version} student depth", vmax)
        _show(axes[i][1], fused.depth, f"{version} fused{note}", vmax)
        _show(axes[i][2], colour_labels(seg), f"{version} segmentation")
        if reference is None:
            _show(axes[i][3], None, "error")
        else:
            ref = frame[reference].astype(np.float32)
            error = np.where(ref > 0, np.abs(depth - ref), 0)
            _show(axes[i][3], error, f"{version} |student - {reference.split('_')[0]}|", vmax / 2, "magma")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return to_data_uri(fig)


def legend_figure() -> str:
    """The segmentation colour legend, as its own small image."""
    fig, ax = plt.subplots(figsize=(6.5, 0.35))
    for i, name in enumerate(CLASS_NAMES):
        ax.add_patch(plt.Rectangle((i, 0), 0.25, 1, color=PALETTE[i] / 255))
        ax.text(i + 0.3, 0.5, name, va="center", fontsize=8)
    ax.set_xlim(0, len(CLASS_NAMES))
    ax.set_ylim(0, 1)
    ax.axis("off")
    return to_data_uri(fig)


def panels(manifest_path: str, checkpoints: dict[str, str], count: int = 3) -> list[dict]:
    """[{key, dataset, split, image}] for the fixed frames, every version's checkpoint run on each."""
    from distillery.student.checkpoint import load_student

    torch.set_grad_enabled(False)
    with Manifest(manifest_path) as m:
        rows = fixed_frames(m, count)
        frames = [m.read(r, PANEL_FIELDS) for r in rows]
        records = [m.records[r] for r in rows]
    predictions: list[list] = [[] for _ in rows]
    for version, path in checkpoints.items():
        model = load_student(path)
        for i, frame in enumerate(frames):
            predictions[i].append((version, *predict(model, frame["rgb"])))
    out = []
    for frame, record, preds in zip(frames, records, predictions):
        title = f"{record['key']} ({record['dataset']}, {record['split']} split)"
        out.append({"key": record["key"], "dataset": record["dataset"], "split": record["split"],
                    "image": frame_panel(frame, preds, title)})
    return out
