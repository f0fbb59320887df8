"""Distillery: Slurm-native knowledge distillation for robot perception."""

__version__ = "0.1.0"
