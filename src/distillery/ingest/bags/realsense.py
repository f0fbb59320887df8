"""The librealsense recorder's bag layout (RealSense Viewer, `rs2::recorder`), recognised by its topics.

librealsense writes ROS 1 bags with its own topic names, not realsense-ros's
(src/media/ros/ros_file_format.h, `ros_topic`, in IntelRealSense/librealsense)::

    /device_<d>/sensor_<s>/<Stream>_<i>/image/data            sensor_msgs/Image
    /device_<d>/sensor_<s>/<Stream>_<i>/info/camera_info      sensor_msgs/CameraInfo
    /device_<d>/sensor_<s>/<Stream>_<i>/tf/<group>            geometry_msgs/Transform
    /device_<d>/sensor_<s>/option/Depth Units/value           std_msgs/Float32

Conventions, as librealsense itself reads and writes them:

- Extrinsics (`ros_writer::write_extrinsics`, src/media/ros/ros_writer.cpp):
  `tf/<group>` holds `device::get_extrinsics(stream)`, i.e. the extrinsics
  *from the group's reference stream to this stream* (src/device.cpp,
  `try_fetch_extrinsics(*pin_stream, stream)`). `ros_reader::
  try_read_stream_extrinsic` (src/media/ros/ros_reader.cpp) converts the
  message back with `convert(Transform, rs2_extrinsics)` (ros_file_format.h,
  `quat2rot`: the usual quaternion matrix, stored column-major), and
  `rs2_transform_point_to_point` (src/rs.cpp) applies it as
  `p_to = R p_from + t`. So `T_stream<-ref = rigid(t, q)`, and depth to
  colour is `T_color<-ref @ inv(T_depth<-ref)` within one group (the
  playback device composes the same way, `playback_device::calc_extrinsic`).
  On a D435 the reference is the depth stream (its tf is the identity) and
  colour sits about 15 mm along +x.
- Depth units (`ros_reader`, `depth_sensor_snapshot(option DEPTH_UNITS)`):
  metres per raw Z16 count, the `Depth Units` option of the depth sensor
  (written with the space in older files, `Depth_Units` in newer ones).
- Image headers carry the stream index as frame id (`"0"` for both), which
  says nothing about the frames being the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from distillery.ingest.bags import geometry
from distillery.ingest.bags.source import BagError, BagSource

IMAGE = re.compile(r"^(/device_(\d+)/sensor_(\d+))/(Color|Depth|Infrared|Confidence)_(\d+)/image/data$")
TF_TYPE = "geometry_msgs/msg/Transform"
UNIT_TYPE = "std_msgs/msg/Float32"


@dataclass
class Stream:
    topic: str  # .../image/data
    sensor: str  # /device_d/sensor_s

    @property
    def prefix(self) -> str:
        return self.topic[: -len("/image/data")]

    @property
    def info_topic(self) -> str:
        return self.prefix + "/info/camera_info"


@dataclass
class Layout:
    """The topics that a librealsense bag holds for colour and depth, and its extra calibration topics."""

    color: Stream
    depth: Stream
    tf: dict[str, str]  # role -> .../tf/<group> topic
    unit_topic: str | None

    def extra_topics(self) -> set[str]:
        return set(self.tf.values()) | ({self.unit_topic} if self.unit_topic else set())


def _streams(source: BagSource, kind: str) -> list[Stream]:
    return [Stream(t, m.group(1)) for t in sorted(source.topics)
            if (m := IMAGE.match(t)) and m.group(4) == kind and source.topics[t].count]


def detect(source: BagSource) -> Layout | None:
    """The librealsense layout of `source`, or None when its topics are not laid out that way."""
    colours, depths = _streams(source, "Color"), _streams(source, "Depth")
    if not colours or not depths:
        return None
    for role, found in (("color", colours), ("depth", depths)):
        if len(found) > 1:
            names = ", ".join(s.topic for s in found)
            raise BagError(f"{source.path}: librealsense bag with several {role} streams ({names}); "
                           f"choose one with --{role}-topic")
    color, depth = colours[0], depths[0]
    tf = {}
    for role, stream in (("color", color), ("depth", depth)):
        groups = sorted(t for t in source.topics if t.startswith(stream.prefix + "/tf/")
                        and source.topics[t].msgtype == TF_TYPE)
        if groups:
            tf[role] = groups[0]
    if len(tf) == 2 and tf["color"].rsplit("/", 1)[1] != tf["depth"].rsplit("/", 1)[1]:
        tf = {}  # different extrinsic groups: no common reference
    unit = next((t for t in (depth.sensor + "/option/Depth Units/value", depth.sensor + "/option/Depth_Units/value")
                 if t in source.topics and source.topics[t].msgtype == UNIT_TYPE), None)
    return Layout(color, depth, tf, unit)


def transform(msg) -> np.ndarray:
    """`T_stream<-reference` of a librealsense `tf/<group>` message."""
    tr, q = msg.translation, msg.rotation
    return geometry.rigid((tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w))


def depth_to_colour(poses: dict[str, np.ndarray]) -> np.ndarray | None:
    """Depth optical -> colour optical from both streams' extrinsics to their common reference."""
    if "color" not in poses or "depth" not in poses:
        return None
    return poses["color"] @ np.linalg.inv(poses["depth"])
