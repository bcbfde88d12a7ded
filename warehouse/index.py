"""The local index: a DuckDB database under ``_cache/`` that mirrors the partitions.

DuckDB re-reading thousands of small Parquet files on every query is slow; the index loads
each partition once, verified, into deduplicated tables (latest state already resolved)
plus ``lineage_edges`` with ART indexes, so that queries and lineage walks read compact
columnar tables instead of files.

The index holds nothing that the partitions do not: it can be deleted at any time and is
rebuilt on the next query. It is brought up to date by :func:`refresh`, which loads new
partitions only, tracked by name (their content hash). A partition that disappeared is
fine when a compacted file declared it replaced; otherwise the index is rebuilt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from cmfq import sql
from cmfq.errors import PartitionError, WarehouseError
from cmfq.warehouse import partition
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.partition import PartitionName
from cmfq.warehouse.schema import TABLES, TableSpec

log = logging.getLogger("cmfq")

#: Bump when the index's tables change shape: older index files are then rebuilt.
INDEX_VERSION = "1"
#: Partitions are loaded in chunks of at most this many bytes, one transaction each.
CHUNK_BYTES = 256 << 20
CHUNK_FILES = 5_000

Progress = Callable[[int, int], None]


@dataclass
class RefreshReport:
    loaded: int = 0
    rows: int = 0
    rebuilt: bool = False
    seconds: float = 0.0
    rejected: list[PartitionError] = field(default_factory=list)


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the index tables in catalog ``idx`` if they do not exist."""
    for spec in TABLES.values():
        con.register("_cmfq_empty", spec.schema.empty_table())
        try:
            con.execute(f"CREATE TABLE IF NOT EXISTS idx.{spec.name} AS SELECT * FROM _cmfq_empty")
        finally:
            con.unregister("_cmfq_empty")
    con.execute("USE idx")
    try:
        for stmt in sql.statements("index_schema"):
            con.execute(stmt)
    finally:
        con.execute("USE memory")


def drop_tables(con: duckdb.DuckDBPyConnection) -> None:
    for name in [*TABLES, "lineage_edges", "_cmfq_partitions", "_cmfq_replaced", "_cmfq_meta"]:
        con.execute(f"DROP TABLE IF EXISTS idx.{name}")


def refresh(con: duckdb.DuckDBPyConnection, layout: Layout, *, progress: Progress | None = None
            ) -> RefreshReport:
    """Load every partition on disk that the index (catalog ``idx``) has not seen yet."""
    started = time.perf_counter()
    report = RefreshReport()
    create_tables(con)
    version = con.execute("SELECT value FROM idx._cmfq_meta WHERE key = 'index_version'").fetchone()
    if version and version[0] != INDEX_VERSION:
        _reset(con, report)
    con.execute("INSERT OR REPLACE INTO idx._cmfq_meta VALUES ('index_version', ?)", [INDEX_VERSION])
    on_disk = {str(n): n for n in layout.partitions()}
    _load_missing(con, layout, on_disk, report, progress)
    # Only now do we know every replacement on disk: a compacted file names the partitions it
    # replaced, so their disappearance loses nothing. Any other disappearance means rows the
    # index holds are gone from the warehouse (deleted, quarantined): rebuild from what is there.
    loaded, replaced = loaded_partitions(con)
    vanished = loaded - on_disk.keys()
    if vanished - replaced:
        log.info("cmfq: rebuilding the index (%d partitions gone)", len(vanished - replaced))
        _reset(con, report)
        _load_missing(con, layout, on_disk, report, progress)
    elif vanished:
        con.execute("DELETE FROM idx._cmfq_partitions WHERE list_contains(?, name)", [sorted(vanished)])
    report.seconds = time.perf_counter() - started
    return report


def _reset(con: duckdb.DuckDBPyConnection, report: RefreshReport) -> None:
    drop_tables(con)
    create_tables(con)
    con.execute("INSERT OR REPLACE INTO idx._cmfq_meta VALUES ('index_version', ?)", [INDEX_VERSION])
    report.rebuilt = True


def _load_missing(con: duckdb.DuckDBPyConnection, layout: Layout, on_disk: dict[str, PartitionName],
                  report: RefreshReport, progress: Progress | None) -> None:
    loaded, _ = loaded_partitions(con)
    new = sorted((n for key, n in on_disk.items() if key not in loaded), key=lambda n: n.digest)
    done = 0
    for chunk in _chunks(layout, new):
        good, bad = _read_chunk(layout, chunk)
        report.rejected.extend(bad)
        report.rows += _merge(con, good)
        report.loaded += len(good)
        done += len(chunk)
        if progress:
            progress(done, len(new))


def loaded_partitions(con: duckdb.DuckDBPyConnection) -> tuple[set[str], set[str]]:
    names = {r[0] for r in con.execute("SELECT name FROM idx._cmfq_partitions").fetchall()}
    replaced = {r[0] for r in con.execute("SELECT name FROM idx._cmfq_replaced").fetchall()}
    return names, replaced


def pending(con: duckdb.DuckDBPyConnection, layout: Layout) -> bool:
    """True when the index misses partitions or holds vanished ones (cheap check)."""
    try:
        version = con.execute("SELECT value FROM idx._cmfq_meta WHERE key = 'index_version'").fetchone()
        loaded, _ = loaded_partitions(con)
    except duckdb.CatalogException:
        return True
    if not version or version[0] != INDEX_VERSION:
        return True
    on_disk = {str(n) for n in layout.partitions()}
    return on_disk != loaded


def _chunks(layout: Layout, names: list[PartitionName]) -> Iterator[list[PartitionName]]:
    chunk: list[PartitionName] = []
    size = 0
    for name in names:
        try:
            size += layout.path(name).stat().st_size
        except FileNotFoundError:
            continue
        chunk.append(name)
        if size >= CHUNK_BYTES or len(chunk) >= CHUNK_FILES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _read_one(layout: Layout, name: PartitionName) -> partition.Decoded | PartitionError:
    path = layout.path(name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return PartitionError(str(name), f"cannot be read ({exc.strerror or exc})")
    try:
        return partition.decode(name, data)
    except PartitionError as exc:
        return exc


def _read_chunk(layout: Layout, names: list[PartitionName]
                ) -> tuple[list[partition.Decoded], list[PartitionError]]:
    # Hashing and Parquet decoding release the GIL: two threads keep both cores busy.
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda n: _read_one(layout, n), names))
    good = [r for r in results if isinstance(r, partition.Decoded)]
    bad = [r for r in results if isinstance(r, PartitionError)]
    for err in bad:
        log.warning("cmfq: skipped %s", err)
    return good, bad


def _merge(con: duckdb.DuckDBPyConnection, decoded: list[partition.Decoded]) -> int:
    """Merge decoded partitions into the index in one transaction; returns rows read."""
    if not decoded:
        return 0
    by_table: dict[str, list[pa.Table]] = {}
    for d in decoded:
        by_table.setdefault(d.name.table, []).append(d.rows)
    rows = 0
    con.execute("BEGIN TRANSACTION")
    try:
        for table, parts in by_table.items():
            staged = pa.concat_tables(parts)
            rows += staged.num_rows
            con.register(f"staging_{table}", staged)
            try:
                for stmt in merge_statements(TABLES[table]):
                    con.execute(stmt)
                if table == "events":
                    for stmt in sql.statements("index_lineage"):
                        con.execute(stmt)
            finally:
                con.unregister(f"staging_{table}")
        con.executemany(
            "INSERT INTO idx._cmfq_partitions VALUES (?, ?, ?, now())",
            [[str(d.name), d.name.table, d.rows.num_rows] for d in decoded],
        )
        replaced = [[r, str(d.name)] for d in decoded for r in d.replaces]
        if replaced:
            con.executemany("INSERT INTO idx._cmfq_replaced VALUES (?, ?)", replaced)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return rows


def merge_statements(spec: TableSpec) -> list[str]:
    """The SQL that merges ``staging_<table>`` into ``idx.<table>`` (see sql/merge.sql)."""
    cols = spec.columns
    quoted = [f'"{c}"' for c in cols]
    first = spec.keep == "first"
    return sql.statements(
        "merge",
        table=spec.name,
        keep=spec.keep,
        key=", ".join(f'"{k}"' for k in spec.key),
        dir="ASC" if first else "DESC",
        op="<" if first else ">",
        columns=", ".join(quoted),
        s_columns=", ".join(f"s.{q}" for q in quoted),
        t_columns=", ".join(f"t.{q}" for q in quoted),
        key_match=" AND ".join(f't."{k}" IS NOT DISTINCT FROM s."{k}"' for k in spec.key),
    )


def parquet_statements(spec: TableSpec, files: Iterable[str]) -> list[str]:
    """SQL defining ``idx.<table>`` as a deduplicating view over Parquet ``files``."""
    listed = [f"'{f.replace(chr(39), chr(39) * 2)}'" for f in files]
    if not listed:
        raise WarehouseError(f"No partitions of table {spec.name} to read.")
    quoted = ", ".join(f'"{c}"' for c in spec.columns)
    return sql.statements(
        "parquet_table",
        table=spec.name,
        columns=quoted,
        key=", ".join(f'"{k}"' for k in spec.key),
        dir="ASC" if spec.keep == "first" else "DESC",
        files="[" + ", ".join(listed) + "]",
    )
