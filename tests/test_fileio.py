"""Atomic writes."""
from __future__ import annotations

import os
import stat

import pytest

from yolov3_trt import fileio
from yolov3_trt.fileio import atomic_path, atomic_write_json, atomic_write_text


def test_atomic_write_creates_parents_and_normal_permissions(tmp_path):
    path = tmp_path / "a" / "b" / "out.json"
    atomic_write_json(path, {"x": 1})
    assert path.read_text() == '{\n  "x": 1\n}\n'
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.json"]


def test_failure_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / "keep.txt"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_temp_keeps_suffix(tmp_path):
    with atomic_path(tmp_path / "v.mp4") as tmp:
        assert tmp.suffix == ".mp4" and tmp.parent == tmp_path
        tmp.write_bytes(b"x")


def test_file_mode_reads_the_umask_without_setting_it(monkeypatch):
    umask = os.umask(0o027)  # the test may set it; the library must not
    try:
        def refuse(_mask):
            raise AssertionError("library code set the process umask")

        monkeypatch.setattr(os, "umask", refuse)
        assert fileio.file_mode() == 0o640
        monkeypatch.setattr(fileio, "_proc_umask", lambda: None)  # not Linux: the probe file
        fileio._probed_umask.cache_clear()
        assert fileio.file_mode() == 0o640
        monkeypatch.undo()
    finally:
        os.umask(umask)
        fileio._probed_umask.cache_clear()


def test_file_mode_follows_a_later_umask_on_linux():
    if fileio._proc_umask() is None:
        pytest.skip("no Umask: line in /proc/self/status here")
    umask = os.umask(0o077)
    try:
        assert fileio.file_mode() == 0o600
    finally:
        os.umask(umask)
    assert fileio.file_mode() == 0o666 & ~umask
