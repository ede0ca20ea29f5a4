"""Atomic writes: the target holds the whole old or the whole new content, never a part."""

from __future__ import annotations

import errno
import os

import pytest

from research.atomic import atomic_path, atomic_write, remove_orphans


def _tmp_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".tmp")


def test_writes_bytes_and_text_and_creates_the_folder(tmp_path):
    target = tmp_path / "a" / "b.json"
    atomic_write(target, '{"x": 1}')
    assert target.read_text() == '{"x": 1}'
    atomic_write(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert _tmp_files(target.parent) == []


def test_a_failed_block_leaves_the_old_version_and_no_temp_file(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="half-way"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"new, half")
            raise RuntimeError("killed half-way")
    assert target.read_bytes() == b"old"
    assert _tmp_files(tmp_path) == []


def test_a_failed_flush_to_disk_leaves_the_old_version(tmp_path, monkeypatch):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert _tmp_files(tmp_path) == []


def test_mode_is_applied_and_orphans_are_removed(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write(target, "x", mode=0o640)
    assert target.stat().st_mode & 0o777 == 0o640
    (tmp_path / ".f.txt.abcdefgh.tmp").write_text("left by a killed writer")
    (tmp_path / ".other.txt.abcdefgh.tmp").write_text("someone else's")
    assert remove_orphans(target) == 1
    assert _tmp_files(tmp_path) == [".other.txt.abcdefgh.tmp"]


def test_orphans_of_a_longer_name_and_recent_ones_are_spared(tmp_path):
    """Only the temporary files of ``path`` itself go: "f" and "f.txt" share a prefix, not a name."""
    import os
    import time

    (tmp_path / ".f.txt.abcdefgh.tmp").write_text("a writer of f.txt")
    (tmp_path / ".f.abcdefgh.tmp").write_text("a killed writer of f")
    (tmp_path / ".f.abcdefgh.tmp.bak").write_text("not a temporary file")
    assert remove_orphans(tmp_path / "f") == 1
    assert _tmp_files(tmp_path) == [".f.txt.abcdefgh.tmp"]
    fresh, old = tmp_path / ".g.abcdefgh.tmp", tmp_path / ".g.zyxwvuts.tmp"
    fresh.write_text("a writer still at work")
    old.write_text("left long ago")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert remove_orphans(tmp_path / "g", older_than=60) == 1
    assert fresh.exists() and not old.exists()
