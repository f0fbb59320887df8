"""The six segmentation classes every stage shares, and the label that means "no label".

Teachers paint them, the synthetic world renders them as truth, the manifest
stores them and the student predicts them: one definition keeps the ids in
step across all of those.
"""

FLOOR, WALL, PERSON, FURNITURE, GLASS, OTHER = range(6)
CLASS_NAMES = ("floor", "wall", "person", "furniture", "glass", "other")
NUM_CLASSES = len(CLASS_NAMES)
IGNORE_LABEL = 255  # pixels without a label: skipped by losses and metrics
