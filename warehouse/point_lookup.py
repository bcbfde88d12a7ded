"""Point lookups of a small warehouse, answered from memory.

A columnar engine pays a floor of a millisecond or more per statement (planning, threads,
Arrow conversion), whatever the size of the answer. Point lookups — one execution's metric
history, one artifact's lineage — are most of what a notebook or the app asks, and a row
store with B-tree indexes (ML Metadata on SQLite) answers them in tens of microseconds. So
a warehouse small enough to fit (``RESIDENT_MAX_EVENTS`` events and ``RESIDENT_MAX_POINTS``
metric points) loads its lineage graph, its labels and its metric series into memory when a
session asks for a second point lookup (``Warehouse(resident=...)`` decides otherwise), with
a handful of bulk reads of the index, and answers from dicts and zero-copy slices from then
on. Bigger warehouses answer from DuckDB's ART indexes.

The index a connection reads is a snapshot until ``Warehouse.refresh()``, which drops this
copy, so it never goes stale. ``tests/query/test_point_lookup.py`` checks every answer
against the DuckDB path on random graphs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

#: Above either size the lookups stay in DuckDB. Measured on the peer benchmark's warehouse
#: (16k events, 102k points): 26 MB kept and 0.25 s to load, so ~80 MB and ~1 s at the limits.
RESIDENT_MAX_EVENTS = int(os.environ.get("CMFQ_RESIDENT_MAX_EVENTS", 50_000))
RESIDENT_MAX_POINTS = int(os.environ.get("CMFQ_RESIDENT_MAX_POINTS", 500_000))

Rows = Callable[[str], list[tuple[Any, ...]]]
Frame = Callable[[str], pl.DataFrame]

#: Column types of the answers, as DuckDB's Arrow export gives them on the DuckDB path.
NODE_SCHEMA = {"id": pl.String, "type": pl.String, "label": pl.String, "kind": pl.String,
               "pipeline": pl.String, "status": pl.String}
EDGE_SCHEMA = {"source": pl.String, "target": pl.String}


@dataclass
class PointLookup:
    """The lineage graph (by index node id), labels, events and metric series of a warehouse."""

    node_of: dict[str, int] = field(default_factory=dict)  # artifact hash -> node id
    label: dict[int, tuple[str, str | None, str | None, int | None]] = field(default_factory=dict)
    up: dict[int, list[int]] = field(default_factory=dict)  # node -> parent nodes
    down: dict[int, list[int]] = field(default_factory=dict)  # node -> child nodes
    node_events: dict[int, list[tuple[str, str, str]]] = field(default_factory=dict)  # (exec, direction, hash)
    exec_events: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # exec -> (hash, direction)
    executions: dict[str, tuple[str, str, str | None, str | None]] = field(default_factory=dict)
    artifacts: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # hash -> (name, kind)
    metrics: pl.DataFrame = field(default_factory=pl.DataFrame)
    series: dict[tuple[str, str | None], tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def load(cls, rows: Rows, frame: Frame) -> PointLookup | None:
        """Read the index into memory, or None when the warehouse is too big to keep there.
        Each map is built by grouping in polars and zipping columns: no Python loop per row."""
        (events, points), = rows("SELECT (SELECT count(*) FROM idx.events), (SELECT count(*) FROM idx.metrics)")
        if events > RESIDENT_MAX_EVENTS or points > RESIDENT_MAX_POINTS:
            return None
        p = cls()
        nodes = frame("SELECT id, hash, kind, name, size FROM idx.nodes")
        p.node_of = dict(zip(nodes["hash"].to_list(), nodes["id"].to_list(), strict=True))
        p.label = dict(zip(nodes["id"].to_list(), nodes.select("hash", "kind", "name", "size").iter_rows(),
                           strict=True))
        graph = frame("SELECT DISTINCT parent, child FROM idx.lineage_graph")
        p.up = _grouped(graph, "child", "parent")
        p.down = _grouped(graph, "parent", "child")
        ev = frame("SELECT DISTINCT execution_id, direction, artifact_hash, node FROM idx.events")
        p.node_events = {n: list(zip(e, d, h, strict=True)) for n, e, d, h in ev.group_by("node").agg(
            "execution_id", "direction", "artifact_hash").iter_rows()}
        p.exec_events = {e: list(zip(h, d, strict=True)) for e, h, d in ev.group_by("execution_id").agg(
            "artifact_hash", "direction").iter_rows()}
        ex = frame("SELECT id, stage, coalesce(type, 'execution') AS kind, pipeline, status FROM executions")
        p.executions = dict(zip(ex["id"].to_list(), ex.drop("id").iter_rows(), strict=True))
        art = frame("SELECT hash, name, kind FROM artifacts")
        p.artifacts = dict(zip(art["hash"].to_list(), art.drop("hash").iter_rows(), strict=True))
        # One frame in the order metric_history answers in; an execution's (and a metric's)
        # points are then one contiguous, zero-copy slice of it.
        metrics = frame('SELECT execution_id, name, step, value, "at" FROM metrics '
                        'ORDER BY execution_id, name, step NULLS LAST, "at", value').with_row_index("row")
        for keys in (["execution_id", "name"], ["execution_id"]):
            bounds = metrics.group_by(keys).agg(pl.col("row").min(), pl.len())
            names = bounds["name"].to_list() if "name" in keys else [None] * bounds.height
            p.series.update(zip(zip(bounds["execution_id"].to_list(), names, strict=True),
                                zip(bounds["row"].to_list(), bounds["len"].to_list(), strict=True), strict=True))
        p.metrics = metrics.drop("row", "execution_id")
        return p

    # -- the answers ------------------------------------------------------------------------------

    def metric_history(self, exec_id: str, name: str | None) -> pl.DataFrame:
        start, count = self.series.get((exec_id, name), (0, 0))
        return self.metrics.slice(start, count)

    def cone(self, direction: Literal["up", "down"], start: int, max_depth: int | None) -> dict[int, int]:
        """Depth of every node up or downstream of ``start`` (start excluded)."""
        return breadth_first(start, self.up if direction == "up" else self.down, max_depth)

    def event_executions(self, nodes: list[int], direction: str) -> list[str]:
        return sorted({e for n in nodes for e, d, _ in self.node_events.get(n, ()) if d == direction})

    def execution_artifacts(self, exec_id: str, direction: str) -> list[str]:
        return [h for h, d in self.exec_events.get(exec_id, ()) if d == direction]

    def graph(self, artifacts: list[str], executions: list[str], nodes: list[int]
              ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """As ``Lineage.build``: its nodes (artifacts, then executions, by label) and edges."""
        rows: list[tuple[str, str, str, str, str | None, str | None]] = []
        for h in artifacts:
            name, kind = self.artifacts.get(h, (None, None))
            rows.append((h, "artifact", name if name is not None else h, kind if kind is not None else "?", None, None))
        for e in executions:
            if e in self.executions:
                stage, kind, pipeline, status = self.executions[e]
                rows.append((e, "execution", stage, kind, pipeline, status))
        rows.sort(key=lambda r: (r[1], r[2], r[0]))
        wanted = set(executions)
        edges = sorted({(h, e) if d == "in" else (e, h) for n in nodes for e, d, h in self.node_events.get(n, ())
                        if e in wanted})
        return (pl.DataFrame(rows, schema=NODE_SCHEMA, orient="row"),
                pl.DataFrame(edges, schema=EDGE_SCHEMA, orient="row"))


def breadth_first(start: int, nxt: Mapping[int, list[int]], max_depth: int | None) -> dict[int, int]:
    """Depth of every node reachable from ``start`` through ``nxt`` (start excluded)."""
    depth, frontier, level = {start: 0}, [start], 0
    while frontier and (max_depth is None or level < max_depth):
        level += 1
        reached = []
        for node in frontier:
            for other in nxt.get(node, ()):
                if other not in depth:
                    depth[other] = level
                    reached.append(other)
        frontier = reached
    del depth[start]
    return depth


def _grouped(frame: pl.DataFrame, key: str, value: str) -> dict[Any, list[Any]]:
    """``key`` -> the list of its ``value``s."""
    grouped = frame.group_by(key).agg(value)
    return dict(zip(grouped[key].to_list(), grouped[value].to_list(), strict=True))
