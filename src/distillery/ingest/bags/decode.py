"""Decode ROS image and camera messages into arrays of known units.

- colour: `sensor_msgs/Image` rgb8, bgr8, rgba8, bgra8, mono8, or a
  `CompressedImage` (JPEG/PNG) -> uint8 RGB.
- depth: `Image` 16UC1/mono16 (integer counts of `unit` metres: millimetres
  by the ROS convention, the recorder's `Depth Units` for librealsense bags)
  or 32FC1 (metres; NaN and inf are "no reading"), or `CompressedImage` in
  `compressedDepth` format (image_transport's PNG of 16UC1 counts, or of
  32FC1 as quantised inverse depth) -> float32 metres, 0 = invalid.
- confidence / IR: `Image` mono8, mono16/16UC1 or 32FC1 -> float32 in [0, 1]
  only by the explicit mapping the user gives (a scale, or a low/high range
  of raw values); IR brightness is not confidence, so there is no default.
- `CameraInfo` -> `Intrinsics` and distortion coefficients (ROS 1 `K`/`D`
  or ROS 2 `k`/`d`).
- header stamps read straight from the serialised bytes (CDR or ROS 1).

Anything else raises `BagError` naming the topic and the encoding.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from distillery.ingest.bags.source import BagError
from distillery.ingest.frames import Intrinsics

COLOUR_ENCODINGS = {"rgb8": (3, False), "bgr8": (3, True), "rgba8": (4, False), "bgra8": (4, True), "mono8": (1, False)}
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
CONFIDENCE_ENCODINGS = {"mono8": np.uint8, "8UC1": np.uint8, "mono16": np.uint16, "16UC1": np.uint16,
                        "32FC1": np.float32}
PNG_MAGIC = b"\x89PNG"


def _raw_rows(msg, dtype: np.dtype, channels: int, topic: str) -> np.ndarray:
    """The [H, W(, C)] array of an Image message, honouring `step` padding and byte order."""
    dtype = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = msg.width * channels * dtype.itemsize
    data = np.asarray(msg.data, dtype=np.uint8)
    if msg.step < row_bytes or data.size < msg.step * msg.height:
        raise BagError(f"topic {topic!r}: Image of {msg.width}x{msg.height} {msg.encoding} has step {msg.step} and "
                       f"{data.size} bytes, too few (truncated message?)")
    rows = data[: msg.step * msg.height].reshape(msg.height, msg.step)[:, :row_bytes]
    arr = rows.copy().view(dtype).reshape(msg.height, msg.width, channels)  # one copy: the bag's buffer is not ours
    return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))


def colour_image(msg, msgtype: str, topic: str) -> np.ndarray:
    """uint8 RGB [H, W, 3] of an Image or CompressedImage message."""
    if msgtype.endswith("CompressedImage"):
        try:
            with Image.open(io.BytesIO(bytes(msg.data))) as im:
                return np.asarray(im.convert("RGB"))
        except Exception as exc:  # PIL raises many types
            raise BagError(f"topic {topic!r}: CompressedImage format {msg.format!r} not decodable ({exc})") from None
    if msg.encoding not in COLOUR_ENCODINGS:
        raise BagError(f"topic {topic!r}: unsupported colour encoding {msg.encoding!r} "
                       f"(supported: {', '.join(COLOUR_ENCODINGS)}, or a CompressedImage)")
    channels, bgr = COLOUR_ENCODINGS[msg.encoding]
    arr = _raw_rows(msg, np.uint8, channels, topic)
    if channels == 1:
        return np.repeat(arr, 3, axis=2)
    arr = arr[..., :3]
    return np.ascontiguousarray(arr[..., ::-1] if bgr else arr)


def _compressed_depth(msg, topic: str, unit: float) -> np.ndarray:
    """Metres from image_transport's compressedDepth: a 12-byte header (format, quantA, quantB) and a PNG."""
    data = bytes(msg.data)
    offset = 0 if data[:4] == PNG_MAGIC else 12
    if data[offset:offset + 4] != PNG_MAGIC:
        raise BagError(f"topic {topic!r}: compressedDepth payload is not PNG (format {msg.format!r}); "
                       "only the png compressedDepth codec is supported")
    with Image.open(io.BytesIO(data[offset:])) as im:
        raw = np.asarray(im)
    encoding = msg.format.split(";")[0].strip()
    if encoding in ("16UC1", "mono16"):
        return raw.astype(np.float32) * np.float32(unit)
    if encoding == "32FC1":
        if offset != 12:
            raise BagError(f"topic {topic!r}: 32FC1 compressedDepth without its quantisation header")
        quant_a, quant_b = np.frombuffer(data[4:12], "<f4")
        depth = np.zeros(raw.shape, np.float32)
        valid = raw > 0
        depth[valid] = quant_a / (raw[valid].astype(np.float32) - quant_b)
        return depth
    raise BagError(f"topic {topic!r}: unsupported compressedDepth encoding {encoding!r} (format {msg.format!r})")


def depth_image(msg, msgtype: str, topic: str, unit: float = 0.001) -> np.ndarray:
    """float32 metres [H, W], 0 where there is no reading; integer depth counts `unit` metres."""
    if msgtype.endswith("CompressedImage"):
        if "compresseddepth" not in msg.format.lower():
            raise BagError(f"topic {topic!r}: depth as CompressedImage must use the compressedDepth format, "
                           f"got {msg.format!r} (lossy colour codecs destroy depth)")
        depth = _compressed_depth(msg, topic, unit)
    elif msg.encoding in ("16UC1", "mono16"):
        depth = np.multiply(_raw_rows(msg, np.uint16, 1, topic)[..., 0], np.float32(unit), dtype=np.float32)
        if unit > 0:
            return depth  # finite counts >= 0 times a positive unit: nothing to clear
    elif msg.encoding == "32FC1":
        depth = _raw_rows(msg, np.float32, 1, topic)[..., 0]
    else:
        raise BagError(f"topic {topic!r}: unsupported depth encoding {msg.encoding!r} "
                       f"(supported: {', '.join(DEPTH_ENCODINGS)}, or compressedDepth)")
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    return depth.astype(np.float32, copy=False)


def confidence_mapping(scale: float | None, value_range: list[float] | None, topic: str) -> str:
    """The formula that turns raw IR/confidence values into [0, 1], from exactly one explicit setting."""
    if (scale is None) == (value_range is None):
        raise BagError(f"confidence topic {topic!r}: give exactly one explicit mapping of its raw values to [0, 1]: "
                       "--confidence-scale S (confidence = value * S) or --confidence-range LOW HIGH (LOW -> 0, "
                       "HIGH -> 1); IR brightness is not confidence, so there is no default")
    if scale is not None:
        if scale <= 0:
            raise BagError(f"confidence topic {topic!r}: --confidence-scale must be > 0, got {scale}")
        return f"clip(value * {scale:g}, 0, 1)"
    low, high = value_range
    if high <= low:
        raise BagError(f"confidence topic {topic!r}: --confidence-range needs LOW < HIGH, got {low:g} {high:g}")
    return f"clip((value - {low:g}) / ({high:g} - {low:g}), 0, 1)"


def confidence_image(msg, topic: str, scale: float | None, value_range: list[float] | None) -> np.ndarray:
    """float32 [H, W] in [0, 1] by the explicit mapping (`confidence_mapping` checked it)."""
    dtype = CONFIDENCE_ENCODINGS.get(msg.encoding)
    if dtype is None:
        raise BagError(f"topic {topic!r}: unsupported confidence/IR encoding {msg.encoding!r} "
                       f"(supported: {', '.join(CONFIDENCE_ENCODINGS)})")
    arr = _raw_rows(msg, dtype, 1, topic)[..., 0].astype(np.float32)
    arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    if scale is not None:
        arr = arr * np.float32(scale)
    else:
        arr = (arr - np.float32(value_range[0])) / np.float32(value_range[1] - value_range[0])
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def camera_info(msg, topic: str) -> tuple[Intrinsics, str, np.ndarray]:
    """Intrinsics from K, the distortion model and its coefficients."""
    k = np.asarray(getattr(msg, "k", getattr(msg, "K", [])), dtype=np.float64)  # ROS 1 definitions say K, D
    if k.size != 9 or k[0] <= 0 or k[4] <= 0 or msg.width <= 0 or msg.height <= 0:
        raise BagError(f"topic {topic!r}: CameraInfo without a usable K or image size (K={k.tolist()}, "
                       f"{msg.width}x{msg.height}); the camera is not calibrated")
    intr = Intrinsics(float(k[0]), float(k[4]), float(k[2]), float(k[5]), int(msg.width), int(msg.height))
    return intr, msg.distortion_model, np.asarray(getattr(msg, "d", getattr(msg, "D", [])), dtype=np.float64)


def header_stamp_ns(raw: bytes, offset: int, order: str) -> int:
    """header.stamp in nanoseconds read straight from the serialised bytes at `offset`."""
    sec = int.from_bytes(raw[offset:offset + 4], order, signed=True)
    nanosec = int.from_bytes(raw[offset + 4:offset + 8], order)
    return sec * 1_000_000_000 + nanosec


def stamp_locator(raw: bytes, msg, ros1: bool) -> tuple[int, str]:
    """(offset, byte order) of a topic's header stamp in its serialised bytes, found from one message.

    Header is the first field of images. In CDR the stamp follows the 4-byte
    encapsulation header (offset 4), or a ROS 1 Header's `seq` (offset 8) in
    bags converted from ROS 1; its byte order is in the encapsulation. ROS 1
    serialisation is little-endian with `seq` first (offset 4).
    """
    want = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
    candidates = [(4, "little")] if ros1 else [(o, "little" if raw[1] == 1 else "big") for o in (4, 8)]
    for offset, order in candidates:
        if header_stamp_ns(raw, offset, order) == want:
            return offset, order
    raise BagError(f"header stamp of {type(msg).__name__} not found in its serialised bytes")
