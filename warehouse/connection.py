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
from urllib.parse import urlparse

import duckdb

from cmfq import sql
from cmfq.warehouse import index
from cmfq.warehouse.index import Progress, RefreshReport
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.remote import FolderRemote, FsspecRemote, Remote, RemoteError
from cmfq.warehouse.source import LocalSource, RemoteSource

log = logging.getLogger("cmfq")

ENV_MEMORY_LIMIT = "CMFQ_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "512MB"
#: For one-shot processes (the CLI) once the index is up to date: DuckDB keeps every block it
#: read cached up to its limit, which a process that answers one question never reads again.
#: Joins, aggregates and sorts spill beyond it; 128MB still holds what cannot spill (the
#: ART index nodes a lookup pins, the hash tables of lineage walks).
QUERY_MEMORY_LIMIT = "128MB"
#: The limits a query that ran out of QUERY_MEMORY_LIMIT is run again at, in turn and on one
#: thread, before the usual limit and threads: on the scale benchmark `datasets` and
#: `techniques` fit in 224MB on one thread (one hash table, not one per thread), and at 512MB
#: they peaked 540 MB above a command that reads nothing.
QUERY_RETRY_LIMITS = ("224MB",)
#: DuckDB's memory limit while partitions are merged into the index file (unless
#: $CMFQ_MEMORY_LIMIT is set): every statement of a merge spills to disk, and a larger limit
#: mostly caches blocks that a one-off load never reads again. On the scale benchmark (10 M
#: events, 100 M metric points) a profiled build peaked at 440 MB of RSS with it and 24 MB
#: chunks, 550 MB at 192MB; at 128MB with 64 MB chunks a merge ran out of memory, and so did
#: the default 512MB before the merges were made to spill.
LOAD_MEMORY_LIMIT = "128MB"
#: ... on one thread: merges are mostly serial. On the scale benchmark one thread built the
#: index in 408 s (at 192MB); two (at 256MB) took 467 s for the merges alone, at 100 MB more RSS.
LOAD_THREADS = 1
LOCK_TIMEOUT_S = 10.0
INDEX_FILE = "index.duckdb"


@dataclass
class Opened:
    con: duckdb.DuckDBPyConnection
    mode: Literal["index", "memory", "remote"]
    report: RefreshReport
    spill: Path

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.spill, ignore_errors=True)


#: The cores this process may run on. DuckDB sizes its thread pool by the machine's cores,
#: which oversubscribes a process held to fewer (taskset, a cgroup cpuset, a benchmark lane).
CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def memory_limit() -> str:
    """DuckDB's memory limit: $CMFQ_MEMORY_LIMIT, else 512MB."""
    return os.environ.get(ENV_MEMORY_LIMIT) or DEFAULT_MEMORY_LIMIT


def load_memory_limit() -> str:
    """DuckDB's memory limit while partitions are merged into an index: $CMFQ_MEMORY_LIMIT,
    else LOAD_MEMORY_LIMIT."""
    return os.environ.get(ENV_MEMORY_LIMIT) or LOAD_MEMORY_LIMIT


def new_connection(temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with cmfq's settings (no progress bar, bounded memory, one thread
    per core this process may use)."""
    con = duckdb.connect()
    con.execute(f"SET threads = {CPUS}")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET memory_limit = ?", [memory_limit()])
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
    """Create the user-facing views and macros (sql/views.sql, lineage.sql, analytics.sql)."""
    for name in ("views", "lineage", "analytics"):
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
        source = LocalSource(layout)
        attached = path.exists() and _attach(con, path, read_only=True, deadline=deadline)
        if refresh and (not attached or index.pending(con, source)):
            if attached:
                con.execute("DETACH idx")
            attached = False
            if _attach(con, path, read_only=False, deadline=deadline):
                try:
                    report = index.refresh(con, source, progress=progress, load_memory_limit=load_memory_limit(),
                                           load_threads=LOAD_THREADS)
                finally:
                    con.execute("DETACH idx")
                attached = _attach(con, path, read_only=True, deadline=deadline)
        if not attached:
            log.warning("cmfq: the index at %s is busy in another process; reading the partitions "
                        "into memory instead", path)
            con.execute("ATTACH ':memory:' AS idx")
            report = index.refresh(con, source, progress=progress)  # in memory: the index needs the room
            mode = "memory"
        load_views(con)
        lock_down(con)
    except BaseException:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
        raise
    return Opened(con, mode, report, spill)


def open_remote_warehouse(remote: Remote, *, progress: Progress | None = None) -> Opened:
    """A locked-down connection whose in-memory index holds a remote's partitions, read in
    place (nothing is written locally)."""
    spill = Path(tempfile.mkdtemp(prefix="cmfq-remote-"))
    con = new_connection(spill)
    try:
        reach(con, remote)
        con.execute("ATTACH ':memory:' AS idx")
        report = index.refresh(con, RemoteSource(remote), progress=progress)
        load_views(con)
        lock_down(con)
    except duckdb.Error as exc:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
        raise RemoteError(f"{remote.url}: could not be read in place ({_first_line(exc)}).",
                          hint="Check the remote's URL, endpoint and credentials.") from None
    except BaseException:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
        raise
    return Opened(con, "remote", report, spill)


def reach(con: duckdb.DuckDBPyConnection, remote: Remote) -> None:
    """Let DuckDB read the remote's files: httpfs (from the pinned wheel, no download) and an
    in-memory secret for S3, taken from the AWS credential chain; fsspec for the rest."""
    if isinstance(remote, FolderRemote):
        return
    assert isinstance(remote, FsspecRemote)
    if remote.protocol != "s3":
        con.register_filesystem(remote.fs)
        return
    import duckdb_extension_httpfs

    ext = Path(duckdb_extension_httpfs.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    con.execute(f"LOAD '{_quote(ext / 'httpfs.duckdb_extension')}'")
    # httpfs copies AWS_* variables into settings that any query can read back with
    # current_setting() or duckdb_settings(); the secret below is what reads use.
    for setting in ("s3_access_key_id", "s3_secret_access_key", "s3_session_token"):
        con.execute(f"RESET {setting}")
    import boto3

    options = remote.options
    session = boto3.Session(profile_name=options.get("profile"))
    creds = session.get_credentials()
    fields = {"REGION": options.get("region") or session.region_name or "us-east-1"}
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        fields.update(KEY_ID=frozen.access_key, SECRET=frozen.secret_key)
        if frozen.token:
            fields["SESSION_TOKEN"] = frozen.token
    endpoint = options.get("endpoint_url")
    if endpoint:
        parsed = urlparse(endpoint)
        fields.update(ENDPOINT=parsed.netloc, URL_STYLE="path", USE_SSL=str(parsed.scheme == "https").lower())
    # CREATE SECRET takes no bound parameters: values are quoted here, held in memory only,
    # and never echoed (a failure is reported without the statement).
    body = ", ".join(f"{k} {v}" if k == "USE_SSL" else f"{k} '{_quote(v)}'" for k, v in fields.items())
    try:
        con.execute(f"CREATE OR REPLACE SECRET cmfq_remote (TYPE s3, {body})")
    except duckdb.Error:
        raise RemoteError(f"{remote.url}: DuckDB refused the S3 settings.",
                          hint="Check the region and endpoint of the remote.") from None


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split("\n\n")[0].split())[:300]


def _attach(con: duckdb.DuckDBPyConnection, path: Path, *, read_only: bool, deadline: float) -> bool:
    """Attach the index file as ``idx``; False if another process kept it locked until
    ``deadline``. A damaged index is a cache: it is deleted and rebuilt."""
    mode = " (READ_ONLY)" if read_only else ""
    delay = 0.02
    deleted = False
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
            if "file handle conflict" in str(exc).lower() or deleted:
                # Attached elsewhere in this process (or still failing once rebuilt): the file
                # is not damaged, so it is not deleted; answer from memory like a locked index.
                log.warning("cmfq: the index %s cannot be attached (%s); answering from memory", path,
                            _first_line(exc))
                return False
            deleted = True
            log.warning("cmfq: the index %s is unusable (%s); rebuilding it", path, exc)
            for p in (path, path.with_name(path.name + ".wal")):
                p.unlink(missing_ok=True)
            if read_only:
                return False


def _quote(value: object) -> str:
    return str(value).replace("'", "''")
