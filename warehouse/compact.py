"""Compaction: many small partitions of a table become a few large ones.

A warehouse grows one small partition per flush; compaction merges the partitions of each
(table, pipeline folder) into files of up to ``MAX_ROWS`` rows, sorted by key (better
compression, tighter min/max statistics), writes them, then deletes the inputs. It works
the same on the local warehouse and on a remote.

It is safe while others read, log, push or compact: the new file is complete before any
input is removed, and it names the partitions it replaces in its metadata, so an index that
already loaded them knows their rows are still there. A reader that sees both old and new
files only deduplicates. A crash between the two steps leaves duplicates, never a loss;
running compaction again cleans them up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from cmfq.errors import PartitionError
from cmfq.warehouse import faults, partition
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.partition import PartitionName
from cmfq.warehouse.remote import FolderRemote, Remote
from cmfq.warehouse.schema import TABLES

#: Rows per compacted file; large enough to make files few, small enough to stream.
MAX_ROWS = 2_000_000


@dataclass
class CompactReport:
    inputs: int = 0
    outputs: int = 0
    rows: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    skipped: list[PartitionError] = field(default_factory=list)


def compact(where: Layout | Remote, tables: Iterable[str] | None = None, *, min_files: int = 2,
            progress: Callable[[int, int], None] | None = None) -> CompactReport:
    """Compact every (table, folder) with at least ``min_files`` partitions, locally or on a remote."""
    store = FolderRemote(where.root) if isinstance(where, Layout) else where
    wanted = set(tables or TABLES)
    report = CompactReport()
    groups: dict[tuple[str, str], list[PartitionName]] = {}
    for name in store.list().partitions:
        if name.table in wanted:
            groups.setdefault((name.table, name.folder), []).append(name)
    todo = [(k, v) for k, v in sorted(groups.items()) if len(v) >= min_files]
    for n, ((table, folder), names) in enumerate(todo, 1):
        _compact_group(store, table, folder, sorted(names), report)
        if progress:
            progress(n, len(todo))
    return report


def _compact_group(store: Remote, table: str, folder: str, names: list[PartitionName],
                   report: CompactReport) -> None:
    batch: list[tuple[PartitionName, pa.Table]] = []
    rows = 0
    for name in names:
        try:
            data = store.read(name)
            decoded = partition.decode(name, data)
        except FileNotFoundError:
            continue  # compacted by someone else meanwhile
        except PartitionError as exc:
            report.skipped.append(exc)  # never merge a file we cannot trust
            continue
        report.bytes_before += len(data)
        batch.append((name, decoded.rows))
        rows += decoded.rows.num_rows
        if rows >= MAX_ROWS:
            if len(batch) > 1:
                _write(store, table, folder, batch, report)
            batch, rows = [], 0
    if len(batch) > 1:
        _write(store, table, folder, batch, report)


def _write(store: Remote, table: str, folder: str, batch: list[tuple[PartitionName, pa.Table]],
           report: CompactReport) -> None:
    spec = TABLES[table]
    merged = pa.concat_tables([t for _, t in batch]).sort_by([(k, "ascending") for k in (*spec.key, "at")])
    data = partition.encode(spec, merged, replaces=[str(n) for n, _ in batch])
    out = PartitionName(table, folder, hashlib.sha256(data).hexdigest())
    store.write(out, data)  # complete and durable before any input goes
    faults.point("compact.after_write")
    report.outputs += 1
    report.rows += merged.num_rows
    report.bytes_after += len(data)
    for name, _ in batch:
        if name != out:
            store.delete(name)
            report.inputs += 1
            faults.point("compact.mid_delete")
