"""The student: a small multi-task network (metric depth + 6-class segmentation) and its training.

One module per concern: model (build_student), losses, data and augment,
metrics, optim, train (the loop), checkpoint, distributed (DDP, Slurm signals,
submitit), config (TrainConfig) and cli (`distillery train`). See
docs/training.md. Submodules import torch; import them where needed.
"""
