"""From the frame a teacher saw to the stored training grid: the resampling per kind of label.

Real teachers label the source frame (the camera image as captured, kept in
the shard), at their own processing sizes, and return results at that
frame's size. The stored frame is a crop of the source (`source_crop`:
left, top, width, height) resized to the stored size, and each label kind is
brought onto that grid with the same geometry (`distillery.ingest.resize`):

- depth (metric or relative): the valid-aware area resampling of the ToF
  (`resize_depth`): area mean of the valid values on smooth surfaces, one
  measured value (the lower median) across an edge, invalid (0) where the
  footprint is less than half valid; an invalid value never blends in;
- classes and instances: the mode of each footprint (`resize_mode`), never
  interpolated;
- boxes: shifted by the crop and scaled (`boxes_to_grid`); prompts for a
  mask teacher go the other way (`boxes_from_grid`).

Simulated teachers work from the stored truth and see the stored grid
(`Teacher.sees() == "stored"`): their crop is the whole frame and nothing is
resampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distillery.ingest.resize import CropBox, boxes_from_grid, boxes_to_grid, resize_depth, resize_mode


@dataclass(frozen=True)
class FrameGrid:
    """Where a teacher's input frame (input_hw) sits relative to the stored grid (grid_hw)."""

    crop: CropBox
    input_hw: tuple[int, int]
    grid_hw: tuple[int, int]

    @classmethod
    def of(cls, crop, input_hw, grid_hw) -> "FrameGrid":
        left, top, width, height = (int(v) for v in crop)
        return cls(CropBox(left, top, width, height), tuple(int(v) for v in input_hw),
                   tuple(int(v) for v in grid_hw))

    @property
    def identity(self) -> bool:
        return self.input_hw == self.grid_hw and self.crop == CropBox(0, 0, self.grid_hw[1], self.grid_hw[0])

    def depth(self, depth: np.ndarray) -> np.ndarray:
        if self.identity:
            return depth
        return resize_depth(depth, self.crop, self.grid_hw[1], self.grid_hw[0])

    def labels(self, labels: np.ndarray) -> np.ndarray:
        if self.identity:
            return labels
        return resize_mode(labels, self.crop, self.grid_hw[1], self.grid_hw[0])

    def boxes(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes on the grid and the mask of the rows kept (see `boxes_to_grid`)."""
        if self.identity:
            return np.asarray(boxes, np.float32), np.ones(len(boxes), bool)
        return boxes_to_grid(boxes, self.crop, self.grid_hw[1], self.grid_hw[0])

    def boxes_to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Grid boxes (the detect layer's) in the teacher's input pixels, e.g. as SAM 2 prompts."""
        if self.identity:
            return np.asarray(boxes, np.float32)
        return boxes_from_grid(boxes, self.crop, self.grid_hw[1], self.grid_hw[0])


def batch_grids(batch: dict) -> list[FrameGrid]:
    """The FrameGrid of every frame of a runner batch (`crop` per frame, `rgb` the input, `grid_hw`)."""
    input_hw = tuple(batch["rgb"].shape[1:3])
    return [FrameGrid.of(crop, input_hw, batch["grid_hw"]) for crop in batch["crop"]]


def to_grid(task: str, result: dict, grid: FrameGrid) -> dict | str:
    """A depth or detect result at the input size, resampled onto the grid; a string says why it cannot be."""
    if task == "depth":
        depth = result["teacher_depth"]
        if depth.shape != grid.input_hw:
            return f"depth of shape {depth.shape}, the teacher's input frame is {grid.input_hw}"
        if not np.isfinite(depth).all():
            return "non-finite depth"
        return dict(result, teacher_depth=grid.depth(depth.astype(np.float32, copy=False)))
    if task == "detect":
        boxes = np.asarray(result["boxes"], np.float32)
        if boxes.ndim != 2 or boxes.shape[1] != 6:
            return f"boxes of shape {boxes.shape}"
        kept, keep = grid.boxes(boxes)
        return dict(result, boxes=kept, source_class=np.asarray(result["source_class"], np.int32)[keep])
    return result
