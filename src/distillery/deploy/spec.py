"""The deployment contract of the student's ONNX graphs: names, shapes, opset and parity bounds.

The network takes camera pixels as they are: RGB float32 in [0, 1], NCHW,
HEIGHT x WIDTH (distillery.framesize); ImageNet normalisation is inside the graph. Only the batch is
dynamic: TensorRT builds one optimisation profile for batch 1 (min, opt) to 8
(max).
"""

from __future__ import annotations

from distillery.framesize import HEIGHT, WIDTH  # the stored frame size: the graph takes frames as stored

OPSET = 17
INPUT = "rgb"
OUTPUTS = ("depth", "segmentation")
FUSED_INPUTS = ("rgb", "tof", "confidence")
FUSED_OUTPUTS = ("fused_depth", "scale")
BATCH = "N"
PROFILE_BATCH = (1, 1, 8)  # TensorRT optimisation profile: min, opt, max
WORKSPACE_BYTES = 1 << 30
PRECISIONS = ("fp32", "fp16", "int8")

# Parity of an exported graph with PyTorch on real frames (checked at export, stated in the model card).
PARITY_BATCHES = (1, 8)
DEPTH_MAX_ABS_M = 1e-3  # FP32 ONNX vs. PyTorch: largest depth difference, metres
SEG_MIN_AGREEMENT = 0.999  # share of pixels whose class argmax agrees
# FP16 keeps 11 significant bits, so its depth error grows with the depth: its bound is relative (the 99th
# percentile over pixels of |diff| as a share of the FP32 depth, clipped below at DEPTH_REL_FLOOR_M), 1 %: a ToF
# camera's own noise. The largest relative difference is reported beside it.
FP16_DEPTH_P99_REL = 0.01  # FP16 (weights in ONNX Runtime, arithmetic in PyTorch half) vs. PyTorch FP32
DEPTH_REL_FLOOR_M = 0.1
FP16_SEG_MIN_AGREEMENT = 0.98


def input_spec(num_classes: int) -> dict:
    """The I/O description that the model card and the Jetson README carry."""
    return {
        "inputs": {INPUT: {"shape": [BATCH, 3, HEIGHT, WIDTH], "dtype": "float32", "range": [0.0, 1.0],
                           "layout": "NCHW, RGB channel order, no normalisation (ImageNet mean/std is in the graph)"}},
        "outputs": {
            OUTPUTS[0]: {"shape": [BATCH, 1, HEIGHT, WIDTH], "dtype": "float32", "unit": "metres, >= 0"},
            OUTPUTS[1]: {"shape": [BATCH, num_classes, HEIGHT, WIDTH], "dtype": "float32",
                         "unit": "class logits (argmax over dim 1)"},
        },
        "dynamic_axes": {BATCH: "batch; TensorRT profile min/opt/max = " + "/".join(map(str, PROFILE_BATCH))},
        "opset": OPSET,
    }
