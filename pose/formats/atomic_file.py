"""Files written whole or not at all: a unique temporary name in the same folder, then os.replace.

Readers (and a crash, a cancel, a full disk) see the old file or the whole new one, never half
of it: the pose-map job's PNGs and keypoints, the generation manifests and frames go this way.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_bytes_atomic(path, data: bytes) -> None:
    """Write ``data`` to ``path``, whole or not at all (a failed write removes its temporary)."""
    write_files_atomic([(path, data)])


def write_files_atomic(files) -> None:
    """Write several (path, bytes) files together: every temporary first, then the renames. A
    failure while writing (a full disk) leaves every file as it was and no temporary behind;
    only a rename failing (the folder gone) can leave some of them new."""
    written: list[tuple[Path, Path]] = []
    try:
        for path, data in files:
            path = Path(path)
            written.append((_temporary(path, data), path))
        while written:
            tmp, path = written[0]
            os.replace(tmp, path)
            written.pop(0)
    finally:
        for tmp, _ in written:  # after a failure: the temporaries not renamed
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _temporary(path: Path, data: bytes) -> Path:
    """``data`` in a new temporary file beside ``path``; removed again if writing fails."""
    # Same folder (os.replace cannot cross file systems); O_EXCL and a random name keep parallel
    # writers apart; mode 0o666 lets the umask decide permissions as for any new file.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return tmp
