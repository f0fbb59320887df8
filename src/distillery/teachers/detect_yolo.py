"""Ultralytics YOLOv8 (L by default): person and furniture boxes for SAM 2 prompts and the manifest.

Kept detections: COCO 0 (person -> our class 2) and the furniture set of the
spec (-> our class 3), confidence >= `conf` (0.3). Boxes are x1, y1, x2, y2
in pixels of the frame it was given (the source frame: the runner moves them
onto the stored grid), with the score and OUR class id; the detector's own
COCO id travels alongside as `source_class` (kept in the detect layer as
`box_source_class`, not in the manifest).

Batched on the device: frames are letterboxed on the GPU the way Ultralytics
does it (long side -> `imgsz`, padding to a multiple of the stride, centred,
grey 114), the fused network runs under autocast, and Ultralytics' own NMS
filters the raw output. Ultralytics is imported with YOLO_OFFLINE=1 and a
writable YOLO_CONFIG_DIR so that it never reaches for the network.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from distillery.teachers.base import FURNITURE, PERSON, Teacher, TeacherError

log = logging.getLogger(__name__)

COCO_PERSON = 0
COCO_FURNITURE = (56, 57, 58, 59, 60, 61, 62, 63, 69, 71, 72, 73, 74)
COCO_TO_CLASS = {COCO_PERSON: PERSON, **{c: FURNITURE for c in COCO_FURNITURE}}


def import_ultralytics():
    """Import ultralytics offline, with its settings file in a writable place."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", os.path.join(tempfile.gettempdir(), f"distillery-yolo-{os.getuid()}"))
    import ultralytics

    return ultralytics


def letterbox_geometry(height: int, width: int, imgsz: int, stride: int) -> tuple[float, tuple[int, int], tuple[int, int]]:
    """Scale, resized (h, w) and (top, left) padding of Ultralytics' rectangular letterbox."""
    scale = imgsz / max(height, width)
    h, w = round(height * scale), round(width * scale)
    ph, pw = -(-h // stride) * stride, -(-w // stride) * stride
    return scale, (h, w), ((ph - h) // 2, (pw - w) // 2)


def to_boxes(det: np.ndarray, scale: float, pad: tuple[int, int], height: int, width: int) -> dict:
    """NMS rows (x1, y1, x2, y2, score, coco) at network size -> our box rows at the input frame's size."""
    det = det[np.isin(det[:, 5].astype(int), list(COCO_TO_CLASS))]
    xyxy = (det[:, :4] - np.array([pad[1], pad[0], pad[1], pad[0]])) / scale
    xyxy = np.clip(xyxy, 0, [width, height, width, height])
    coco = det[:, 5].astype(np.int32)
    ours = np.array([COCO_TO_CLASS[c] for c in coco], dtype=np.float32)
    boxes = np.column_stack([xyxy, det[:, 4], ours]).astype(np.float32).reshape(-1, 6)
    return {"boxes": boxes, "source_class": coco}


class YoloDetect(Teacher):
    """Person and furniture boxes from YOLOv8."""

    task = "detect"
    backend = "yolo"
    reads = ("rgb",)

    @dataclass(frozen=True)
    class Settings:
        arch: str = "yolov8l.yaml"  # architecture for weights: random; a checkpoint brings its own
        conf: float = 0.3
        iou: float = 0.7
        imgsz: int = 640
        max_det: int = 100

    def __init__(self, settings, runtime, weights=None):
        import torch

        super().__init__(settings, runtime, weights)
        ultralytics = import_ultralytics()
        if weights == "random":
            log.warning("yolo: untrained weights (weights: random) - for tests and benchmarks only")
        model = ultralytics.YOLO(settings.arch if weights == "random" else weights, task="detect").model
        self.device = runtime.torch_device()
        self.net = model.fuse(verbose=False).eval().to(self.device)
        if runtime.cuda:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.stride = int(max(self.net.stride))
        self.check_coco(self.net.names, weights)

    @staticmethod
    def check_coco(names: dict, weights: str) -> None:
        """Our class mapping assumes COCO-80 ids: refuse a detector trained on other classes."""
        coco = all(names.get(c) == n for c, n in ((0, "person"), (56, "chair"), (74, "clock")))
        if len(names) != 80 or (weights != "random" and not coco):
            raise TeacherError(f"{weights}: not a COCO-80 detector ({len(names)} classes, "
                               f"e.g. {dict(list(names.items())[:3])})")

    def preprocess(self, rgb):
        """uint8 [B, H, W, 3] -> letterboxed float [B, 3, h', w'] on the device."""
        import torch
        import torch.nn.functional as F

        height, width = rgb.shape[1:3]
        scale, (h, w), (top, left) = letterbox_geometry(height, width, self.settings.imgsz, self.stride)
        x = rgb.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=h < height)
        ph, pw = -(-h // self.stride) * self.stride, -(-w // self.stride) * self.stride
        x = F.pad(x, (left, pw - w - left, top, ph - h - top), value=114 / 255)
        if self.runtime.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, scale, (top, left)

    def predict(self, batch: dict) -> list:
        import torch
        from ultralytics.utils.nms import non_max_suppression

        height, width = batch["rgb"].shape[1:3]
        x, scale, pad = self.preprocess(batch["rgb"])
        with torch.inference_mode(), self.runtime.autocast():
            raw = self.net(x)
        raw = raw[0] if isinstance(raw, (list, tuple)) else raw
        dets = non_max_suppression(raw.float(), self.settings.conf, self.settings.iou,
                                   classes=sorted(COCO_TO_CLASS), max_det=self.settings.max_det)
        return [to_boxes(d.cpu().numpy(), scale, pad, height, width) for d in dets]
