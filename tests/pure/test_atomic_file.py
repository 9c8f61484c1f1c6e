"""Files written whole or not at all, alone or several together (a pose-map frame's three)."""
import os

import pytest

from posebridge.pose.formats import atomic_file
from posebridge.pose.formats.atomic_file import write_bytes_atomic, write_files_atomic


def test_files_written_together_or_not_at_all(tmp_path):
    first, second = tmp_path / "pose_0001.png", tmp_path / "gone" / "pose_0001_keypoints.json"
    first.write_bytes(b"old map")
    with pytest.raises(OSError):  # the second file's folder does not exist: fails before any rename
        write_files_atomic([(first, b"new map"), (second, b"{}")])
    assert first.read_bytes() == b"old map", "the frame is as it was"
    assert sorted(os.listdir(tmp_path)) == ["pose_0001.png"], "no temporary is left"
    (tmp_path / "gone").mkdir()
    write_files_atomic([(first, b"new map"), (second, b"{}")])
    assert first.read_bytes() == b"new map" and second.read_bytes() == b"{}"


def test_a_failed_rename_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "map.png"
    path.write_bytes(b"old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(atomic_file.os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        write_bytes_atomic(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["map.png"]
