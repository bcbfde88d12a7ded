"""Atomic, durable file writes: the one helper every writer goes through."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from cmfq.warehouse import faults

TMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    """fsync a directory: a rename or a new file is not durable until its directory is."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool = True, exclusive: bool = False) -> bool:
    """Write ``data`` to ``path`` so that readers see either nothing or all of it.

    The bytes go to a temp file in the same directory, are flushed and fsynced, then
    renamed over ``path`` (``os.replace`` is atomic on POSIX). The temp file is removed on
    any error. With ``exclusive``, an existing ``path`` is left alone and False returned:
    content-named files need no second write.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if exclusive and path.exists():
        return False
    tmp = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        faults.point("atomic.before_rename")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    faults.point("atomic.before_dir_fsync")
    if durable:
        fsync_dir(path.parent)
    return True
