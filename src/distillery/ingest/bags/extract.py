"""Extract a ROS 2 bag into the native layout: `distillery extract-bag BAG --out DIR`.

Two passes over the bag. The first reads only header stamps of the image
topics (straight from the CDR bytes), the CameraInfo of each camera and the
/tf_static transforms, and pairs colour with depth by header stamp (never
the record time, which carries transport delays): one-to-one, closest first,
within `tolerance` seconds (bags default to 50 ms). The second decodes the
paired images, undistorts them when asked, re-projects depth that is not
registered to colour into the colour camera, and writes one native sequence
folder per `sequence_seconds` of recording (all in one when unset)::

    DIR/seq-000/rgb/000000.png, depth/000000.npy, [confidence/000000.npy],
                intrinsics.json, timestamps.txt
    DIR/extract.json     what was read, paired, dropped and how (the report)

The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from distillery.ingest.bags import decode, geometry
from distillery.ingest.bags.source import BagError, BagSource, open_bag
from distillery.ingest.readers.tum import associate

log = logging.getLogger(__name__)

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
INFO_TYPE = ("sensor_msgs/msg/CameraInfo",)
TF_TYPE = ("tf2_msgs/msg/TFMessage",)


@dataclass
class BagSettings:
    """How to read one bag (the `bag:` entry of a dataset in the config)."""

    color_topic: str
    depth_topic: str
    color_info_topic: str | None = None  # default: camera_info next to color_topic
    depth_info_topic: str | None = None  # default: camera_info next to depth_topic
    confidence_topic: str | None = None  # IR amplitude or confidence, registered to depth
    tolerance: float = 0.05  # seconds between paired colour and depth header stamps
    sequence_seconds: float | None = None  # cut the recording into sequences of this length
    extrinsic: dict | None = None  # depth->colour {"translation": [x,y,z], "rotation": [x,y,z,w]}
    registered: bool = False  # depth already aligned to the colour camera
    undistort: bool = False  # undistort plumb_bob/rational_polynomial images instead of refusing
    tf_topic: str = "/tf_static"


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
    stamp_offset: int | None = None  # where header.stamp sits in this topic's CDR bytes

    def stamp(self, source: BagSource, raw: bytes) -> int:
        if self.stamp_offset is None:
            self.stamp_offset = decode.stamp_offset(raw, source.deserialize(raw, self.msgtype))
        return decode.header_stamp_ns(raw, self.stamp_offset)


def sibling_info(topic: str) -> str:
    """/camera/color/image_raw -> /camera/color/camera_info."""
    return topic.rsplit("/", 1)[0] + "/camera_info"


def _cameras(source: BagSource, s: BagSettings) -> dict[str, Camera]:
    cams = {"color": Camera(s.color_topic, s.color_info_topic or sibling_info(s.color_topic)),
            "depth": Camera(s.depth_topic, s.depth_info_topic or sibling_info(s.depth_topic))}
    for role, cam in cams.items():
        cam.msgtype = source.require(cam.topic, IMAGE_TYPES, f"{role} images", f"--{role}-topic").msgtype
        if cam.info_topic not in source.topics:
            raise BagError(f"{source.path}: no CameraInfo for the {role} topic {cam.topic!r}: expected on "
                           f"{cam.info_topic!r} (set --{role}-info-topic); intrinsics cannot be guessed")
        source.require(cam.info_topic, INFO_TYPE, f"{role} CameraInfo", f"--{role}-info-topic")
    if s.confidence_topic:
        cams["confidence"] = Camera(s.confidence_topic, "")
        cams["confidence"].msgtype = source.require(s.confidence_topic, ("sensor_msgs/msg/Image",),
                                                    "confidence/IR images", "--confidence-topic").msgtype
    return cams


def _first_pass(source: BagSource, cams: dict[str, Camera], s: BagSettings) -> dict:
    """Header stamps of the image topics, each camera's CameraInfo, and the /tf_static edges."""
    by_topic = {c.topic: c for c in cams.values()}
    infos = {c.info_topic: c for c in cams.values() if c.info_topic}
    edges: dict[tuple[str, str], np.ndarray] = {}
    wanted = set(by_topic) | set(infos) | ({s.tf_topic} if s.tf_topic in source.topics else set())
    for topic, _, raw in source.messages(wanted):
        if topic in by_topic:
            by_topic[topic].stamps.append(by_topic[topic].stamp(source, raw))
        if topic in infos and infos[topic].intrinsics is None:
            cam, msg = infos[topic], source.deserialize(raw, INFO_TYPE[0])
            cam.intrinsics, cam.model, cam.distortion = decode.camera_info(msg, topic)
            cam.frame_id = msg.header.frame_id
        if topic == s.tf_topic:
            for tf in source.deserialize(raw, TF_TYPE[0]).transforms:
                tr, q = tf.transform.translation, tf.transform.rotation
                edges[(tf.header.frame_id, tf.child_frame_id)] = geometry.rigid((tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w))
    for role in ("color", "depth"):
        if cams[role].intrinsics is None:
            raise BagError(f"{source.path}: CameraInfo topic {cams[role].info_topic!r} has no readable message")
        if not cams[role].stamps:
            raise BagError(f"{source.path}: topic {cams[role].topic!r} has no readable message")
    return edges


def _check_distortion(cams: dict[str, Camera], s: BagSettings) -> None:
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


def depth_to_colour(cams: dict[str, Camera], edges: dict, s: BagSettings, source: BagSource) -> np.ndarray:
    """4x4 transform from the depth camera's optical frame to the colour camera's."""
    if s.registered:
        return np.eye(4)
    if s.extrinsic is not None:
        return geometry.rigid(s.extrinsic["translation"], s.extrinsic["rotation"])
    d, c = cams["depth"].frame_id, cams["color"].frame_id
    if d == c:
        return np.eye(4)
    if s.tf_topic not in source.topics:
        raise BagError(f"{source.path}: depth ({d!r}) and colour ({c!r}) are different frames and the bag has no "
                       f"{s.tf_topic} topic; give the transform with --extrinsic, or --registered if the depth "
                       "is already aligned to colour")
    return geometry.chain(edges, d, c)


def pair_frames(color: list[int], depth: list[int], tolerance: float) -> list[tuple[int, int]]:
    """(colour stamp, depth stamp) pairs in colour order, one-to-one, closest first within `tolerance` s."""
    cs, ds = sorted(set(color)), sorted(set(depth))
    pairs = associate([t / 1e9 for t in cs], [t / 1e9 for t in ds], tolerance)
    return [(cs[i], ds[j]) for i, j in sorted(pairs.items())]


def _sequence_of(stamps: list[int], seconds: float | None) -> list[int]:
    if not seconds:
        return [0] * len(stamps)
    start = stamps[0] if stamps else 0
    return [int((t - start) / 1e9 // seconds) for t in stamps]


@dataclass
class Plan:
    """Which messages make which frame: pairs in colour-stamp order, their sequence and frame number."""

    pairs: list[tuple[int, int]]
    sequences: list[int]
    confidence: dict[int, int]  # depth stamp -> confidence stamp

    numbers: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        seen: dict[int, int] = {}
        for seq in self.sequences:
            self.numbers.append(seen.get(seq, 0))
            seen[seq] = self.numbers[-1] + 1

    def frame_number(self, index: int) -> int:
        """Position of pair `index` in its sequence: ids follow header stamps, not storage order."""
        return self.numbers[index]


def _write_frame(folder: Path, frame_id: str, rgb: np.ndarray, depth: np.ndarray, conf: np.ndarray | None) -> None:
    Image.fromarray(rgb).save(folder / "rgb" / f"{frame_id}.png")
    np.save(folder / "depth" / f"{frame_id}.npy", depth.astype(np.float32))
    if conf is not None:
        np.save(folder / "confidence" / f"{frame_id}.npy", conf.astype(np.float32))


class Writer:
    """Turns decoded colour/depth/confidence of one pair into a native frame on disk."""

    def __init__(self, tmp: Path, cams: dict[str, Camera], t_cd: np.ndarray, s: BagSettings, plan: Plan):
        self.tmp, self.cams, self.t_cd, self.s, self.plan = tmp, cams, t_cd, s, plan
        self.counts: dict[int, int] = {}
        self.stamps: dict[int, list[str]] = {}
        self.mapping: str | None = None

    def folder(self, seq: int) -> Path:
        folder = self.tmp / f"seq-{seq:03d}"
        if seq not in self.counts:
            for sub in ("rgb", "depth") + (("confidence",) if "confidence" in self.cams else ()):
                (folder / sub).mkdir(parents=True, exist_ok=True)
            self.counts[seq], self.stamps[seq] = 0, []
        return folder

    def _rectify(self, role: str, image: np.ndarray, nearest: bool) -> np.ndarray:
        cam = self.cams[role]
        if self.s.undistort and geometry.is_distorted(cam.distortion):
            return geometry.undistort(image, cam.intrinsics, cam.model, cam.distortion, nearest)
        return image

    def _check_size(self, role: str, image: np.ndarray) -> None:
        k = self.cams[role].intrinsics
        if image.shape[:2] != (k.height, k.width):
            raise BagError(f"topic {self.cams[role].topic!r}: image is {image.shape[1]}x{image.shape[0]} but "
                           f"CameraInfo {self.cams[role].info_topic!r} says {k.width}x{k.height}")

    def write(self, index: int, parts: dict[str, np.ndarray]) -> None:
        rgb, depth, conf = parts["color"], parts["depth"], parts.get("confidence")
        self._check_size("color", rgb)
        self._check_size("depth", depth)
        rgb = self._rectify("color", rgb, nearest=False)
        depth = self._rectify("depth", depth, nearest=True)
        if conf is not None:
            if conf.shape != depth.shape:
                raise BagError(f"topic {self.s.confidence_topic!r}: confidence is {conf.shape[1]}x{conf.shape[0]}, "
                               f"depth is {depth.shape[1]}x{depth.shape[0]}; it must be registered to depth")
            conf = self._rectify("depth", conf, nearest=True)
        kd, kc = self.cams["depth"].intrinsics, self.cams["color"].intrinsics
        if not (kd == kc and np.allclose(self.t_cd, np.eye(4))):
            depth, conf = geometry.reproject_depth(depth, kd, kc, self.t_cd, conf)
        seq = self.plan.sequences[index]
        folder = self.folder(seq)
        frame_id = f"{self.plan.frame_number(index):06d}"
        _write_frame(folder, frame_id, rgb, depth, conf)
        self.counts[seq] += 1
        ns = self.plan.pairs[index][0]
        self.stamps[seq].append(f"{frame_id} {ns // 10**9}.{ns % 10**9:09d}")

    def finish(self) -> None:
        k = self.cams["color"].intrinsics.to_dict()
        for seq, lines in self.stamps.items():
            folder = self.folder(seq)
            lines.sort()
            (folder / "intrinsics.json").write_text(json.dumps(k) + "\n")
            (folder / "timestamps.txt").write_text("\n".join(lines) + "\n")


def _decode(source: BagSource, role: str, cam: Camera, raw: bytes, writer: Writer) -> np.ndarray:
    msg = source.deserialize(raw, cam.msgtype)
    if role == "color":
        return decode.colour_image(msg, cam.msgtype, cam.topic)
    if role == "depth":
        return decode.depth_image(msg, cam.msgtype, cam.topic)
    conf, writer.mapping = decode.confidence_image(msg, cam.topic)
    return conf


def _second_pass(source: BagSource, cams: dict[str, Camera], plan: Plan, writer: Writer, progress: bool) -> int:
    """Decode the paired messages and write them; returns how many frames were written."""
    needed: dict[tuple[str, int], list[int]] = {}
    for i, (tc, td) in enumerate(plan.pairs):
        needed.setdefault(("color", tc), []).append(i)
        needed.setdefault(("depth", td), []).append(i)
        if td in plan.confidence:
            needed.setdefault(("confidence", plan.confidence[td]), []).append(i)
    role_of = {c.topic: r for r, c in cams.items()}
    want = {i: 2 + (plan.pairs[i][1] in plan.confidence) for i in range(len(plan.pairs))}
    pending: dict[int, dict[str, np.ndarray]] = {}
    done, written = set(), 0
    total = sum(len(c.stamps) for c in cams.values())
    for topic, _, raw in tqdm(source.messages(set(role_of)), total=total, desc="extract", unit="msg",
                              disable=not progress):
        role = role_of[topic]
        key = (role, cams[role].stamp(source, raw))
        if key not in needed or key in done:
            continue
        done.add(key)
        image = _decode(source, role, cams[role], raw, writer)
        for i in needed[key]:
            pending.setdefault(i, {})[role] = image
            if len(pending[i]) == want[i]:
                writer.write(i, pending.pop(i))
                written += 1
    return written


def extract_bag(bag: str, out_dir: str, settings: BagSettings, progress: bool = True) -> dict:
    """Write the native layout of `bag` into `out_dir` and return the extraction report."""
    source = open_bag(bag)
    cams = _cameras(source, settings)
    edges = _first_pass(source, cams, settings)
    _check_distortion(cams, settings)
    t_cd = depth_to_colour(cams, edges, settings, source)
    pairs = pair_frames(cams["color"].stamps, cams["depth"].stamps, settings.tolerance)
    if not pairs:
        raise BagError(f"{bag}: no colour frame on {settings.color_topic!r} has a depth frame on "
                       f"{settings.depth_topic!r} within {settings.tolerance} s (header stamps); "
                       "check the topics or raise the pairing tolerance")
    confidence = {}
    if "confidence" in cams:
        ds, cs = sorted({d for _, d in pairs}), sorted(set(cams["confidence"].stamps))
        confidence = {ds[i]: cs[j] for i, j in associate([t / 1e9 for t in ds], [t / 1e9 for t in cs],
                                                          settings.tolerance).items()}
    plan = Plan(pairs, _sequence_of([c for c, _ in pairs], settings.sequence_seconds), confidence)
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        writer = Writer(tmp, cams, t_cd, settings, plan)
        written = _second_pass(source, cams, plan, writer, progress)
        writer.finish()
        report = _report(bag, source, cams, settings, plan, t_cd, written, writer)
        (tmp / "extract.json").write_text(json.dumps(report, indent=1) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if source.truncated:
        log.warning("%s is truncated: extracted the %d readable messages' %d frames", bag, source.salvaged, written)
    return report


def _report(bag: str, source: BagSource, cams: dict[str, Camera], s: BagSettings, plan: Plan,
            t_cd: np.ndarray, written: int, writer: Writer) -> dict:
    paired_c, paired_d = {c for c, _ in plan.pairs}, {d for _, d in plan.pairs}
    registration = "registered" if s.registered or np.allclose(t_cd, np.eye(4)) and \
        cams["depth"].intrinsics == cams["color"].intrinsics else "reprojected"
    return {
        "bag": str(Path(bag).resolve()), "truncated": source.truncated,
        "readable_messages": source.salvaged if source.truncated else None,
        "settings": asdict(s), "frames": written, "sequences": {f"seq-{k:03d}": v for k, v in writer.counts.items()},
        "topics": {r: {"topic": c.topic, "type": c.msgtype, "messages": len(c.stamps)} for r, c in cams.items()},
        "unpaired_color": len(set(cams["color"].stamps) - paired_c),
        "unpaired_depth": len(set(cams["depth"].stamps) - paired_d),
        "duplicate_stamps": {r: len(c.stamps) - len(set(c.stamps)) for r, c in cams.items()},
        "stamps": "header", "depth_registration": registration, "depth_to_color": t_cd.round(9).tolist(),
        "undistorted": [r for r in ("color", "depth") if s.undistort and geometry.is_distorted(cams[r].distortion)],
        "confidence": None if "confidence" not in cams else
        {"topic": s.confidence_topic, "mapping": writer.mapping, "range": [0.0, 1.0]},
    }
