"""Where importers put facts: rows gathered per pipeline and table, written as partitions.

Importers read a source in chunks of whole records (a run with its metrics, an execution with
its events), check each record completely, and only then hand its rows to the sink; a
:meth:`FactSink.flush` per chunk writes one partition per (pipeline, table). Rows are
deduplicated by the table's key and sorted, and every id and timestamp comes from the
source, so importing the same source again writes byte-identical partitions: the same
content hashes, hence no new file. A record that fails its check therefore leaves nothing
behind, and records of earlier chunks are complete.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pyarrow as pa

from cmfq.config import default_site
from cmfq.errors import InvalidInputError
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.schema import TABLES
from cmfq.warehouse.writer import write_rows

Row = dict[str, Any]
Progress = Callable[[int, int], None]
T = TypeVar("T")

_EXECUTION_DEFAULTS: Row = {
    "parent_id": None, "type": None, "project": None, "host": None, "user": None, "ended_at": None,
    "error": None, "cmd": None, "git_repo": None, "git_commit": None, "git_branch": None, "git_dirty": None,
    "env_hash": None,
}


class ImportSourceError(InvalidInputError):
    """A source that cannot be imported, or one record of it that is malformed. The message
    names the source and the record; nothing of that record was written."""

    def __init__(self, source: str, problem: str, *, record: str | None = None, hint: str | None = None) -> None:
        where = f"{source}: {record}: " if record else f"{source}: "
        super().__init__(where + problem, hint=hint or "Fix or remove that record and import again; "
                         "records imported before it are complete, and importing them again adds nothing.")
        self.source = source
        self.record = record
        self.problem = problem


def dumps(value: Any) -> str:
    """Canonical JSON text (sorted keys, no spaces) that DuckDB can parse: non-finite floats
    become strings, other values JSON cannot hold become their text."""
    return json.dumps(_finite(value), sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


@dataclass
class ImportReport:
    """What an import did: rows per table, partitions written, and what it could not map."""

    kind: str
    source: str
    pipelines: set[str] = field(default_factory=set)
    executions: int = 0
    artifacts: set[str] = field(default_factory=set)
    events: int = 0
    metrics: int = 0
    annotations: int = 0
    partitions_new: int = 0
    partitions_existing: int = 0
    not_mapped: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def skip(self, what: str, count: int = 1) -> None:
        """Note ``count`` things of the source that have no place in the warehouse."""
        if count:
            self.not_mapped[what] = self.not_mapped.get(what, 0) + count

    def note(self, what: str, count: int = 1) -> None:
        """Note ``count`` things imported under an assumption worth knowing."""
        if count:
            self.notes[what] = self.notes.get(what, 0) + count

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "pipelines": sorted(self.pipelines),
                "executions": self.executions, "artifacts": len(self.artifacts), "events": self.events,
                "metrics": self.metrics, "annotations": self.annotations,
                "partitions_new": self.partitions_new, "partitions_existing": self.partitions_existing,
                "not_mapped": dict(sorted(self.not_mapped.items())), "notes": dict(sorted(self.notes.items())),
                "seconds": round(self.seconds, 3)}

    def summary(self) -> str:
        """A few lines for people: what was imported, and what was not."""
        lines = [f"Imported {self.kind} {self.source}: {self.executions} executions in "
                 f"{len(self.pipelines)} pipeline(s), {len(self.artifacts)} artifacts, {self.events} events, "
                 f"{self.metrics} metric points, {self.annotations} annotations; "
                 f"{self.partitions_new} new partitions, {self.partitions_existing} already there "
                 f"({self.seconds:.1f} s)."]
        if self.executions and not self.partitions_new:
            lines.append("Nothing new: this source was imported before.")
        for what, count in sorted(self.not_mapped.items()):
            lines.append(f"  not imported: {count} × {what}")
        for what, count in sorted(self.notes.items()):
            lines.append(f"  note: {count} × {what}")
        return "\n".join(lines)


class FactSink:
    """Gathers rows of one import and writes them as deterministic partitions."""

    def __init__(self, layout: Layout, report: ImportReport) -> None:
        self.layout = layout
        self.report = report
        # The warehouse is created by the first flush: a source that fails its checks first
        # leaves no trace.
        self.site = str(layout.settings().get("site") or default_site()) if layout.exists() else default_site()
        self._existing = {str(p) for p in layout.partitions()}
        self._rows: dict[tuple[str, str], list[Row]] = {}
        self._seen: set[tuple[str, str]] = set()
        self._started = time.perf_counter()

    def execution(self, row: Row) -> None:
        """Add an execution row; missing optional columns are filled with NULL."""
        full = {**_EXECUTION_DEFAULTS, "site": self.site, **row}
        full.setdefault("at", full.get("ended_at") or full["started_at"])
        self._add(full["pipeline"], "executions", full)
        self.report.executions += 1
        self.report.pipelines.add(full["pipeline"])

    def artifact(self, pipeline: str, row: Row) -> None:
        """Add an artifact row (once per pipeline and import: its first sighting wins)."""
        if (pipeline, row["hash"]) in self._seen:
            return
        self._seen.add((pipeline, row["hash"]))
        self._add(pipeline, "artifacts", {"uri": None, "size": None, "site": self.site, **row})
        self.report.artifacts.add(row["hash"])

    def event(self, pipeline: str, row: Row) -> None:
        self._add(pipeline, "events", {"role": None, "name": None, **row})

    def metric(self, pipeline: str, row: Row) -> None:
        self._add(pipeline, "metrics", row)

    def annotation(self, pipeline: str, row: Row) -> None:
        self._add(pipeline, "annotations", row)

    def _add(self, pipeline: str, table: str, row: Row) -> None:
        self._rows.setdefault((pipeline, table), []).append(row)

    def write_checked(self, records: Sequence[T], write: Callable[[T], None], size: int,
                      progress: Progress | None = None) -> None:
        """Hand records that were all mapped (and so checked) already to ``write``, flushing a
        partition batch every ``size`` records and reporting progress after each."""
        for start in range(0, len(records), size):
            for record in records[start:start + size]:
                write(record)
            self.flush()
            if progress is not None:
                progress(min(start + size, len(records)), len(records))

    def flush(self) -> None:
        """Write what was gathered, one partition per (pipeline, table)."""
        if self._rows:
            self.layout.init(self.site)
        for (pipeline, table), rows in sorted(self._rows.items()):
            unique = _dedupe(table, rows)
            if table == "events":
                self.report.events += len(unique)
            elif table == "metrics":
                self.report.metrics += len(unique)
            elif table == "annotations":
                self.report.annotations += len(unique)
            spec = TABLES[table]
            arrow = pa.Table.from_pylist(unique, schema=spec.schema)
            name = str(write_rows(self.layout, table, pipeline, arrow))
            if name in self._existing:
                self.report.partitions_existing += 1
            else:
                self._existing.add(name)
                self.report.partitions_new += 1
        self._rows.clear()
        self.report.seconds = time.perf_counter() - self._started


def _dedupe(table: str, rows: list[Row]) -> list[Row]:
    """One row per key (the first or the latest by ``at``, as the table resolves duplicates),
    sorted by key: the same facts always make the same bytes."""
    spec = TABLES[table]
    chosen: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        key = tuple(row[k] for k in spec.key)
        held = chosen.get(key)
        if held is None:
            chosen[key] = row
            continue
        later = (row["at"], dumps(row)) > (held["at"], dumps(held))
        if later == (spec.keep == "last"):
            chosen[key] = row
    try:
        keys = sorted(chosen)  # fast: plain tuples
    except TypeError:  # a NULL among values (a final metric's step): NULLs last
        keys = sorted(chosen, key=_sort_key)
    return [chosen[k] for k in keys]


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, v if v is not None else 0) for v in key)
