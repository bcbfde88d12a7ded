"""``cmfq import mlmd``: a cmflib / ML Metadata SQLite store, read with sqlite3.

The store is opened read-only and read against MLMD's schema (``Type``, ``Artifact``,
``Execution``, ``Context``, their ``*Property`` tables, ``Event``, ``Association``,
``Attribution``, ``ParentContext``); ml-metadata itself is not needed. Executions are read
in id order, a chunk at a time, each with its properties, events and artifacts, and mapped
by :mod:`cmfq.ingest.cmf_records`. Executions outside CMF's pipeline/stage contexts (stores
written by other MLMD clients) go to the pipeline of their first context, or ``mlmd``, with
their execution type as stage.

Step metrics that cmflib kept in Parquet files (``cmf_artifacts/<uuid>/metrics/<name>``) are
read when the file is found next to the store.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cmfq.config import warehouse_path
from cmfq.ingest.cmf_records import CmfMapper, CmfRecord
from cmfq.ingest.facts_sink import FactSink, ImportReport, ImportSourceError, Progress
from cmfq.warehouse.layout import Layout

#: Executions read, mapped and written per partition batch.
CHUNK = 5000
REQUIRED = ("Type", "Artifact", "ArtifactProperty", "Execution", "ExecutionProperty", "Context",
            "ContextProperty", "Event", "Association", "ParentContext")
#: MLMD Type.type_kind numbers.
CONTEXT_KIND = 2
FALLBACK_PIPELINE = "mlmd"


def import_mlmd(source: str | os.PathLike[str], warehouse: str | os.PathLike[str] | None = None, *,
                pipeline: str | None = None, progress: Progress | None = None) -> ImportReport:
    """Import the store at ``source`` (only pipeline ``pipeline`` when given) into ``warehouse``."""
    path = Path(source)
    label = str(source)
    report = ImportReport("mlmd", label)
    con = open_store(path, label)
    try:
        store = _Store(con, label)
        sink = FactSink(Layout(warehouse_path(warehouse)), report)
        mapper = CmfMapper(sink, report, label, step_metrics=_step_metrics_reader(path.resolve().parent))
        total = con.execute("SELECT count(*) FROM Execution").fetchone()[0]
        done = 0
        for chunk in store.chunks(CHUNK):
            # Map (and so check) the whole chunk before any of it is written.
            mapped = [mapper.map(r) for r in chunk if pipeline is None or r.pipeline == pipeline]
            for rows in mapped:
                mapper.add(rows)
            sink.flush()
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        if store.foreign:
            report.skip(f"executions outside CMF's pipeline/stage contexts (put in pipeline "
                        f"'{FALLBACK_PIPELINE}' or their context's, stage = execution type)", store.foreign)
        if pipeline is not None and not report.executions:
            raise ImportSourceError(label, f"has no pipeline named {pipeline!r}",
                                    hint=f"Its pipelines are {sorted(store.pipeline_names()) or 'none'}.")
        return report
    finally:
        con.close()


def open_store(path: Path, label: str) -> sqlite3.Connection:
    """Open ``path`` read-only and check it is an MLMD store; errors name what is wrong."""
    if not path.is_file():
        raise ImportSourceError(label, "no such file", hint="Give the path of a cmflib/ML Metadata SQLite "
                                "store (cmflib's default is ./mlmd).")
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise ImportSourceError(label, f"is not a SQLite database ({exc})",
                                hint="Give the path of a cmflib/ML Metadata SQLite store.") from None
    missing = [t for t in REQUIRED if t not in tables]
    if missing:
        con.close()
        raise ImportSourceError(label, f"is a SQLite database but not an ML Metadata store: it has no "
                                f"{', '.join(missing)} table(s)",
                                hint="Give the path of a store written by cmflib or ml-metadata.")
    return con


class _Store:
    """Reads an MLMD store as CMF records, a chunk of executions at a time."""

    def __init__(self, con: sqlite3.Connection, label: str) -> None:
        self.con = con
        self.label = label
        self.types = {i: (n, k) for i, n, k in con.execute("SELECT id, name, type_kind FROM Type")}
        self.contexts: dict[int, dict[str, Any]] = {}
        for cid, type_id, name, created, updated in con.execute(
                "SELECT id, type_id, name, create_time_since_epoch, last_update_time_since_epoch FROM Context"):
            self.contexts[cid] = {"id": cid, "type": self.types.get(type_id, ("", 0))[0], "name": name,
                                  "create_time_since_epoch": created, "last_update_time_since_epoch": updated,
                                  "properties": {}, "custom_properties": {}}
        for cid, key, custom, *value in con.execute(
                f"SELECT context_id, name, is_custom_property, {_VALUE_COLUMNS} FROM ContextProperty"):
            if cid in self.contexts:
                self.contexts[cid]["custom_properties" if custom else "properties"][key] = _value(value)
        self.parent: dict[int, int] = {}
        for child, parent in con.execute("SELECT context_id, parent_context_id FROM ParentContext ORDER BY 1, 2"):
            self.parent.setdefault(child, parent)
        self.assoc: dict[int, list[int]] = {}
        for ctx, ex in con.execute("SELECT context_id, execution_id FROM Association ORDER BY id"):
            self.assoc.setdefault(ex, []).append(ctx)
        self.foreign = 0

    def pipeline_names(self) -> list[str]:
        return [c["name"] for c in self.contexts.values() if c["type"] == "Parent_Context"]

    def chunks(self, size: int) -> Iterator[list[CmfRecord]]:
        last = -1
        while True:
            rows = self.con.execute(
                "SELECT id, type_id, last_known_state, name, create_time_since_epoch, last_update_time_since_epoch "
                "FROM Execution WHERE id > ? ORDER BY id LIMIT ?", (last, size)).fetchall()
            if not rows:
                return
            lo, hi = rows[0][0], rows[-1][0]
            last = hi
            yield self._records(rows, lo, hi)

    def _records(self, rows: list[tuple[Any, ...]], lo: int, hi: int) -> list[CmfRecord]:
        execs: dict[int, dict[str, Any]] = {}
        for eid, type_id, state, name, created, updated in rows:
            execs[eid] = {"id": eid, "type": self.types.get(type_id, ("", 0))[0], "name": name or "",
                          "last_known_state": state, "create_time_since_epoch": created,
                          "last_update_time_since_epoch": updated, "properties": {}, "custom_properties": {}}
        for eid, key, custom, *value in self.con.execute(
                f"SELECT execution_id, name, is_custom_property, {_VALUE_COLUMNS} FROM ExecutionProperty "
                "WHERE execution_id BETWEEN ? AND ?", (lo, hi)):
            if eid in execs:
                execs[eid]["custom_properties" if custom else "properties"][key] = _value(value)
        used = "SELECT DISTINCT artifact_id FROM Event WHERE execution_id BETWEEN ? AND ?"
        artifacts: dict[int, dict[str, Any]] = {}
        for aid, type_id, uri, name, created, updated in self.con.execute(
                "SELECT id, type_id, uri, name, create_time_since_epoch, last_update_time_since_epoch FROM Artifact "
                f"WHERE id IN ({used})", (lo, hi)):
            artifacts[aid] = {"id": aid, "type": self.types.get(type_id, ("", 0))[0], "uri": uri or "",
                              "name": name or "", "create_time_since_epoch": created,
                              "last_update_time_since_epoch": updated, "properties": {}, "custom_properties": {}}
        for aid, key, custom, *value in self.con.execute(
                f"SELECT artifact_id, name, is_custom_property, {_VALUE_COLUMNS} FROM ArtifactProperty "
                f"WHERE artifact_id IN ({used})", (lo, hi)):
            artifacts[aid]["custom_properties" if custom else "properties"][key] = _value(value)
        events: dict[int, list[dict[str, Any]]] = {}
        for event_id, aid, eid, etype, ms in self.con.execute(
                "SELECT id, artifact_id, execution_id, type, milliseconds_since_epoch FROM Event "
                "WHERE execution_id BETWEEN ? AND ? ORDER BY execution_id, id", (lo, hi)):
            if aid not in artifacts:
                raise ImportSourceError(self.label, f"event {event_id} points at artifact {aid}, which is not in "
                                        "the store", record=f"execution {eid}",
                                        hint="The store is damaged; repair it or import it without that execution.")
            events.setdefault(eid, []).append({"type": etype, "milliseconds_since_epoch": ms,
                                               "artifact": artifacts[aid]})
        return [self._record(ex, events.get(eid, [])) for eid, ex in execs.items()]

    def _record(self, ex: dict[str, Any], events: list[dict[str, Any]]) -> CmfRecord:
        contexts = [self.contexts[c] for c in self.assoc.get(ex["id"], []) if c in self.contexts]
        where = f"execution {ex['id']} (type {ex['type']!r})"
        for ctx in contexts:
            parent = self.contexts.get(self.parent.get(ctx["id"], -1))
            if parent is not None and parent["type"] == "Parent_Context":
                return CmfRecord(parent["name"], ctx["name"], ex, events, where, parent, ctx)
        for ctx in contexts:
            if ctx["type"] == "Parent_Context":
                return CmfRecord(ctx["name"], ex["type"], ex, events, where, ctx, None)
        self.foreign += 1
        pipeline = contexts[0]["name"] if contexts else FALLBACK_PIPELINE
        return CmfRecord(pipeline, ex["type"] or "default", ex, events, where, None, None)


_VALUE_COLUMNS = "int_value, double_value, string_value, bool_value, byte_value IS NOT NULL OR proto_value IS NOT NULL"


def _value(columns: list[Any]) -> Any:
    int_value, double_value, string_value, bool_value, opaque = columns
    if int_value is not None:
        return int_value
    if double_value is not None:
        return double_value
    if string_value is not None:
        return string_value
    if bool_value is not None:
        return bool(bool_value)
    return "<bytes>" if opaque else None


def _step_metrics_reader(root: Path) -> Any:
    """Reads cmflib's step-metrics Parquet files (a ``SequenceNumber`` column and one column per
    metric) found under ``root``."""
    def read(relpath: str) -> list[tuple[int, dict[str, float]]] | None:
        path = root / relpath
        if not path.is_file():
            return None
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception:  # a file that is not Parquet: treated as missing
            return None
        points = []
        for i, row in enumerate(rows, start=1):
            step = row.pop("SequenceNumber", i)
            values = {k: float(v) for k, v in row.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)}
            points.append((int(step), values))
        return points
    return read
