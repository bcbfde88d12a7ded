"""Opening DuckDB on a warehouse: the index attached as ``idx``, the views on top.

The connection itself is in memory. The index file is attached read-only for queries, so
any number of processes (CLI, app, notebooks) can read at once; only a refresh attaches it
read-write, briefly. When another process holds the index longer than ``lock_timeout``,
the partitions are loaded into an in-memory index instead: slower, never stale.

Queries cannot write: once set up, the connection has external access switched off, so user
SQL can neither change files nor attach databases nor load extensions.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

from cmfq import sql
from cmfq.warehouse import index
from cmfq.warehouse.index import Progress, RefreshReport
from cmfq.warehouse.layout import Layout

log = logging.getLogger("cmfq")

ENV_MEMORY_LIMIT = "CMFQ_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "512MB"
LOCK_TIMEOUT_S = 10.0
INDEX_FILE = "index.duckdb"


@dataclass
class Opened:
    con: duckdb.DuckDBPyConnection
    mode: Literal["index", "memory"]
    report: RefreshReport
    spill: Path

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.spill, ignore_errors=True)


def new_connection(temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with cmfq's settings (no progress bar, bounded memory)."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute("SET memory_limit = ?", [os.environ.get(ENV_MEMORY_LIMIT, DEFAULT_MEMORY_LIMIT)])
    con.execute("SET autoinstall_known_extensions = false")
    if temp_dir is not None:
        con.execute("SET temp_directory = ?", [str(temp_dir)])
    return con


def spill_dir(layout: Layout) -> Path:
    """A folder of this process's own for DuckDB to spill to: processes sharing one folder
    delete each other's files. Folders of processes that are gone are removed here."""
    root = layout.cache_dir / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        pid = old.name.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_views(con: duckdb.DuckDBPyConnection) -> None:
    """Create the user-facing views and macros (sql/views.sql, sql/lineage.sql)."""
    for name in ("views", "lineage"):
        for stmt in sql.statements(name):
            con.execute(stmt)


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """From here on, SQL on this connection can read the index and nothing else: no files
    written, no databases attached, no extensions loaded. (It cannot be switched back on.)"""
    con.execute("SET enable_external_access = false")


def open_warehouse(layout: Layout, *, refresh: bool = True, progress: Progress | None = None,
                   lock_timeout: float = LOCK_TIMEOUT_S) -> Opened:
    """A locked-down connection on ``layout`` with the index brought up to date."""
    layout.cache_dir.mkdir(parents=True, exist_ok=True)
    spill = spill_dir(layout)
    con = new_connection(spill)
    path = layout.cache_dir / INDEX_FILE
    deadline = time.monotonic() + lock_timeout
    report = RefreshReport()
    mode: Literal["index", "memory"] = "index"
    try:
        attached = path.exists() and _attach(con, path, read_only=True, deadline=deadline)
        if refresh and (not attached or index.pending(con, layout)):
            if attached:
                con.execute("DETACH idx")
            attached = False
            if _attach(con, path, read_only=False, deadline=deadline):
                try:
                    report = index.refresh(con, layout, progress=progress)
                finally:
                    con.execute("DETACH idx")
                attached = _attach(con, path, read_only=True, deadline=deadline)
        if not attached:
            log.warning("cmfq: the index at %s is busy in another process; reading the partitions "
                        "into memory instead", path)
            con.execute("ATTACH ':memory:' AS idx")
            report = index.refresh(con, layout, progress=progress)
            mode = "memory"
        load_views(con)
        lock_down(con)
    except BaseException:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
        raise
    return Opened(con, mode, report, spill)


def _attach(con: duckdb.DuckDBPyConnection, path: Path, *, read_only: bool, deadline: float) -> bool:
    """Attach the index file as ``idx``; False if another process kept it locked until
    ``deadline``. A damaged index is a cache: it is deleted and rebuilt."""
    mode = " (READ_ONLY)" if read_only else ""
    delay = 0.02
    while True:
        try:
            con.execute(f"ATTACH '{_quote(path)}' AS idx{mode}")
            return True
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        except duckdb.Error as exc:
            if read_only and not path.exists():
                return False
            log.warning("cmfq: the index %s is unusable (%s); rebuilding it", path, exc)
            for p in (path, path.with_name(path.name + ".wal")):
                p.unlink(missing_ok=True)
            if read_only:
                return False


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")
