"""The journal: each writer's crash-safe buffer of rows not yet in a partition.

A writer owns ``_journal/<writer>.lock`` (an exclusive ``flock`` held while it lives) and
appends every logged row, one ``os.write`` per call, to its current segment
``_journal/<writer>.<seq>.jsonl``. Data handed to the kernel survives ``kill -9``, so a
call that returned is never lost. When a batch is handed to the flusher the writer starts a
new segment; the old one is deleted once its partitions are durable.

:func:`replay` turns the segments of dead writers (their lock can be taken) into
partitions. An execution whose last row says ``running`` gets an ``interrupted`` row, so a
killed run shows as such instead of running forever.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmfq.warehouse.schema import FORMAT_VERSION

Row = dict[str, Any]
# One encoder for every line: json.dumps with options builds a new one per call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), default=str).encode
Batch = dict[str, list[Row]]  # table name -> rows


class Journal:
    """The live journal of one writer."""

    def __init__(self, directory: Path, writer_id: str, pipeline: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.writer_id = writer_id
        self.pipeline = pipeline
        self._lock_fd = os.open(directory / f"{writer_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._seq = 0
        self._fd = -1
        self._open_segment()

    def _segment(self, seq: int) -> Path:
        return self.directory / f"{self.writer_id}.{seq:08d}.jsonl"

    def _open_segment(self) -> None:
        self._fd = os.open(self._segment(self._seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        header = {"_h": FORMAT_VERSION, "writer": self.writer_id, "pipeline": self.pipeline}
        os.write(self._fd, (json.dumps(header) + "\n").encode())

    def append(self, table: str, row: Row) -> None:
        """Record one row as ``<table>\\t<json>\\n`` in a single write, so a crash never
        leaves half a row followed by more rows."""
        os.write(self._fd, f"{table}\t{_ENCODE(row)}\n".encode())

    def sync(self) -> None:
        os.fsync(self._fd)

    def rotate(self) -> Path:
        """Close the current segment and start the next; returns the closed segment."""
        done = self._segment(self._seq)
        os.close(self._fd)
        self._seq += 1
        self._open_segment()
        return done

    def close(self) -> None:
        """Remove the (empty) live segment and release the writer's lock."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._segment(self._seq).unlink(missing_ok=True)
        if self._lock_fd >= 0:
            (self.directory / f"{self.writer_id}.lock").unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = -1


@dataclass
class Leftover:
    """What a dead writer left behind."""

    writer_id: str
    pipeline: str
    segments: list[Path]
    batch: Batch = field(default_factory=dict)
    skipped_lines: int = 0


def read_segments(segments: Iterable[Path]) -> tuple[str, Batch, int]:
    """Parse segments in order: (pipeline, rows per table, unreadable lines skipped).

    Only the last line of a segment can be torn (the writer died inside ``write``); that
    row was never acknowledged, so skipping it loses nothing.
    """
    pipeline, skipped = "", 0
    batch: Batch = {}
    for seg in segments:
        with open(seg, "rb") as f:
            for raw in f:
                table, sep, body = raw.partition(b"\t")
                try:
                    rec = json.loads(body if sep else table)
                except ValueError:
                    skipped += 1
                    continue
                if not sep:
                    if isinstance(rec, dict) and "_h" in rec:
                        pipeline = rec.get("pipeline", pipeline)
                    continue
                batch.setdefault(table.decode(), []).append(rec)
    return pipeline, batch, skipped


def close_interrupted(batch: Batch) -> None:
    """Add an ``interrupted`` row for each execution left ``running`` (deterministically,
    so replaying twice writes the same bytes)."""
    latest: dict[str, Row] = {}
    for row in batch.get("executions", []):
        prev = latest.get(row["id"])
        if prev is None or row["at"] >= prev["at"]:
            latest[row["id"]] = row
    last_at = max((r["at"] for rows in batch.values() for r in rows), default=0)
    for row in latest.values():
        if row["status"] == "running":
            batch["executions"].append({**row, "status": "interrupted", "ended_at": last_at,
                                        "at": max(last_at, row["at"]) + 1,
                                        "error": "the logging process ended before the execution did"})


def replay(directory: Path, write_batch: Callable[[str, Batch], object]) -> list[Leftover]:
    """Write the leftovers of every dead writer as partitions, then delete them.

    ``write_batch(pipeline, batch)`` must make the partitions durable before returning.
    Writers that are alive (their lock is held) are left alone.
    """
    if not directory.is_dir():
        return []
    segments: dict[str, list[Path]] = {}
    for p in directory.iterdir():
        if p.suffix == ".jsonl":
            writer = p.name.split(".", 1)[0]
            segments.setdefault(writer, []).append(p)
        elif p.suffix == ".lock":
            segments.setdefault(p.stem, [])
    done = []
    for writer, segs in segments.items():
        lock_path = directory / f"{writer}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # alive
            segs = sorted(s for s in segs if s.exists())
            pipeline, batch, skipped = read_segments(segs)
            close_interrupted(batch)
            if any(batch.values()):
                write_batch(pipeline, batch)
            for s in segs:
                s.unlink(missing_ok=True)
            lock_path.unlink(missing_ok=True)
            done.append(Leftover(writer, pipeline, segs, batch, skipped))
        finally:
            os.close(fd)
    return done
