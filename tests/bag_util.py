"""Bags written with `rosbags`, as a robot's recorder or the RealSense Viewer writes them, from known geometry.

`write_bag`: a ROS 2 bag (MCAP or sqlite3) with /tf_static. `write_realsense_bag`:
a ROS 1 `.bag` in librealsense's own layout (`/device_0/sensor_N/<Stream>_0/...`,
per-stream extrinsics on `tf/0` from the reference stream to the stream, the
`Depth Units` option, frame id "0" on both images), written with rosbags'
ROS 1 writer and lz4 chunks.

The scene, in the colour camera's optical frame: a wall z = 2 + 0.3 x and,
in front of it, a box face at z = 1.2 m (|x| < 0.25, |y| < 0.2). The depth
camera sits at a chosen pose in the colour frame (`T_CD`), published on
/tf_static through a camera link; its images are ray-cast from there, so the
true depth as the colour camera sees it is known (`truth_colour_depth`).
Header stamps: colour every 1/15 s, depth `depth_offset` s later; record
times add a transport delay that differs per topic, so only header stamps
pair correctly.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from distillery.ingest.bags.geometry import rigid
from distillery.ingest.frames import Intrinsics

TS = get_typestore(Stores.ROS2_HUMBLE)
T = TS.types
K_COLOUR = Intrinsics(140.0, 140.0, 79.5, 59.5, 160, 120)
K_DEPTH = Intrinsics(100.0, 100.0, 63.5, 47.5, 128, 96)
EXTRINSIC = {"translation": [-0.05, 0.01, 0.0], "rotation": [0.0, 0.0174524, 0.0, 0.9998477]}  # 2 deg about y
T_CD = rigid(EXTRINSIC["translation"], EXTRINSIC["rotation"])  # depth optical -> colour optical
T_LINK_COLOUR = rigid([0.0, -0.02, 0.0], [-0.5, 0.5, -0.5, 0.5])
START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 66_666_667


@dataclass
class BagSpec:
    frames: int = 6
    storage: str = "mcap"
    depth_offset: float = 0.008
    drop_depth: tuple[int, ...] = (3,)
    colour: str = "rgb8"  # rgb8, bgr8 or png (CompressedImage)
    depth: str = "16UC1"  # 16UC1, 32FC1 or compressedDepth
    confidence: bool = True
    color_info: bool = True
    tf: bool = True
    distortion: list[float] = field(default_factory=lambda: [0.0] * 5)
    scale: int = 1  # image sizes and focal lengths x scale (4: 640x480 colour, as real cameras record)


def scaled(k: Intrinsics, s: int) -> Intrinsics:
    """`k` for images `s` times larger (pixel-centre convention)."""
    return Intrinsics(k.fx * s, k.fy * s, (k.cx + 0.5) * s - 0.5, (k.cy + 0.5) * s - 0.5, k.width * s, k.height * s)


def raycast(k: Intrinsics, pose: np.ndarray) -> np.ndarray:
    """Depth (along the camera's z) of the scene seen by a camera at `pose` (camera -> colour frame)."""
    v, u = np.mgrid[0:k.height, 0:k.width].astype(np.float64)
    rays = np.stack([(u - k.cx) / k.fx, (v - k.cy) / k.fy, np.ones_like(u)])
    d = np.einsum("ij,jhw->ihw", pose[:3, :3], rays)
    o = pose[:3, 3][:, None, None]
    s_wall = (2.0 + 0.3 * o[0] - o[2]) / (d[2] - 0.3 * d[0])  # z = 2 + 0.3 x
    s_box = (1.2 - o[2]) / d[2]
    hit = o + s_box * d
    on_box = (np.abs(hit[0]) < 0.25) & (np.abs(hit[1]) < 0.2) & (s_box > 0)
    return np.where(on_box, s_box, s_wall).astype(np.float32)


def truth_colour_depth(scale: int = 1) -> np.ndarray:
    return raycast(scaled(K_COLOUR, scale), np.eye(4))


def colour_pixels(i: int, scale: int = 1) -> np.ndarray:
    v, u = np.mgrid[0:K_COLOUR.height * scale, 0:K_COLOUR.width * scale]
    return np.stack([(u + 7 * i) % 256, v * 2 % 256, np.full_like(u, 40 * i % 256)], -1).astype(np.uint8)


def _header(ns: int, frame: str):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                    frame_id=frame)


def _image(ns, frame, arr, encoding):
    h, w = arr.shape[:2]
    data = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
    return T["sensor_msgs/msg/Image"](header=_header(ns, frame), height=h, width=w, encoding=encoding,
                                      is_bigendian=0, step=data.size // h, data=data)


def _compressed(ns, frame, payload: bytes, fmt: str):
    return T["sensor_msgs/msg/CompressedImage"](header=_header(ns, frame), format=fmt,
                                                data=np.frombuffer(payload, np.uint8))


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _info(ns, frame, k: Intrinsics, d):
    return T["sensor_msgs/msg/CameraInfo"](
        header=_header(ns, frame), height=k.height, width=k.width, distortion_model="plumb_bob",
        d=np.asarray(d, np.float64), k=np.array([k.fx, 0, k.cx, 0, k.fy, k.cy, 0, 0, 1], np.float64),
        r=np.eye(3).reshape(-1), p=np.array([k.fx, 0, k.cx, 0, 0, k.fy, k.cy, 0, 0, 0, 1, 0], np.float64),
        binning_x=0, binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def _tf(ns):
    def stamped(parent, child, pose):
        q = _quaternion(pose[:3, :3])
        tr = T["geometry_msgs/msg/Transform"](translation=T["geometry_msgs/msg/Vector3"](x=pose[0, 3], y=pose[1, 3], z=pose[2, 3]),
                                              rotation=T["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]))
        return T["geometry_msgs/msg/TransformStamped"](header=_header(ns, parent), child_frame_id=child, transform=tr)

    return T["tf2_msgs/msg/TFMessage"](transforms=[
        stamped("base_link", "cam_link", rigid([0.1, 0, 0.3], [0, 0, 0, 1])),
        stamped("cam_link", "cam_color_optical", T_LINK_COLOUR),
        stamped("cam_link", "cam_depth_optical", T_LINK_COLOUR @ T_CD)])


def _quaternion(r: np.ndarray) -> list[float]:
    w = np.sqrt(max(0.0, 1 + np.trace(r))) / 2
    return [(r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w), w]


def _depth_msg(ns, depth_m: np.ndarray, kind: str):
    if kind == "16UC1":
        return _image(ns, "cam_depth_optical", np.round(depth_m * 1000).astype(np.uint16), "16UC1")
    if kind == "32FC1":
        d = depth_m.copy()
        d[d == 0] = np.nan
        return _image(ns, "cam_depth_optical", d.astype(np.float32), "32FC1")
    header = np.array([0], "<i4").tobytes() + np.zeros(2, "<f4").tobytes()
    return _compressed(ns, "cam_depth_optical", header + _png(np.round(depth_m * 1000).astype(np.uint16)),
                       "16UC1; compressedDepth png")


def messages(spec: BagSpec) -> list[tuple[str, str, int, object]]:
    """(topic, msgtype, record time ns, message) of a recording, in record-time order."""
    k_colour, k_depth = scaled(K_COLOUR, spec.scale), scaled(K_DEPTH, spec.scale)
    depth = raycast(k_depth, T_CD)
    depth[:3 * spec.scale] = 0.0  # the top rows have no reading
    ir = np.where(depth < 1.5, 50, 200).astype(np.uint8)
    out = [("/tf_static", "tf2_msgs/msg/TFMessage", START_NS - 10**8, _tf(START_NS))]
    for i in range(spec.frames):
        tc = START_NS + i * PERIOD_NS
        td = tc + int(spec.depth_offset * 1e9)
        if spec.colour == "png":
            colour = _compressed(tc, "cam_color_optical", _png(colour_pixels(i, spec.scale)), "rgb8; png compressed rgb8")
            ctype = "sensor_msgs/msg/CompressedImage"
        else:
            pixels = colour_pixels(i, spec.scale)
            pixels = pixels[..., ::-1] if spec.colour == "bgr8" else pixels
            colour, ctype = _image(tc, "cam_color_optical", pixels, spec.colour), "sensor_msgs/msg/Image"
        out.append(("/cam/color/image_raw", ctype, tc + 1_000_000, colour))
        if spec.color_info:
            out.append(("/cam/color/camera_info", "sensor_msgs/msg/CameraInfo", tc + 1_000_000,
                        _info(tc, "cam_color_optical", k_colour, spec.distortion)))
        if i in spec.drop_depth:
            continue
        dtype = "sensor_msgs/msg/CompressedImage" if spec.depth == "compressedDepth" else "sensor_msgs/msg/Image"
        out.append(("/cam/depth/image_raw", dtype, td + 70_000_000, _depth_msg(td, depth, spec.depth)))
        out.append(("/cam/depth/camera_info", "sensor_msgs/msg/CameraInfo", td + 70_000_000,
                    _info(td, "cam_depth_optical", k_depth, [0.0] * 5)))
        if spec.confidence:
            out.append(("/cam/depth/ir", "sensor_msgs/msg/Image", td + 70_000_000,
                        _image(td, "cam_depth_optical", ir, "mono8")))
    if not spec.tf:
        out = out[1:]
    return sorted(out, key=lambda m: m[2])


def write_bag(path: Path, spec: BagSpec) -> Path:
    """A ROS 2 bag directory (metadata.yaml + one .mcap or .db3) of `spec`; returns the directory."""
    plugin = StoragePlugin.MCAP if spec.storage == "mcap" else StoragePlugin.SQLITE3
    msgs = messages(spec)
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        write_messages(writer, msgs, TS, TS.serialize_cdr)
    return path


def storage_file(bag_dir: Path) -> Path:
    return next(p for p in bag_dir.iterdir() if p.suffix in (".mcap", ".db3"))


# ---------------------------------------------------------------- librealsense layout, ROS 1


TS1 = get_typestore(Stores.ROS1_NOETIC)
T1 = TS1.types
RS_DEPTH_UNIT = 0.0001  # metres per Z16 count (a D400 "high accuracy" setting, not the ROS millimetre)


@dataclass
class RealsenseSpec:
    """A RealSense Viewer recording: librealsense's topics, ROS 1 storage, lz4 chunks."""

    frames: int = 4
    t_cd: np.ndarray = field(default_factory=lambda: T_CD)  # depth optical -> colour optical
    reference: np.ndarray = field(default_factory=lambda: rigid([0.002, -0.001, 0.0005], [0.0, 0.0, 0.0087265, 0.9999619]))
    depth_unit: float = RS_DEPTH_UNIT
    padding_mib: int = 0  # bytes of an unrelated topic (e.g. an IMU/lidar stream) to make the file large



def write_messages(writer, msgs, typestore, serialize) -> None:
    """Every (topic, type, stamp_ns, message) through an open rosbags writer, one connection per topic."""
    conns = {}
    for topic, msgtype, _, _ in msgs:
        if topic not in conns:
            conns[topic] = writer.add_connection(topic, msgtype, typestore=typestore)
    for topic, msgtype, ns, msg in msgs:
        writer.write(conns[topic], ns, serialize(msg, msgtype))

def _header1(ns: int, frame: str, seq: int = 0):
    return T1["std_msgs/msg/Header"](seq=seq, stamp=T1["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                     frame_id=frame)


def _image1(ns, arr, encoding, seq):
    h, w = arr.shape[:2]
    data = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
    return T1["sensor_msgs/msg/Image"](header=_header1(ns, "0", seq), height=h, width=w, encoding=encoding,
                                       is_bigendian=0, step=data.size // h, data=data)


def _info1(k: Intrinsics):
    """CameraInfo as librealsense writes it: empty frame id, 'Brown Conrady', zero R and P."""
    return T1["sensor_msgs/msg/CameraInfo"](
        header=_header1(0, ""), height=k.height, width=k.width, distortion_model="Brown Conrady",
        D=np.zeros(5), K=np.array([k.fx, 0, k.cx, 0, k.fy, k.cy, 0, 0, 1], np.float64), R=np.zeros(9), P=np.zeros(12),
        binning_x=0, binning_y=0,
        roi=T1["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def _transform1(pose: np.ndarray):
    q = _quaternion(pose[:3, :3])
    return T1["geometry_msgs/msg/Transform"](
        translation=T1["geometry_msgs/msg/Vector3"](x=pose[0, 3], y=pose[1, 3], z=pose[2, 3]),
        rotation=T1["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]))


def realsense_messages(spec: RealsenseSpec) -> list[tuple[str, str, int, object]]:
    """librealsense's topics: tf/0 is each stream's extrinsic from the group's reference to the stream."""
    dev, col, dep = "/device_0", "/device_0/sensor_1/Color_0", "/device_0/sensor_0/Depth_0"
    t_depth_ref = spec.reference  # points in the reference -> points in the depth camera
    t_colour_ref = spec.t_cd @ t_depth_ref
    depth = raycast(K_DEPTH, spec.t_cd)
    depth[:3] = 0.0
    counts = np.round(depth / spec.depth_unit).astype(np.uint16)
    out = [(f"{dep}/info/camera_info", "sensor_msgs/msg/CameraInfo", 1, _info1(K_DEPTH)),
           (f"{col}/info/camera_info", "sensor_msgs/msg/CameraInfo", 1, _info1(K_COLOUR)),
           (f"{dev}/sensor_0/option/Depth Units/value", "std_msgs/msg/Float32", 1,
            T1["std_msgs/msg/Float32"](data=spec.depth_unit)),
           (f"{dep}/tf/0", "geometry_msgs/msg/Transform", 1, _transform1(t_depth_ref)),
           (f"{col}/tf/0", "geometry_msgs/msg/Transform", 1, _transform1(t_colour_ref))]
    pad = spec.padding_mib // max(1, spec.frames)
    for i in range(spec.frames):
        tc, td = START_NS + i * PERIOD_NS, START_NS + i * PERIOD_NS + 3_000_000
        out.append((f"{col}/image/data", "sensor_msgs/msg/Image", tc + 2_000_000, _image1(tc, colour_pixels(i), "rgb8", i)))
        out.append((f"{dep}/image/data", "sensor_msgs/msg/Image", td + 1_000_000, _image1(td, counts, "mono16", i)))
        for j in range(pad):
            blob = np.random.default_rng(i * 1000 + j).integers(0, 256, 1 << 20, np.uint8)  # incompressible
            out.append(("/device_0/sensor_2/Accel_0/imu/data_raw", "std_msgs/msg/UInt8MultiArray",
                        td + 2_000_000 + j, T1["std_msgs/msg/UInt8MultiArray"](
                            layout=T1["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0), data=blob)))
    return sorted(out, key=lambda m: m[2])


def write_realsense_bag(path: Path, spec: RealsenseSpec) -> Path:
    """A `.bag` as the RealSense Viewer writes one, with rosbags' ROS 1 writer (lz4 chunks)."""
    msgs = realsense_messages(spec)
    writer = Writer1(path)
    writer.set_compression(Writer1.CompressionFormat.LZ4)
    with writer:
        write_messages(writer, msgs, TS1, TS1.serialize_ros1)
    return path
