"""Frame selection before the teachers: label the frames that teach something (docs/selection.md)."""

from distillery.select.novelty import (SelectSettings, Selection, change_from_frames, change_from_poses,
                                       read_poses, select_sequence)

__all__ = ["SelectSettings", "Selection", "change_from_frames", "change_from_poses", "read_poses",
           "select_sequence"]
