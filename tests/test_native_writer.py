"""The native-layout writer: what it writes, the native reader indexes and decodes unchanged."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from distillery.ingest import native_writer
from distillery.ingest.frames import Intrinsics, load_frame
from distillery.ingest.readers import read_dataset

K = Intrinsics(fx=50.0, fy=50.0, cx=31.5, cy=23.5, width=64, height=48)


def _write_sequence(folder, frames: int, confidence: bool, rng):
    native_writer.make_folders(folder, native_writer.NATIVE_FILES)
    written = []
    for n in range(frames):
        arrays = {"rgb": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
                  "depth": rng.uniform(0.5, 5.0, (48, 64)).astype(np.float64)}  # float64 in: stored as float32
        arrays["depth"][0, :5] = 0.0
        if confidence:
            arrays["confidence"] = rng.uniform(0, 1, (48, 64)).astype(np.float32)
        native_writer.write_frame(folder, native_writer.frame_id(n), arrays)
        written.append(arrays)
    stamps = [f"{native_writer.frame_id(n)} {n / 30:.6f}" for n in range(frames)]
    native_writer.write_texts(folder, native_writer.sequence_texts(K, stamps))
    return written


@pytest.mark.parametrize("confidence", [True, False])
def test_written_sequence_reads_back_through_the_native_reader(tmp_path, confidence):
    rng = np.random.default_rng(3)
    written = _write_sequence(tmp_path / "ds" / "seq-000", 3, confidence, rng)
    result = read_dataset(tmp_path / "ds", "ds", "native")
    assert not result.rejects and [r.frame_id for r in result.frames] == ["000000", "000001", "000002"]
    for ref, arrays in zip(result.frames, written):
        assert ref.intrinsics == K and ref.timestamp == pytest.approx(int(ref.frame_id) / 30, abs=1e-6)
        frame = load_frame(ref, max_depth_m=20.0)
        np.testing.assert_array_equal(frame.rgb, arrays["rgb"])
        np.testing.assert_array_equal(frame.depth, arrays["depth"].astype(np.float32))
        assert (ref.confidence is not None) == confidence
        if confidence:
            np.testing.assert_array_equal(frame.confidence, arrays["confidence"])
    assert np.load(result.frames[0].depth).dtype == np.float32


def test_png_is_readable_by_pillow_for_rgb_grey_and_16_bit():
    rng = np.random.default_rng(0)
    for array in (rng.integers(0, 256, (7, 9, 3), dtype=np.uint8), rng.integers(0, 256, (7, 9), dtype=np.uint8),
                  rng.integers(0, 65536, (7, 9), dtype=np.uint16)):
        import io

        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(native_writer.png_bytes(array)))), array)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "f.npy"
    native_writer.write_atomic(path, b"old")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)  # what the durable writer calls
    with pytest.raises(OSError, match="No space"):
        native_writer.write_atomic(path, b"new")
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path]
    with pytest.raises(ValueError, match="not '.jpg'"):
        native_writer.encode(np.zeros((2, 2), np.uint8), ".jpg")
