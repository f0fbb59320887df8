"""The one durable writer: a kill between write and rename leaves the old file, a killed writer's temporary
sibling is removed by the next write, folders are replaced whole, and no module renames files by itself."""

import ast
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import distillery
from distillery.atomic import atomic_write, clean_stale, move_durable, write_bytes_atomic, write_text_atomic

SRC = Path(distillery.__file__).parent


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


def test_a_written_file_has_its_content_and_leaves_no_temporary_sibling(tmp_path):
    out = tmp_path / "deep" / "er" / "layer.h5"
    with atomic_write(out) as tmp:
        assert tmp.parent == out.parent and tmp.name.startswith(".layer.h5.") and not out.exists()
        with h5py.File(tmp, "w") as f:
            f["x"] = np.arange(5)
    with h5py.File(out) as f:
        assert f["x"][:].tolist() == [0, 1, 2, 3, 4]
    assert _siblings(out) == []


def test_an_error_while_writing_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    out = tmp_path / "a.txt"
    write_text_atomic(out, "old\n")
    with pytest.raises(ValueError), atomic_write(out) as tmp:
        tmp.write_text("half")
        raise ValueError("the writer failed")
    assert out.read_text() == "old\n" and _siblings(out) == []


def _killed_writer(out: Path, text: str, point: str = "atomic:before-rename") -> subprocess.CompletedProcess:
    code = f"from distillery.atomic import write_text_atomic; write_text_atomic({str(out)!r}, {text!r})"
    return subprocess.run([sys.executable, "-c", code], env=dict(os.environ, DISTILLERY_CRASH_AT=point),
                          capture_output=True, text=True)


def test_a_kill_between_write_and_rename_leaves_the_old_file_and_the_retry_removes_the_temporary(tmp_path):
    out = tmp_path / "summary.json"
    write_text_atomic(out, '{"old": 1}\n')
    proc = _killed_writer(out, '{"new": 2}\n')
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert out.read_text() == '{"old": 1}\n'
    left = _siblings(out)
    assert len(left) == 1 and left[0].startswith(".summary.json.") and left[0].endswith(".tmp")
    assert (tmp_path / left[0]).read_text() == '{"new": 2}\n'  # written and fsynced, never renamed
    write_text_atomic(out, '{"new": 2}\n')  # the retry
    assert out.read_text() == '{"new": 2}\n' and _siblings(out) == []


def test_a_temporary_of_a_live_writer_is_left_alone(tmp_path):
    out = tmp_path / "x.bin"
    with atomic_write(out) as tmp:
        tmp.write_bytes(b"mine")
        assert clean_stale(out) == [] and tmp.exists()  # this process is alive: its file is not stale
    assert out.read_bytes() == b"mine"


def test_a_folder_is_replaced_whole_and_a_kill_before_its_rename_keeps_the_old_one(tmp_path):
    out = tmp_path / "bundle"
    with atomic_write(out, folder=True) as tmp:
        (tmp / "a.txt").write_text("1")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("2")
    with atomic_write(out, folder=True) as tmp:
        (tmp / "c.txt").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == ["c.txt"] and _siblings(out) == []
    code = ("from distillery.atomic import atomic_write\n"
            f"with atomic_write({str(out)!r}, folder=True) as tmp:\n    (tmp / 'd.txt').write_text('4')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          env=dict(os.environ, DISTILLERY_CRASH_AT="atomic:before-rename"))
    assert proc.returncode == -signal.SIGKILL
    assert sorted(p.name for p in out.iterdir()) == ["c.txt"]
    with atomic_write(out, folder=True) as tmp:
        (tmp / "e.txt").write_text("5")
    assert sorted(p.name for p in out.iterdir()) == ["e.txt"] and _siblings(out) == []


def test_tarballs_bytes_and_moves_go_through_the_writer(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    with atomic_write(tmp_path / "t.tgz") as part, tarfile.open(part, "w:gz") as tar:
        tar.add(tmp_path / "f.txt", arcname="f.txt")
    with tarfile.open(tmp_path / "t.tgz") as tar:
        assert tar.getnames() == ["f.txt"]
    write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    move_durable(tmp_path / "b.bin", tmp_path / "archive" / "b.bin")
    assert (tmp_path / "archive" / "b.bin").read_bytes() == b"\x00\x01" and not (tmp_path / "b.bin").exists()


RENAMES = {("os", "replace"), ("os", "rename"), ("os", "renames"), ("shutil", "move")}


def _renames(tree: ast.AST) -> list[int]:
    """Lines that rename or replace files: os.replace/rename, shutil.move, Path.rename(x) / Path.replace(x)."""
    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        attr, owner = node.func.attr, node.func.value
        if isinstance(owner, ast.Name) and (owner.id, attr) in RENAMES:
            lines.append(node.lineno)
        elif attr == "rename" or (attr == "replace" and len(node.args) == 1 and not node.keywords):
            lines.append(node.lineno)  # str.replace takes two arguments; Path.replace one
    for node in ast.walk(tree):  # from os import replace / rename, from shutil import move
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "shutil"):
            lines += [node.lineno for a in node.names if (node.module, a.name) in RENAMES]
    return lines


def test_the_guard_sees_every_way_of_renaming():
    code = ("import os, shutil\nfrom os import replace\nos.replace(a, b)\nos.rename(a, b)\nshutil.move(a, b)\n"
            "p.rename(q)\np.replace(q)\ns.replace('a', 'b')\nd.replace(year=1)\n")
    assert _renames(ast.parse(code)) == [3, 4, 5, 6, 7, 2]


def test_no_module_renames_or_replaces_files_but_the_one_writer():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "atomic.py":
            continue
        offenders += [f"{path.relative_to(SRC.parent)}:{line}" for line in _renames(ast.parse(path.read_text()))]
    assert offenders == [], ("write through distillery.atomic (atomic_write, write_text_atomic, move_durable) "
                             f"instead of renaming files yourself: {offenders}")
