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

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb

from cmfq import sql
from cmfq.errors import PartitionError
from cmfq.warehouse import partition
from cmfq.warehouse.partition import PartitionName
from cmfq.warehouse.schema import TABLES, TableSpec
from cmfq.warehouse.source import Source

log = logging.getLogger("cmfq")

#: Bump when the index's tables change shape: older index files are then rebuilt.
INDEX_VERSION = "7"
#: Tables the index derives from the facts at each merge (see _derived_statements).
DERIVED = ("nodes", "lineage_graph", "final_metrics", "scores")
#: Columns the index adds to a fact table (index_schema.sql), filled in at staging.
INDEX_COLUMNS = {"events": ("node",)}
#: Partitions are loaded in chunks of at most this many bytes, one transaction each: what a
#: transaction holds until its commit (deletes, the staged rows) stays small, and with it what
#: a merge cannot spill: at 128MB (connection.py) the scale build ran out of memory with 64 MB
#: chunks and completes with these.
CHUNK_BYTES = 24 << 20
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
            # events also carry the artifact's node id (index_schema.sql), for integer joins.
            extra = ", NULL::INTEGER AS node" if spec.name == "events" else ""
            con.execute(f"CREATE TABLE IF NOT EXISTS idx.{spec.name} AS SELECT *{extra} FROM _cmfq_empty")
        finally:
            con.unregister("_cmfq_empty")
    _run_in_idx(con, "index_schema")


@contextlib.contextmanager
def _in_idx(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Statements inside name the index's tables unqualified (catalog ``idx``)."""
    con.execute("USE idx")
    try:
        yield
    finally:
        con.execute("USE memory")


def _run_in_idx(con: duckdb.DuckDBPyConnection, name: str) -> None:
    with _in_idx(con):
        for stmt in sql.statements(name):
            con.execute(stmt)


_INDEX = re.compile(r"CREATE INDEX IF NOT EXISTS (\w+) ON (\w+) \((\w+)\)", re.IGNORECASE)
#: Bytes DuckDB 1.5 holds per key while it creates an ART (measured: 20.9 M INTEGER keys took
#: 1.0 GB, 7.2 M 32-character hashes 600 MB), and the share of the memory limit one may take
#: (at the default 512MB, nodes_id on the scale benchmark's 7.2 M nodes would take 346 MB: its
#: ids are in insertion order, so DuckDB's min/max per row group finds an id without it).
ART_BYTES_PER_KEY = {"INTEGER": 48, "VARCHAR": 85}
ART_SHARE_OF_LIMIT = 0.5


def _create_art_indexes(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ART indexes of index_art.sql that do not exist yet. DuckDB holds a whole ART
    in memory while it creates it (ART_BYTES_PER_KEY: 1 GB for the 20 M lineage edges of the
    scale benchmark), so one that does not fit in the memory limit is left out, and noted
    so that later refreshes do not try again at the same limit. Queries that would probe it
    scan instead; lineage walks then soon switch to the adjacency arrays (graph_map.py)."""
    limit = connection_memory_limit(con)
    left_out = _art_left_out(con)
    skip = set(left_out["names"]) if left_out["limit"] == limit else set()
    existing = {r[0] for r in con.execute("SELECT index_name FROM duckdb_indexes() WHERE database_name = 'idx'")
                .fetchall()}
    missed = []
    with _in_idx(con):
        for stmt in sql.statements("index_art"):
            match = _INDEX.search(stmt)
            assert match, stmt
            name, table, column = match.groups()
            if name in existing:
                continue
            # Known not to fit, or sure not to: not tried (a failed attempt takes the whole limit).
            fits = name not in skip and _art_bytes(con, table, column) <= ART_SHARE_OF_LIMIT * _bytes(limit)
            try:
                if fits:
                    con.execute(stmt)
            except duckdb.Error as exc:
                if not _out_of_memory(exc):
                    raise
                fits = False
            if not fits:
                if name not in skip:
                    log.warning("cmfq: index %s left out: it does not fit in DuckDB's memory limit (%s); queries "
                                "that would use it scan instead. Run one cmfq command with CMFQ_MEMORY_LIMIT "
                                "set higher (e.g. 2GB) to create it.", name, limit)
                missed.append(name)
    con.execute("INSERT OR REPLACE INTO idx._cmfq_meta VALUES ('art_left_out', ?)",
                [json.dumps({"limit": limit, "names": missed})])


def _art_left_out(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The ART indexes the last refresh left out, and the memory limit it had then."""
    noted = con.execute("SELECT value FROM idx._cmfq_meta WHERE key = 'art_left_out'").fetchone()
    return json.loads(noted[0]) if noted else {"limit": None, "names": []}


def _out_of_memory(exc: duckdb.Error) -> bool:
    """DuckDB ran out of memory: said as such, or as a commit that could not pin a block."""
    text = str(exc).lower()
    return isinstance(exc, duckdb.OutOfMemoryException) or any(
        words in text for words in ("out of memory", "failed to pin", "failed to allocate", "could not allocate"))


def _art_bytes(con: duckdb.DuckDBPyConnection, table: str, column: str) -> int:
    """What creating an ART on ``idx.table(column)`` would take, from its rows and key type."""
    (rows,), = con.execute(f"SELECT count(*) FROM idx.{table}").fetchall()
    (kind,), = con.execute("SELECT data_type FROM duckdb_columns() WHERE database_name = 'idx' "
                           "AND table_name = ? AND column_name = ?", [table, column]).fetchall()
    return int(rows) * ART_BYTES_PER_KEY.get(kind, max(ART_BYTES_PER_KEY.values()))


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def _bytes(size: str) -> float:
    """A size as DuckDB prints a setting ("488.2 MiB") in bytes."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", size)
    if not match or match.group(2).upper() not in _UNITS:
        return float("inf")  # unknown: let DuckDB say whether it fits
    return float(match.group(1)) * _UNITS[match.group(2).upper()]


def connection_memory_limit(con: duckdb.DuckDBPyConnection) -> str:
    (value,), = con.execute("SELECT current_setting('memory_limit')").fetchall()
    return str(value)


def drop_tables(con: duckdb.DuckDBPyConnection) -> None:
    for name in [*TABLES, *DERIVED, "_cmfq_partitions", "_cmfq_replaced", "_cmfq_scores_dirty", "_cmfq_meta"]:
        con.execute(f"DROP TABLE IF EXISTS idx.{name}")


def refresh(con: duckdb.DuckDBPyConnection, source: Source, *, progress: Progress | None = None,
            tables: Iterable[str] | None = None, load_memory_limit: str | None = None,
            load_threads: int | None = None) -> RefreshReport:
    """Load every partition of ``source`` (of these tables) that the index, catalog ``idx``,
    has not seen yet; the merges run within ``load_memory_limit`` and on ``load_threads``
    when given (they spill; ART indexes are created with the connection's own settings)."""
    (limit, threads), = con.execute("SELECT current_setting('memory_limit'), current_setting('threads')").fetchall()
    if load_memory_limit:
        con.execute("SET memory_limit = ?", [load_memory_limit])
    if load_threads:
        con.execute(f"SET threads = {int(load_threads)}")
    try:
        report = _refresh(con, source, progress, tables)
    finally:
        con.execute("SET memory_limit = ?", [limit])
        con.execute(f"SET threads = {int(threads)}")
    started = time.perf_counter()
    _create_art_indexes(con)  # no-op when they exist; after a bulk load, built in one go
    con.execute("INSERT OR REPLACE INTO idx._cmfq_meta VALUES ('ddl', ?)", [_ddl_digest()])
    report.seconds += time.perf_counter() - started
    return report


def _refresh(con: duckdb.DuckDBPyConnection, source: Source, progress: Progress | None,
             tables: Iterable[str] | None) -> RefreshReport:
    started = time.perf_counter()
    report = RefreshReport()
    create_tables(con)
    version = con.execute("SELECT value FROM idx._cmfq_meta WHERE key = 'index_version'").fetchone()
    if version and version[0] != INDEX_VERSION:
        _reset(con, report)
    con.execute("INSERT OR REPLACE INTO idx._cmfq_meta VALUES ('index_version', ?)", [INDEX_VERSION])
    sizes = source.partitions(tables)
    on_disk = {str(n): n for n in sizes}
    _load_missing(con, source, on_disk, sizes, report, progress)
    # Only now do we know every replacement on disk: a compacted file names the partitions it
    # replaced, so their disappearance loses nothing. Any other disappearance means rows the
    # index holds are gone from the warehouse (deleted, quarantined): rebuild from what is there.
    loaded, replaced = loaded_partitions(con)
    vanished = loaded - on_disk.keys()
    if vanished - replaced:
        log.info("cmfq: rebuilding the index (%d partitions gone)", len(vanished - replaced))
        _reset(con, report)
        _load_missing(con, source, on_disk, sizes, report, progress)
    elif vanished:
        con.execute("DELETE FROM idx._cmfq_partitions WHERE name IN (SELECT unnest(?::VARCHAR[]))", [sorted(vanished)])
    _rescore(con)
    report.seconds = time.perf_counter() - started
    return report


#: Runs rescored per statement (sql/index_scores_batch.sql): bounds memory on a rebuild.
SCORE_BATCH = 50_000


def _rescore(con: duckdb.DuckDBPyConnection) -> None:
    """Rescore the runs merged since the last refresh and the producers of what they read
    (sql/index_scores.sql), a batch per transaction; the notes go once all are done."""
    if not con.execute("SELECT 1 FROM idx._cmfq_scores_dirty LIMIT 1").fetchall():
        return
    for stmt in sql.statements("index_scores", batch_size=str(SCORE_BATCH)):
        con.execute(stmt)
    (batches,), = con.execute("SELECT coalesce(max(batch) + 1, 0) FROM scores_affected").fetchall()
    for batch in range(batches):
        con.execute("BEGIN TRANSACTION")
        try:
            for stmt in sql.statements("index_scores_batch", batch=str(batch)):
                con.execute(stmt)
            if batch == batches - 1:
                con.execute("DELETE FROM idx._cmfq_scores_dirty")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    con.execute("DROP TABLE scores_affected")


def _reset(con: duckdb.DuckDBPyConnection, report: RefreshReport) -> None:
    drop_tables(con)
    create_tables(con)
    con.execute("INSERT OR REPLACE INTO idx._cmfq_meta VALUES ('index_version', ?)", [INDEX_VERSION])
    report.rebuilt = True


def _load_missing(con: duckdb.DuckDBPyConnection, source: Source, on_disk: dict[str, PartitionName],
                  sizes: dict[PartitionName, int], report: RefreshReport, progress: Progress | None) -> None:
    loaded, _ = loaded_partitions(con)
    new = sorted((n for key, n in on_disk.items() if key not in loaded), key=lambda n: n.digest)
    done = 0
    for chunk in _chunks(new, sizes):
        good, bad = source.inspect(chunk)
        for err in bad:
            log.warning("cmfq: skipped %s", err)
        report.rejected.extend(bad)
        report.rows += _merge(con, source, good)
        report.loaded += len(good)
        done += len(chunk)
        if progress:
            progress(done, len(new))


def _ddl_digest() -> str:
    import hashlib

    return hashlib.sha1((sql.read("index_schema") + sql.read("index_art")).encode()).hexdigest()


def loaded_partitions(con: duckdb.DuckDBPyConnection) -> tuple[set[str], set[str]]:
    names = {r[0] for r in con.execute("SELECT name FROM idx._cmfq_partitions").fetchall()}
    replaced = {r[0] for r in con.execute("SELECT name FROM idx._cmfq_replaced").fetchall()}
    return names, replaced


def pending(con: duckdb.DuckDBPyConnection, source: Source) -> bool:
    """True when the index misses partitions or holds vanished ones (cheap check)."""
    try:
        version = con.execute("SELECT value FROM idx._cmfq_meta WHERE key = 'index_version'").fetchone()
        loaded, _ = loaded_partitions(con)
        present = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'idx'")
                   .fetchall()}
    except duckdb.CatalogException:
        return True
    if not version or version[0] != INDEX_VERSION:
        return True
    if not {*TABLES, *DERIVED} <= present:
        return True  # made by a cmfq that had fewer tables: create them (their partitions load as new)
    ddl = con.execute("SELECT value FROM idx._cmfq_meta WHERE key = 'ddl'").fetchone()
    if not ddl or ddl[0] != _ddl_digest():
        return True  # new bookkeeping tables or indexes to create (no rebuild needed)
    if con.execute("SELECT 1 FROM idx._cmfq_scores_dirty LIMIT 1").fetchall():
        return True  # runs merged by a process that stopped before rescoring them
    left_out = _art_left_out(con)
    if left_out["names"] and left_out["limit"] != connection_memory_limit(con):
        return True  # indexes left out at another memory limit: try again at this one
    on_disk = {str(n) for n in source.partitions()}
    return on_disk != loaded


def _chunks(names: list[PartitionName], sizes: dict[PartitionName, int]) -> Iterator[list[PartitionName]]:
    chunk: list[PartitionName] = []
    size = 0
    for name in names:
        chunk.append(name)
        size += sizes.get(name, 0)
        if size >= CHUNK_BYTES or len(chunk) >= CHUNK_FILES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _merge(con: duckdb.DuckDBPyConnection, source: Source, parts: list[partition.Inspected]) -> int:
    """Merge verified partitions into the index in one transaction; returns rows read.

    Each table's files are staged with one ``read_parquet`` (DuckDB streams them, so memory
    stays bounded by its memory limit). The common cases take the short path: no key twice
    in the chunk, no key already in the index, a plain append.
    """
    if not parts:
        return 0
    covered = _covered(con, parts)
    # Table order matters: nodes take their labels from artifacts, lineage from events.
    by_table: dict[str, list[partition.Inspected]] = {t: [] for t in TABLES}
    for p in parts:
        if p.name not in covered:
            by_table[p.name.table].append(p)
    rows = 0
    con.execute("BEGIN TRANSACTION")
    try:
        for table, group in by_table.items():
            if not group:
                continue
            spec = TABLES[table]
            files = [source.path(p.name) for p in group]
            con.execute(f"CREATE OR REPLACE TEMP TABLE staging_{table} AS SELECT {_cols(spec)} "
                        "FROM read_parquet(?, union_by_name = true)", [files])
            rows += con.execute(f"SELECT count(*) FROM staging_{table}").fetchone()[0]  # type: ignore[index]
            for stmt in _staged_statements(table):
                con.execute(stmt)
            for stmt in merge_statements(con, spec):
                con.execute(stmt)
            for stmt in _derived_statements(table):
                con.execute(stmt)
            con.execute(f"DROP TABLE staging_{table}")
        con.executemany(
            "INSERT INTO idx._cmfq_partitions VALUES (?, ?, ?, now())",
            [[str(p.name), p.name.table, p.num_rows] for p in parts],
        )
        replaced = [[r, str(p.name)] for p in parts for r in p.replaces]
        if replaced:
            con.executemany("INSERT INTO idx._cmfq_replaced VALUES (?, ?)", replaced)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return rows


def _covered(con: duckdb.DuckDBPyConnection, parts: list[partition.Inspected]) -> set[PartitionName]:
    """Compacted partitions whose rows the index holds already: every partition they replace
    is loaded and the row counts agree. Reopening after a compaction then reads nothing."""
    covered = set()
    for p in parts:
        if p.replaces:
            (count, rows), = con.execute("SELECT count(*), coalesce(sum(rows), 0) FROM idx._cmfq_partitions "
                                         "WHERE name IN (SELECT unnest(?::VARCHAR[]))", [list(p.replaces)]).fetchall()
            if count == len(set(p.replaces)) and rows == p.num_rows:
                covered.add(p.name)
    return covered


#: The tables whose rows change scores, and the column naming the run in each.
SCORED_BY = {"executions": "id", "events": "execution_id", "metrics": "execution_id"}


def _staged_statements(table: str) -> list[str]:
    """What runs on a staged table before it is merged: events get the node id of their
    artifact (a node for each new hash first), so that they are inserted with it. Filling
    it in afterwards was an UPDATE of every new event, slow and held in memory to the commit."""
    if table != "events":
        return []
    return [*sql.statements("index_nodes", source="staging_events", column="artifact_hash"),
            "CREATE OR REPLACE TEMP TABLE staging_events AS SELECT s.*, n.id AS node FROM staging_events AS s "
            "JOIN idx.nodes AS n ON n.hash = s.artifact_hash"]


def _derived_statements(table: str) -> list[str]:
    """Keep the index's derived tables (nodes, lineage_graph, final_metrics) in step with a
    merged table, and note the runs whose scores the chunk changes (see index_scores.sql)."""
    touched = ([f"INSERT INTO idx._cmfq_scores_dirty SELECT DISTINCT {SCORED_BY[table]} FROM staging_{table}"]
               if table in SCORED_BY else [])
    if table == "artifacts":
        return sql.statements("index_nodes", source="staging_artifacts", column="hash")
    if table == "events":
        return [*sql.statements("index_lineage"), *touched]
    if table == "metrics":
        return [*sql.statements("index_final_metrics"), *touched]
    return touched


def _may_clash(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether some staged key may be in the index already. Metrics are checked against
    final_metrics first, one row per (execution, metric) instead of one per step: a step of a
    metric no run in the index has cannot clash, and the full check read all 100 M metric
    points of the scale benchmark at every chunk (290 of its 686 s)."""
    if table != "metrics":
        return True
    return bool(con.execute("SELECT 1 FROM (SELECT DISTINCT execution_id, name FROM staging_metrics) AS s "
                            "SEMI JOIN idx.final_metrics AS f ON f.execution_id IS NOT DISTINCT FROM s.execution_id "
                            "AND f.name IS NOT DISTINCT FROM s.name "
                            "LIMIT 1").fetchall())


def _cols(spec: TableSpec) -> str:
    return ", ".join(f'"{c}"' for c in spec.columns)


def merge_statements(con: duckdb.DuckDBPyConnection, spec: TableSpec) -> list[str]:
    """The SQL that merges ``staging_<table>`` into ``idx.<table>``, skipping the steps the
    data does not need (see sql/merge_dedupe.sql and sql/merge_resolve.sql)."""
    first = spec.keep == "first"
    key = ", ".join(f'"{k}"' for k in spec.key)
    key_match = " AND ".join(f't."{k}" IS NOT DISTINCT FROM s."{k}"' for k in spec.key)
    quoted = [f'"{c}"' for c in spec.columns]
    # The index's own columns, staged beside the facts (events.node): stored, never compared.
    extra = [f'"{c}"' for c in INDEX_COLUMNS.get(spec.name, ())]
    fill = {"table": spec.name, "keep": spec.keep, "key": key, "dir": "ASC" if first else "DESC",
            "op": "<" if first else ">", "columns": ", ".join(quoted), "key_match": key_match,
            "insert_columns": ", ".join(quoted + extra),
            "s_columns": ", ".join(f"s.{q}" for q in quoted), "t_columns": ", ".join(f"t.{q}" for q in quoted)}
    staging = f"staging_{spec.name}"
    out: list[str] = []
    # Some key twice in the chunk? A GROUP BY spills to disk where count(DISTINCT) does not,
    # and grouping the keys' 64-bit hashes is cheaper than the keys: a collision only costs
    # a dedupe that finds nothing to collapse.
    (twice,), = con.execute(f"SELECT count(*) FROM (SELECT hash({key}) AS h FROM {staging} GROUP BY h "
                            "HAVING count(*) > 1)").fetchall()
    if twice:
        for stmt in sql.statements("merge_dedupe", **fill):
            con.execute(stmt)
    clashes = 0
    if _may_clash(con, spec.name):
        (clashes,), = con.execute(f"SELECT count(*) FROM {staging} AS s SEMI JOIN idx.{spec.name} AS t "
                                  f"ON {key_match}").fetchall()
    if clashes:
        out += sql.statements("merge_resolve", **fill)
    else:
        out.append(f"INSERT INTO idx.{spec.name} ({fill['insert_columns']}) SELECT * FROM {staging}")
    return out
