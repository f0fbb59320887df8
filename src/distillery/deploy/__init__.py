"""Deployment: what a trained student becomes on the robot.

Per version the workflow exports the student to ONNX (checked, simplified and
compared with PyTorch), converts an FP16 copy, draws a calibration set from
the manifest's train split and quantises an explicit Q/DQ INT8 model with it,
exports the fused graph (student + confidence-gated ToF fusion), writes a
model card and assembles a self-contained Jetson bundle. TensorRT engines are
built from those ONNX files where TensorRT and an NVIDIA GPU exist.

Modules: `spec` (the I/O contract), `export`, `parity`, `frames`,
`calibration`, `quantize`, `fused`, `card`, `bundle`, `engine` (stdlib +
numpy + TensorRT only: it is also the bundle's build-and-benchmark script),
`cli`.
"""
