"""DVC-compatible content hashes, computed without DVC.

A file's id is the md5 of its bytes (DVC 3 does no line-ending normalisation). A
directory's id is the md5 of DVC's JSON listing of its files, with a ``.dir`` suffix; it
matches what ``dvc add`` writes. Hashes stream in 1 MiB chunks (constant memory) and are
cached by (path, size, mtime, inode), in memory and (files of 256 KiB or more) in
``_cache/hashes.sqlite`` of the warehouse, so an unchanged large file is never read twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path

CHUNK = 1 << 20
#: Files below this size are read again rather than looked up in and written to the on-disk
#: cache: md5 of 256 KiB takes ~0.5 ms, a commit of the cache's SQLite ~1-3 ms (it was two
#: thirds of the time to log an execution with four small files, bench/peers).
SMALL_FILE = 256 << 10
_MD5 = frozenset("0123456789abcdef")


def is_md5(value: str) -> bool:
    """True for a DVC-style id: 32 lowercase hex digits, optionally followed by ``.dir``."""
    core = value[:-4] if value.endswith(".dir") else value
    return len(core) == 32 and set(core) <= _MD5


def file_md5(path: str | os.PathLike[str]) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashCache:
    """md5 of files and directories, remembered by (path, size, mtime_ns, inode)."""

    def __init__(self, db_path: Path | None = None) -> None:
        self._mem: dict[tuple[str, int, int, int], str] = {}
        self._db_path = db_path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection | None:
        if self._db is None and self._db_path is not None:
            try:
                self._db_path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self._db_path, timeout=10, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS md5 (path TEXT, size INTEGER, mtime INTEGER,"
                           " inode INTEGER, md5 TEXT, PRIMARY KEY (path, size, mtime, inode))")
                self._db = db
            except sqlite3.Error:
                self._db_path = None  # a cache that cannot open is only a slower run
        return self._db

    def peek(self, path: str | os.PathLike[str]) -> str | None:
        """The md5 of a file if it is already known for its current (size, mtime, inode),
        without reading it; None otherwise."""
        p = os.path.abspath(path)
        st = os.stat(p)
        return self._known((p, st.st_size, st.st_mtime_ns, st.st_ino))

    def _known(self, key: tuple[str, int, int, int]) -> str | None:
        """The md5 remembered for ``key`` (path, size, mtime, inode), in memory or on disk."""
        cached = self._mem.get(key)
        if cached is None:
            with self._lock:
                db = self._conn()
                row = db.execute("SELECT md5 FROM md5 WHERE path=? AND size=? AND mtime=? AND inode=?",
                                 key).fetchone() if db else None
            if row:
                cached = self._mem[key] = row[0]
        return cached

    def remember(self, path: str | os.PathLike[str], md5: str, st: os.stat_result) -> None:
        """Record an md5 learnt elsewhere (DVC's own state) for the file as ``st`` saw it,
        in memory only: it saves reading the file again in this process."""
        self._mem[(os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ino)] = md5

    def file(self, path: str | os.PathLike[str]) -> tuple[str, int]:
        """(md5, size) of a file."""
        p = os.path.abspath(path)
        st = os.stat(p)
        key = (p, st.st_size, st.st_mtime_ns, st.st_ino)
        if st.st_size < SMALL_FILE:
            small = self._mem[key] = self._mem.get(key) or file_md5(p)
            return small, st.st_size
        cached = self._known(key)
        if cached is None:
            cached = file_md5(p)
            with self._lock:
                db = self._conn()
                if db:
                    db.execute("INSERT OR REPLACE INTO md5 VALUES (?,?,?,?,?)", (*key, cached))
                    db.commit()
            self._mem[key] = cached
        return cached, st.st_size

    def directory(self, root: str | os.PathLike[str]) -> tuple[str, int, int]:
        """(md5 + ".dir", total size, number of files) of a directory, as ``dvc add`` computes it."""
        base = Path(root)
        entries, total = [], 0
        for p in base.rglob("*"):
            if p.is_file():
                md5, size = self.file(p)
                entries.append({"md5": md5, "relpath": p.relative_to(base).as_posix()})
                total += size
        entries.sort(key=lambda e: e["relpath"])
        listing = json.dumps(entries, sort_keys=True).encode()
        return hashlib.md5(listing).hexdigest() + ".dir", total, len(entries)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
