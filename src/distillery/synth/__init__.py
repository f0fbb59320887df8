"""Procedural synthetic RGB-D worlds with full ground truth, rendered on the CPU.

A world (family "corridor" or "room", and a seed) is a small dataset of
sequences in the project's native frame layout, with simulated ToF depth and
confidence showing the real sensor's failure modes, and the truth the real
data lacks: z-depth, 6-class semantics, instance ids and camera poses. Seeds
act as separate domains. Entry points:

- `generate_world(out_dir, family, seed, sequences, frames_per_sequence, ...)`
  writes a world to disk (resumable, atomic, deterministic);
- `synthesize_frame(family, seed, sequence, frame, ...)` renders one frame in
  memory;
- `tof_invalid_share(depth)` is the share of pixels without ToF depth.
"""

from distillery.synth.scene import CLASS_NAMES, FAMILIES
from distillery.synth.tof import tof_invalid_share
from distillery.synth.world import SynthFrame, generate_world, synthesize_frame

__all__ = ["CLASS_NAMES", "FAMILIES", "SynthFrame", "generate_world", "synthesize_frame", "tof_invalid_share"]
