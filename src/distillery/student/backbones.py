"""The student's encoders: timm model, feature levels and where their ImageNet weights live.

Kept apart from `model` (torch, timm) so that the workflow names the weight
files to fetch at DAG build without importing either: on a busy login node
importing timm costs more than building the whole DAG.
"""

from __future__ import annotations

# config name -> (timm model name, feature levels the decoder reads)
BACKBONES: dict[str, tuple[str, tuple[int, ...]]] = {
    "efficientvit_b1": ("efficientvit_b1", (0, 1, 2, 3)),
    "mobilenetv3_small": ("mobilenetv3_small_100", (1, 2, 3, 4)),
}
# timm's Hugging Face repository of each model's default pretrained weights
# (timm.models.get_pretrained_cfg(name).hf_hub_id; tests/test_encoder_weights.py checks them against timm).
HUB_REPOS = {
    "efficientvit_b1": "timm/efficientvit_b1.r224_in1k",
    "mobilenetv3_small_100": "timm/mobilenetv3_small_100.lamb_in1k",
}
