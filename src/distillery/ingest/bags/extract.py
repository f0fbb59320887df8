"""Extract a ROS 1 or ROS 2 bag into the native layout: `distillery extract-bag BAG --out DIR`.

One pass over the bag (stream.py) reads the header stamps of the image
topics (straight from the serialised bytes), the CameraInfo of each camera,
the transforms and depth unit (calibration.py says where each comes from),
and pairs colour with depth by header stamp (never the record time, which
carries transport delays): one-to-one, closest first, within `tolerance`
seconds (bags default to 50 ms). Each final pair is decoded, undistorted
when asked, its depth re-projected into the colour camera when it is not
registered to colour, and written into one native sequence folder per
`sequence_seconds` of recording (all in one when unset)::

    DIR/seq-000/rgb/000000.png, depth/000000.npy, [confidence/000000.npy],
                intrinsics.json, timestamps.txt
    DIR/extract.json     what was read, paired, dropped and how (the report)

At the end the streamed pairs are checked against the pairing of all stamps
and the calibration as read to the end; when they differ (or a confidence
topic is mapped, which is paired with the paired depth afterwards), a second
pass writes the frames from the recorded stamps. `extract.json` says how
many passes were read. The folder is written under a temporary name and
renamed, fsynced, when complete.

Confidence comes only from an explicit mapping of an IR/confidence topic;
when the share of valid depth it trusts (confidence >= 0.5, the gate of
training and fusion, `distillery.confidence`) falls below `trusted_floor`,
the extraction warns in the log and in extract.json.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from distillery.atomic import atomic_write
from distillery.confidence import TRUSTED_FLOOR, trusted_counts, trusted_warning
from distillery.ingest import native_writer
from distillery.ingest.bags import calibration, decode, geometry
from distillery.ingest.bags.calibration import Camera, Found
from distillery.ingest.bags.source import BagError, BagSource, open_bag
from distillery.ingest.bags.stream import NotReady, decode_part, pair_frames, stream_pass
from distillery.ingest.native_writer import NATIVE_FILES
from distillery.ingest.readers.tum import associate

log = logging.getLogger(__name__)

WORKERS = 4  # threads that re-project and write frames while the bag is read


@dataclass
class BagSettings:
    """How to read one bag (the `bag:` entry of a dataset in the config)."""

    color_topic: str | None = None  # default: the bag's layout (librealsense), else required
    depth_topic: str | None = None
    color_info_topic: str | None = None  # default: image_transport's camera_info of color_topic
    depth_info_topic: str | None = None  # default: image_transport's camera_info of depth_topic
    confidence_topic: str | None = None  # IR amplitude or confidence, registered to depth
    confidence_scale: float | None = None  # confidence = clip(value * scale, 0, 1)
    confidence_range: list[float] | None = None  # [low, high] raw values -> [0, 1]
    trusted_floor: float = TRUSTED_FLOOR  # warn when less of the valid depth than this is trusted
    tolerance: float = 0.05  # seconds between paired colour and depth header stamps
    sequence_seconds: float | None = None  # cut the recording into sequences of this length
    extrinsic: dict | None = None  # depth->colour {"translation": [x,y,z], "rotation": [x,y,z,w]}
    registered: bool = False  # depth already aligned to the colour camera
    undistort: bool = False  # undistort plumb_bob/rational_polynomial images instead of refusing
    depth_unit: float | None = None  # metres per integer depth count (default: the bag's, else 0.001)
    tf_topic: str = "/tf_static"
    salvage: bool = False  # extract the readable prefix of a cut-off recording


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


class Writer:
    """Turns decoded colour/depth/confidence of one pair into a native frame on disk."""

    def __init__(self, tmp: Path, cams: dict[str, Camera], t_cd: np.ndarray, s: BagSettings):
        self.tmp, self.cams, self.t_cd, self.s = tmp, cams, t_cd, s
        self.counts: dict[int, int] = {}
        self.stamps: dict[int, list[str]] = {}
        self.valid = self.trusted = 0  # valid depth pixels, and those confidence trusts
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="extract-bag")
        self.pending: deque = deque()

    def folder(self, seq: int) -> Path:
        folder = self.tmp / f"seq-{seq:03d}"
        if seq not in self.counts:
            files = {k: v for k, v in NATIVE_FILES.items() if k != "confidence" or "confidence" in self.cams}
            native_writer.make_folders(folder, files)
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

    def write(self, parts: dict[str, np.ndarray], seq: int, number: int, colour_ns: int) -> None:
        """Check frame `number` of sequence `seq` here; re-project and write it on a worker thread (numpy,
        zlib and file I/O release the GIL), with at most `WORKERS * 2` frames in flight (bounded memory)."""
        rgb, depth, conf = parts["color"], parts["depth"], parts.get("confidence")
        self._check_size("color", rgb)
        self._check_size("depth", depth)
        if conf is not None and conf.shape != depth.shape:
            raise BagError(f"topic {self.s.confidence_topic!r}: confidence is {conf.shape[1]}x{conf.shape[0]}, "
                           f"depth is {depth.shape[1]}x{depth.shape[0]}; it must be registered to depth")
        folder = self.folder(seq)
        frame_id = native_writer.frame_id(number)
        self.counts[seq] += 1
        self.stamps[seq].append(f"{frame_id} {colour_ns // 10**9}.{colour_ns % 10**9:09d}")
        try:
            self.pending.append(self.pool.submit(self._finish_frame, folder, frame_id, rgb, depth, conf))
        except RuntimeError:  # no thread can start (an address-space cap, as under ulimit -v): this thread
            self.pending.append(Future())
            self.pending[-1].set_result(self._finish_frame(folder, frame_id, rgb, depth, conf))
        while len(self.pending) > 2 * WORKERS:
            self._collect(self.pending.popleft())

    def _finish_frame(self, folder: Path, frame_id: str, rgb, depth, conf) -> tuple[int, int]:
        rgb = self._rectify("color", rgb, nearest=False)
        depth = self._rectify("depth", depth, nearest=True)
        if conf is not None:
            conf = self._rectify("depth", conf, nearest=True)
        kd, kc = self.cams["depth"].intrinsics, self.cams["color"].intrinsics
        if not (kd == kc and np.allclose(self.t_cd, np.eye(4))):
            depth, conf = geometry.reproject_depth(depth, kd, kc, self.t_cd, conf)
        arrays = {"rgb": rgb, "depth": depth} | ({} if conf is None else {"confidence": conf})
        native_writer.write_frame(folder, frame_id, arrays, atomic=False)  # the whole folder is renamed into place
        if conf is None:
            return 0, 0
        return trusted_counts(depth, conf)

    def _collect(self, future) -> None:
        valid, trusted = future.result()
        self.valid += valid
        self.trusted += trusted

    def drain(self) -> None:
        """Wait for every frame in flight (re-raising the first failure)."""
        while self.pending:
            self._collect(self.pending.popleft())

    def reset(self, t_cd: np.ndarray) -> None:
        """Drop every frame written so far (the second pass writes them again) and use transform `t_cd`."""
        self.drain()
        for seq in self.counts:
            shutil.rmtree(self.tmp / f"seq-{seq:03d}")
        self.counts, self.stamps, self.valid, self.trusted, self.t_cd = {}, {}, 0, 0, t_cd

    def finish(self) -> None:
        self.drain()
        self.pool.shutdown()
        for seq, lines in self.stamps.items():
            native_writer.write_texts(self.folder(seq), native_writer.sequence_texts(self.cams["color"].intrinsics,
                                                                                      sorted(lines)))


def _second_pass(source: BagSource, found: Found, plan: Plan, writer: Writer, progress: bool) -> int:
    """Decode the paired messages and write them; returns how many frames were written."""
    cams = found.cams
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
        image = decode_part(source, role, found, raw, writer.s)
        for i in needed[key]:
            pending.setdefault(i, {})[role] = image
            if len(pending[i]) == want[i]:
                writer.write(pending.pop(i), plan.sequences[i], plan.frame_number(i), plan.pairs[i][0])
                written += 1
    return written


class Streamed:
    """Frames written during the single pass: pairs in order, numbered as `Plan` numbers them."""

    def __init__(self, source: BagSource, found: Found, s: BagSettings, writer: Writer):
        self.source, self.found, self.s, self.writer = source, found, s, writer
        self.pairs: list[tuple[int, int]] = []
        self.numbers: dict[int, int] = {}
        self.unit = None

    def __call__(self, c: int, d: int, raw_c: bytes, raw_d: bytes) -> None:
        if self.writer.t_cd is None:
            calibration.check_distortion(self.found.cams, self.s)  # CameraInfo is final once read: a real error
            try:
                t_cd = calibration.depth_to_colour(self.found, self.s, self.source)
            except BagError:
                raise NotReady from None  # the transforms may still come: the end of the pass decides
            self.writer.t_cd, self.unit = t_cd, self.found.depth_unit
        seq = _sequence_of([self.pairs[0][0] if self.pairs else c, c], self.s.sequence_seconds)[1]
        number = self.numbers.get(seq, 0)
        self.numbers[seq] = number + 1
        parts = {role: decode_part(self.source, role, self.found, raw, self.s)
                 for role, raw in (("color", raw_c), ("depth", raw_d))}
        self.writer.write(parts, seq, number, c)
        self.pairs.append((c, d))

    def matches(self, plan: Plan, t_cd: np.ndarray) -> bool:
        """Whether the streamed frames are exactly those of `plan` with the final calibration."""
        return self.pairs == plan.pairs and not plan.confidence and (
            not self.pairs or (np.array_equal(self.writer.t_cd, t_cd) and self.unit == self.found.depth_unit))


def _plan(bag: str, found: Found, s: BagSettings) -> Plan:
    """Pairs of all header stamps (closest first within the tolerance), confidence per depth, sequences."""
    cams = found.cams
    pairs = pair_frames(cams["color"].stamps, cams["depth"].stamps, s.tolerance)
    if not pairs:
        gap = min(abs(c - d) for c in cams["color"].stamps for d in cams["depth"].stamps[:10000]) / 1e9
        raise BagError(f"{bag}: no colour frame on {cams['color'].topic!r} has a depth frame on "
                       f"{cams['depth'].topic!r} within {s.tolerance} s (header stamps; the closest are "
                       f"{gap:.3f} s apart); check the topics or raise the pairing tolerance (--tolerance)")
    confidence = {}
    if "confidence" in cams:
        ds, cs = sorted({d for _, d in pairs}), sorted(set(cams["confidence"].stamps))
        confidence = {ds[i]: cs[j] for i, j in associate([t / 1e9 for t in ds], [t / 1e9 for t in cs],
                                                          s.tolerance).items()}
    return Plan(pairs, _sequence_of([c for c, _ in pairs], s.sequence_seconds), confidence)


def _extract(bag: str, source: BagSource, found: Found, s: BagSettings, writer: Writer, progress: bool):
    """One pass that writes the frames as they pair; a second one only when its result is not exact."""
    streamed = Streamed(source, found, s, writer)
    window = stream_pass(source, found, s, streamed, progress)
    writer.drain()
    calibration.close(source, found, s)
    calibration.check_distortion(found.cams, s)
    t_cd = calibration.depth_to_colour(found, s, source)
    plan = _plan(bag, found, s)
    if window.ok and streamed.matches(plan, t_cd):
        return plan, t_cd, len(streamed.pairs), 1
    if streamed.pairs:
        log.info("%s: stamps or calibration changed after frames were written: writing them again", bag)
    writer.reset(t_cd)
    return plan, t_cd, _second_pass(source, found, plan, writer, progress), 2


def extract_bag(bag: str, out_dir: str, settings: BagSettings, progress: bool = True) -> dict:
    """Write the native layout of `bag` into `out_dir` and return the extraction report."""
    source = open_bag(bag, allow_salvage=settings.salvage)
    found = calibration.find_cameras(source, settings)
    with atomic_write(out_dir, folder=True) as tmp:  # the folder appears complete, or not at all
        writer = Writer(tmp, found.cams, None, settings)
        try:
            plan, t_cd, written, passes = _extract(bag, source, found, settings, writer, progress)
            writer.finish()
            report = _report(bag, source, found, settings, plan, t_cd, written, writer) | {"passes": passes}
            (tmp / "extract.json").write_text(json.dumps(report, indent=1) + "\n")
        finally:
            writer.pool.shutdown(cancel_futures=True)
    if source.truncated:
        log.warning("%s is cut short: extracted %d frames from the %d messages before the cut",
                    bag, written, source.salvaged)
    if report["confidence"] and report["confidence"]["warning"]:
        log.warning("%s: %s", bag, report["confidence"]["warning"])
    return report


def _confidence_report(cams: dict[str, Camera], s: BagSettings, writer: Writer) -> dict | None:
    """The mapping used and the share of valid depth it trusts, with a warning below the floor."""
    if "confidence" not in cams:
        return None
    share = writer.trusted / writer.valid if writer.valid else 0.0
    warning = trusted_warning(share, s.trusted_floor, f"check the confidence mapping of {s.confidence_topic!r} "
                              "(--confidence-scale / --confidence-range)")
    return {"topic": s.confidence_topic, "range": [0.0, 1.0], "trusted_share": round(share, 6),
            "trusted_floor": s.trusted_floor, "warning": warning,
            "mapping": decode.confidence_mapping(s.confidence_scale, s.confidence_range, s.confidence_topic)}


def _report(bag: str, source: BagSource, found: Found, s: BagSettings, plan: Plan,
            t_cd: np.ndarray, written: int, writer: Writer) -> dict:
    cams = found.cams
    paired_c, paired_d = {c for c, _ in plan.pairs}, {d for _, d in plan.pairs}
    registration = "registered" if s.registered or np.allclose(t_cd, np.eye(4)) and \
        cams["depth"].intrinsics == cams["color"].intrinsics else "reprojected"
    return {
        "bag": str(Path(bag).resolve()), "format": "ROS 1" if source.ros1 else "ROS 2",
        "layout": "librealsense" if found.layout else None, "truncated": source.truncated,
        "readable_messages": source.salvaged if source.truncated else None,
        "settings": asdict(s), "frames": written, "sequences": {f"seq-{k:03d}": v for k, v in writer.counts.items()},
        "topics": {r: {"topic": c.topic, "type": c.msgtype, "messages": len(c.stamps),
                       **({"info_topic": c.info_topic, "frame_id": c.frame_id} if c.info_topic else {})}
                   for r, c in cams.items()},
        "unpaired_color": len(set(cams["color"].stamps) - paired_c),
        "unpaired_depth": len(set(cams["depth"].stamps) - paired_d),
        "duplicate_stamps": {r: len(c.stamps) - len(set(c.stamps)) for r, c in cams.items()},
        "stamps": "header", "depth_registration": registration, "depth_to_color": t_cd.round(9).tolist(),
        "depth_unit_m": found.depth_unit, "origins": found.origins,
        "undistorted": [r for r in ("color", "depth") if s.undistort and geometry.is_distorted(cams[r].distortion)],
        "confidence": _confidence_report(cams, s, writer),
    }
