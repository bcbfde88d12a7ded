"""Filtered pulls: only the facts you need from a remote, written as new local partitions.

``cmfq pull --pipeline P`` copies one pipeline's files (see sync.py). The filters here cut
across files, so they query the remote with DuckDB instead, in place, and write what matches:

- ``--artifact REF``: the artifact's whole lineage chain, up and down (as CMF pulls "all the
  artifacts in its chain of lineage"): the executions that produced it and its ancestors,
  the executions that consumed it and its descendants, their events and metrics, every
  artifact they touched, and the annotations on all of these.
- ``--since DATE``: every execution started at or after DATE, with the same companions.

The facts written are the remote's, resolved (latest state); a later full pull brings the
original partitions, and the views deduplicate.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from cmfq.warehouse.layout import Layout
from cmfq.warehouse.query import Warehouse
from cmfq.warehouse.remote import Remote
from cmfq.warehouse.schema import TABLES
from cmfq.warehouse.writer import write_rows

#: Per table: the rows that go with the selected executions ($ids) and artifacts ($hashes),
#: with the pipeline folder each row is written under, and the parameters the query uses.
_SELECT: dict[str, tuple[str, tuple[str, ...]]] = {
    "executions": ("SELECT {cols}, t.pipeline AS _folder FROM idx.executions AS t "
                   "WHERE t.id IN (SELECT unnest($ids))", ("ids",)),
    "events": ("SELECT {cols}, x.pipeline AS _folder FROM idx.events AS t JOIN idx.executions AS x "
               "ON x.id = t.execution_id WHERE t.execution_id IN (SELECT unnest($ids))", ("ids",)),
    "metrics": ("SELECT {cols}, x.pipeline AS _folder FROM idx.metrics AS t JOIN idx.executions AS x "
                "ON x.id = t.execution_id WHERE t.execution_id IN (SELECT unnest($ids))", ("ids",)),
    "artifacts": ("SELECT {cols}, NULL::VARCHAR AS _folder FROM idx.artifacts AS t "
                  "WHERE t.hash IN (SELECT unnest($hashes))", ("hashes",)),
    "annotations": ("SELECT {cols}, NULL::VARCHAR AS _folder FROM idx.annotations AS t "
                    "WHERE (t.entity_kind = 'execution' AND t.entity_id IN (SELECT unnest($ids))) "
                    "OR (t.entity_kind = 'artifact' AND t.entity_id IN (SELECT unnest($hashes)))", ("ids", "hashes")),
}


@dataclass
class SelectiveReport:
    executions: int = 0
    artifacts: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    partitions: int = 0
    seconds: float = 0.0


def pull_lineage(layout: Layout, remote: Remote, ref: str) -> SelectiveReport:
    """Pull the lineage chain of artifact ``ref`` (hash, prefix or name) from ``remote``."""
    started = time.perf_counter()
    with Warehouse(remote) as rw:
        graph = rw.lineage(ref, "both")
        ids = graph.nodes.filter(graph.nodes["type"] == "execution")["id"].to_list()
        report = _copy(rw, layout, ids)
    report.seconds = time.perf_counter() - started
    return report


def pull_since(layout: Layout, remote: Remote, since: dt.datetime) -> SelectiveReport:
    """Pull every execution started at or after ``since`` from ``remote``."""
    started = time.perf_counter()
    when = since if since.tzinfo else since.replace(tzinfo=dt.UTC)
    with Warehouse(remote) as rw:
        ids = rw.sql("SELECT id FROM executions WHERE started_at >= ?", [when])["id"].to_list()
        report = _copy(rw, layout, ids)
    report.seconds = time.perf_counter() - started
    return report


def _copy(rw: Warehouse, layout: Layout, ids: list[str]) -> SelectiveReport:
    """Write the selected executions and everything that goes with them as local partitions."""
    report = SelectiveReport(executions=len(ids))
    hashes = rw.sql(
        "SELECT DISTINCT artifact_hash AS h FROM events WHERE execution_id IN (SELECT unnest($1::VARCHAR[])) "
        "UNION SELECT env_hash FROM executions WHERE id IN (SELECT unnest($1::VARCHAR[])) AND env_hash IS NOT NULL",
        [ids])["h"].to_list()
    report.artifacts = len(hashes)
    values = {"ids": ids, "hashes": hashes}
    for table, (query, uses) in _SELECT.items():
        cols = ", ".join(f't."{c}"' for c in TABLES[table].columns)
        rows = rw.relation(query.format(cols=cols), {k: values[k] for k in uses}).to_arrow_table()
        report.rows[table] = rows.num_rows
        if not rows.num_rows:
            continue
        folders = rows.column("_folder").to_pylist()
        for folder in sorted(set(folders), key=lambda f: f or ""):
            mask = [f == folder for f in folders]
            part = rows.filter(mask).drop_columns(["_folder"])
            write_rows(layout, table, folder, part)
            report.partitions += 1
    return report
