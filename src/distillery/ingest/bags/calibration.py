"""What a bag says about its cameras: which topics, their intrinsics, depth unit and depth-to-colour transform.

Every value is found without flags where the bag's own conventions allow,
flags override, and each value's origin is recorded (`Found.origins`) for
the extraction report:

- topics: the flag, else the librealsense layout (`realsense.py`), else an
  error listing the bag's image and CameraInfo topics with types and counts;
- CameraInfo: the flag, else image_transport's naming (`info_topic`), else
  the librealsense `info/camera_info` beside the stream;
- depth unit of integer depth: the flag, else the librealsense `Depth Units`
  option, else millimetres (the ROS convention for 16UC1);
- depth-to-colour: `--registered`, else `--extrinsic`, else the librealsense
  per-stream `tf/<group>` extrinsics, else the /tf_static chain between the
  two header frame ids. Equal frame ids are taken as one frame only when the
  intrinsics agree too; otherwise the extraction stops and asks for
  `--registered` or `--extrinsic` (a shared id such as librealsense's "0"
  says nothing about the cameras being one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from distillery.ingest.bags import decode, geometry, realsense
from distillery.ingest.bags.source import IMAGE_TYPES, INFO_TYPE, BagError, BagSource

TF_TYPE = "tf2_msgs/msg/TFMessage"
TRANSPORTS = ("compressed", "compressedDepth", "theora", "zstd", "ffmpeg", "h264")


@dataclass
class Camera:
    topic: str
    info_topic: str
    msgtype: str = ""
    intrinsics: object = None
    model: str = ""
    distortion: np.ndarray = field(default_factory=lambda: np.zeros(0))
    frame_id: str = ""
    stamps: list[int] = field(default_factory=list)
    locator: tuple[int, str] | None = None  # where header.stamp sits in this topic's serialised bytes
    image_frame_id: str | None = None  # header frame id of the first image

    def stamp(self, source: BagSource, raw: bytes) -> int:
        if self.locator is None:
            self.locator = decode.stamp_locator(raw, source.deserialize(raw, self.msgtype), source.ros1)
        return decode.header_stamp_ns(raw, *self.locator)


@dataclass
class Found:
    """The cameras of a bag and where each setting came from."""

    cams: dict[str, Camera]
    layout: realsense.Layout | None
    origins: dict[str, str]
    edges: dict = field(default_factory=dict)  # /tf_static (parent, child) -> pose
    rs_poses: dict = field(default_factory=dict)  # librealsense role -> T_stream<-reference
    depth_unit: float = 0.001
    seen: set = field(default_factory=set)  # calibration topics (transforms, options) read so far


def info_topic(topic: str) -> str:
    """image_transport's CameraInfo of an image topic: `<ns>/<image>[/<transport>]` -> `<ns>/camera_info`.

    /camera/color/image_raw and /camera/color/image_raw/compressed both give
    /camera/color/camera_info; librealsense's `.../image/data` gives
    `.../info/camera_info`.
    """
    if realsense.IMAGE.match(topic):
        return topic[: -len("/image/data")] + "/info/camera_info"
    parts = topic.rstrip("/").split("/")
    if len(parts) > 2 and parts[-1] in TRANSPORTS:
        parts = parts[:-1]
    return "/".join(parts[:-1]) + "/camera_info"


def find_cameras(source: BagSource, s) -> Found:
    """The colour, depth (and confidence) cameras of `source` under settings `s`, checked to exist."""
    layout = realsense.detect(source)
    origins: dict[str, str] = {}
    topics = {}
    for role in ("color", "depth"):
        flag = getattr(s, f"{role}_topic")
        if flag:
            topics[role], origins[f"{role}_topic"] = flag, "setting"
        elif layout is not None:
            topics[role], origins[f"{role}_topic"] = getattr(layout, role).topic, "librealsense layout"
        else:
            raise BagError(f"{source.path}: no {role} topic given (--{role}-topic) and the bag is not in a layout "
                           f"whose topics are known; image and info topics (name, type, messages):\n"
                           f"{source.listing()}")
    cams = {}
    for role, topic in topics.items():
        info = getattr(s, f"{role}_info_topic")
        origins[f"{role}_info_topic"] = "setting" if info else (
            "librealsense layout" if realsense.IMAGE.match(topic) else "image_transport naming of the image topic")
        cams[role] = Camera(topic, info or info_topic(topic))
        cams[role].msgtype = source.require(topic, IMAGE_TYPES, f"{role} images", f"--{role}-topic").msgtype
        if cams[role].info_topic not in source.topics:
            raise BagError(f"{source.path}: no CameraInfo for the {role} topic {topic!r}: expected on "
                           f"{cams[role].info_topic!r} (set --{role}-info-topic); intrinsics cannot be guessed; "
                           f"image and info topics (name, type, messages):\n{source.listing()}")
        source.require(cams[role].info_topic, (INFO_TYPE,), f"{role} CameraInfo", f"--{role}-info-topic")
    if s.confidence_topic:
        decode.confidence_mapping(s.confidence_scale, s.confidence_range, s.confidence_topic)
        cams["confidence"] = Camera(s.confidence_topic, "")
        cams["confidence"].msgtype = source.require(s.confidence_topic, ("sensor_msgs/msg/Image",),
                                                    "confidence/IR images", "--confidence-topic").msgtype
    if layout is not None and (layout.color.topic, layout.depth.topic) != (topics["color"], topics["depth"]):
        layout = None  # the user chose other streams: the layout's calibration topics are not theirs
    return Found(cams, layout, origins)


def first_pass(source: BagSource, found: Found, s) -> None:
    """Header stamps of the image topics, each CameraInfo, /tf_static and the librealsense calibration."""
    for topic, _, raw in source.messages(calibration_topics(source, found, s)):
        absorb(source, found, s, topic, raw)
    close(source, found, s)


def calibration_topics(source: BagSource, found: Found, s) -> set[str]:
    """The image, CameraInfo, transform and librealsense option topics that the first pass reads."""
    extra = found.layout.extra_topics() if found.layout else set()
    tf = {s.tf_topic} if s.tf_topic in source.topics else set()
    return {c.topic for c in found.cams.values()} | {c.info_topic for c in found.cams.values() if c.info_topic} \
        | extra | tf


def absorb(source: BagSource, found: Found, s, topic: str, raw: bytes) -> int | None:
    """Take what one message says about the cameras; returns its header stamp when it is an image of a camera.

    The first CameraInfo of a camera counts; later transforms and depth units replace earlier ones."""
    stamp = None
    for cam in found.cams.values():
        if topic == cam.topic:
            stamp = cam.stamp(source, raw)
            cam.stamps.append(stamp)
            if cam.image_frame_id is None:
                cam.image_frame_id = source.deserialize(raw, cam.msgtype).header.frame_id
        if topic == cam.info_topic and cam.intrinsics is None:
            msg = source.deserialize(raw, INFO_TYPE)
            cam.intrinsics, cam.model, cam.distortion = decode.camera_info(msg, topic)
            cam.frame_id = msg.header.frame_id
    if topic == s.tf_topic:
        for tf in source.deserialize(raw, TF_TYPE).transforms:
            tr, q = tf.transform.translation, tf.transform.rotation
            pose = geometry.rigid((tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w))
            found.edges[(tf.header.frame_id, tf.child_frame_id)] = pose
        found.seen.add(topic)
    if found.layout is not None:
        tf_roles = {t: r for r, t in found.layout.tf.items()}
        if topic in tf_roles:
            found.rs_poses[tf_roles[topic]] = realsense.transform(source.deserialize(raw, realsense.TF_TYPE))
            found.seen.add(topic)
        if topic == found.layout.unit_topic and s.depth_unit is None:
            found.depth_unit = float(source.deserialize(raw, realsense.UNIT_TYPE).data)
            found.origins["depth_unit"] = f"librealsense option {topic}"
            found.seen.add(topic)
    return stamp


def ready(source: BagSource, found: Found, s) -> bool:
    """Whether every calibration topic of the bag has given a message, so frames can be finished mid-pass."""
    cams = found.cams
    if any(cams[r].intrinsics is None or cams[r].image_frame_id is None for r in ("color", "depth")):
        return False
    pending = {s.tf_topic} if s.tf_topic in source.topics and not (s.registered or s.extrinsic) else set()
    if found.layout is not None:
        pending |= set(found.layout.tf.values()) if not (s.registered or s.extrinsic) else set()
        pending |= {found.layout.unit_topic} if s.depth_unit is None else set()
    return all(t in found.seen for t in pending if t in source.topics)


def close(source: BagSource, found: Found, s) -> None:
    """After the last message: the depth unit's origin, and errors for cameras that said nothing."""
    cams = found.cams
    if s.depth_unit is not None:
        found.depth_unit, found.origins["depth_unit"] = float(s.depth_unit), "setting"
    found.origins.setdefault("depth_unit", "ROS convention: 16UC1 depth in millimetres")
    for role in ("color", "depth"):
        if cams[role].intrinsics is None:
            raise BagError(f"{source.path}: CameraInfo topic {cams[role].info_topic!r} has no readable message")
        if not cams[role].stamps:
            raise BagError(f"{source.path}: topic {cams[role].topic!r} has no readable message")
    _image_frame_ids(found)


def _image_frame_ids(found: Found) -> None:
    """CameraInfo frame ids can be empty (librealsense writes ""); the images' own header frame id then."""
    for role in ("color", "depth"):
        cam = found.cams[role]
        if not cam.frame_id:
            cam.frame_id = cam.image_frame_id or ""


def check_distortion(cams: dict[str, Camera], s) -> None:
    for role in ("color", "depth"):
        cam = cams[role]
        if not geometry.is_distorted(cam.distortion):
            continue
        coeffs = ", ".join(f"{x:g}" for x in cam.distortion)
        if not s.undistort:
            raise BagError(f"CameraInfo {cam.info_topic!r}: the {role} images are distorted ({cam.model}, "
                           f"D=[{coeffs}]) and are stored as pinhole images; pass --undistort (bag entry "
                           "`undistort: true`) to undistort them, or record rectified topics")
        if cam.model not in geometry.UNDISTORT_MODELS:
            raise BagError(f"CameraInfo {cam.info_topic!r}: {cam.model!r} distortion cannot be undistorted "
                           f"(supported: {', '.join(geometry.UNDISTORT_MODELS)}); record rectified topics")


def depth_to_colour(found: Found, s, source: BagSource) -> np.ndarray:
    """4x4 transform from the depth camera's optical frame to the colour camera's; its origin in `found`."""
    cams, origins = found.cams, found.origins
    if s.registered:
        origins["depth_to_color"] = "setting: registered (depth already aligned to colour)"
        return np.eye(4)
    if s.extrinsic is not None:
        origins["depth_to_color"] = "setting: extrinsic"
        return geometry.rigid(s.extrinsic["translation"], s.extrinsic["rotation"])
    rs = realsense.depth_to_colour(found.rs_poses)
    if rs is not None:
        origins["depth_to_color"] = f"librealsense extrinsics {found.layout.tf['depth']} and {found.layout.tf['color']}"
        return rs
    d, c = cams["depth"].frame_id, cams["color"].frame_id
    if d == c:
        if cams["depth"].intrinsics == cams["color"].intrinsics:
            origins["depth_to_color"] = f"one frame: equal frame ids ({d!r}) and equal intrinsics"
            return np.eye(4)
        raise BagError(f"{source.path}: depth and colour images share the frame id {d!r} but their intrinsics differ "
                       f"and no transform in the bag relates them; pass --registered if the depth is already "
                       "aligned to colour, or --extrinsic with the depth-to-colour transform")
    if s.tf_topic not in source.topics:
        raise BagError(f"{source.path}: depth ({d!r}) and colour ({c!r}) are different frames and the bag has no "
                       f"{s.tf_topic} topic; give the transform with --extrinsic, or --registered if the depth "
                       "is already aligned to colour")
    origins["depth_to_color"] = f"{s.tf_topic} chain {d!r} -> {c!r}"
    return geometry.chain(found.edges, d, c)
