"""Writing facts: partitions on disk, and the buffered writer that loggers use.

:func:`write_batch` turns rows into one partition per table (content-named, atomically
written, fsynced). :class:`FactWriter` is what a :class:`~cmfq.Tracker` holds: every row
goes to the journal at once (so it survives ``kill -9`` the moment the call returns) and to
an in-memory buffer; :meth:`FactWriter.commit` hands the buffer to a background thread that
writes the partitions and then drops the journal segment. Logging therefore never waits for
Parquet encoding or fsync; :meth:`FactWriter.flush` waits when you need to.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from cmfq.errors import WarehouseError
from cmfq.warehouse import faults, partition
from cmfq.warehouse.atomic import write_atomic
from cmfq.warehouse.journal import Batch, Journal, Row, replay
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.partition import PartitionName, pipeline_folder
from cmfq.warehouse.schema import TABLES

log = logging.getLogger("cmfq")

#: Buffered rows beyond which a long execution is flushed before it ends.
MAX_BUFFERED_ROWS = 50_000
#: How long the flusher gathers further executions before writing (cut short by flush()).
#: Under a busy logger this turns many tiny partitions into a few, and keeps the flusher
#: from competing with the logging thread for the GIL.
FLUSH_DELAY_S = 0.05


def write_rows(layout: Layout, table: str, pipeline: str | None, rows: pa.Table | list[Row], *,
               durable: bool = True, replaces: list[str] | None = None) -> PartitionName:
    """Write ``rows`` of ``table`` as one partition and return its name.

    Writing the same rows again is a no-op: the name is the hash of the bytes.
    """
    spec = TABLES[table]
    arrow = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=spec.schema)
    return write_partition(layout, table, pipeline_folder(pipeline), arrow, durable=durable, replaces=replaces)


def write_partition(layout: Layout, table: str, folder: str, rows: pa.Table, *, durable: bool = True,
                    replaces: list[str] | None = None) -> PartitionName:
    """Write ``rows`` as one partition in ``folder`` (the encoded pipeline name)."""
    data = partition.encode(TABLES[table], rows, replaces=replaces)
    name = PartitionName(table, folder, hashlib.sha256(data).hexdigest())
    write_atomic(layout.path(name), data, durable=durable, exclusive=True)
    return name


def write_batch(layout: Layout, pipeline: str | None, batch: Batch, *, durable: bool = True
                ) -> list[PartitionName]:
    """Write one partition per table that has rows in ``batch``."""
    return [write_rows(layout, table, pipeline, rows, durable=durable)
            for table, rows in batch.items() if rows]


def replay_journals(layout: Layout) -> int:
    """Turn dead writers' journals into partitions; returns how many writers were replayed."""
    return len(replay(layout.journal_dir, lambda p, b: write_batch(layout, p, b)))


class FactWriter:
    """Journaled, buffered writer of one pipeline's facts into one warehouse.

    ``background=False`` makes :meth:`commit` write partitions before it returns.
    """

    def __init__(self, layout: Layout, pipeline: str, writer_id: str, *, background: bool = True,
                 on_rotate: Callable[[], None] | None = None) -> None:
        self.layout = layout
        self.pipeline = pipeline
        self.background = background
        self.on_rotate = on_rotate
        self._journal = Journal(layout.journal_dir, writer_id, pipeline)
        self._buffer: Batch = {}
        self._buffered = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[Path, Batch] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._urgent = threading.Event()
        self.partitions_written = 0

    def add(self, table: str, row: Row) -> None:
        """Journal one row and buffer it; returns once the row is crash-safe."""
        with self._lock:
            self._journal.append(table, row)
            self._buffer.setdefault(table, []).append(row)
            self._buffered += 1
            full = self._buffered >= MAX_BUFFERED_ROWS
        if full:
            self.commit()

    def commit(self) -> None:
        """Seal the buffered rows into partitions (in the background by default)."""
        with self._lock:
            if not self._buffered:
                return
            batch, self._buffer, self._buffered = self._buffer, {}, 0
            segment = self._journal.rotate()
        if self.on_rotate is not None:
            self.on_rotate()  # lets the tracker re-journal rows of executions still open
        if self.background:
            self._ensure_thread()
            self._queue.put((segment, batch))
        else:
            self._write([segment], batch)
        self._raise_pending()

    def flush(self) -> None:
        """Commit and wait until every row so far is in a durable partition."""
        self.commit()
        if self._thread is not None:
            self._urgent.set()
            self._queue.join()
        self._raise_pending()

    def sync_journal(self) -> None:
        """fsync the journal: rows survive power loss too, not only process death."""
        with self._lock:
            self._journal.sync()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._thread is not None:
                self._urgent.set()
                self._queue.put(None)
                self._thread.join()
                self._thread = None
            with self._lock:
                if self._buffered == 0 and self._error is None:
                    self._journal.close()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cmfq-flush", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        stop = False
        while not stop:
            items = [self._queue.get()]
            if items[0] is not None and self._urgent.wait(FLUSH_DELAY_S):
                self._urgent.clear()
            # Coalesce whatever else is queued: a busy logger then gets fewer, larger partitions.
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in items
            work = [item for item in items if item is not None]
            try:
                if work:
                    self._write([seg for seg, _ in work], _merge([b for _, b in work]))
            except BaseException as exc:  # kept for the caller; the journal still has the rows
                self._error = exc
                log.error("cmfq: could not write partitions (%s); rows stay in the journal", exc)
            finally:
                for _ in items:
                    self._queue.task_done()

    def _write(self, segments: list[Path], batch: Batch) -> None:
        self.partitions_written += len(write_batch(self.layout, self.pipeline, batch))
        faults.point("writer.before_journal_drop")
        for segment in segments:
            segment.unlink(missing_ok=True)

    def _raise_pending(self) -> None:
        if self._error is not None:
            exc, self._error = self._error, None
            raise WarehouseError(
                f"Writing partitions into {self.layout.root} failed: {exc}.",
                hint="The rows are safe in its _journal/ folder and are written the next time "
                "the warehouse is opened; fix the cause (disk space, permissions) first.",
            ) from exc



def _merge(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    merged: Batch = {}
    for batch in batches:
        for table, rows in batch.items():
            merged.setdefault(table, []).extend(rows)
    return merged
