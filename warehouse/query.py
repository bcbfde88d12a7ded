"""The query API: ``cmfq.Warehouse``, the questions you ask of a warehouse, as polars frames.

    wh = cmfq.Warehouse(".cmfq")
    wh.executions(stage="train", params=["n_est>=100"])
    wh.ancestors("artifacts/model/model.pkl")     # everything the model came from
    wh.sql("SELECT * FROM final_metrics WHERE name = ?", ["roc_auc"])

Every method is one parameterized SQL statement over the views of ``sql/views.sql``; the
CLI and the app call only this API. Artifacts can be named by full hash, hash prefix, or
name (the latest version of that name); executions by id or id prefix.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import duckdb
import polars as pl

from cmfq.config import warehouse_path
from cmfq.errors import AmbiguousError, InvalidInputError, NotFoundError, QueryError
from cmfq.warehouse import graph_map
from cmfq.warehouse.analytics import NO_LIMIT, Analytics
from cmfq.warehouse.connection import (
    CPUS,
    LOCK_TIMEOUT_S,
    QUERY_RETRY_LIMITS,
    memory_limit,
    open_remote_warehouse,
    open_warehouse,
)
from cmfq.warehouse.filters import Condition
from cmfq.warehouse.graph_map import GraphMap
from cmfq.warehouse.index import Progress, RefreshReport
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.lineage import Lineage
from cmfq.warehouse.point_lookup import PointLookup, breadth_first
from cmfq.warehouse.remote import Remote, open_remote
from cmfq.warehouse.writer import replay_journals

log = logging.getLogger("cmfq")

Direction = Literal["up", "down", "both"]
MIN_PREFIX = 4
#: Up to this many node ids are labelled by ART probes; more are cheaper as one hash join.
ART_LOOKUPS = 1000
#: A walk whose first hop has this many edges or more is wide: it runs on two threads.
WIDE_FAN_OUT = 64
#: Node labels kept per open warehouse. The index is a read-only snapshot until refresh(),
#: so a label never goes stale; interactive sessions (the app, a notebook) walk overlapping
#: graphs again and again.
LABEL_CACHE = 200_000
#: The point lookup of a session from which a small warehouse answers them from memory.
RESIDENT_AFTER = 2
#: What the index writes as a graph stamp (a uuid): it names a folder.
_STAMP = re.compile(r"[0-9a-f-]{36}")
_EXECUTION_COLUMNS = ("id, pipeline, stage, status, started_at, duration_s, git_commit, params::VARCHAR AS params")


class Warehouse(Analytics):
    """Read access to a warehouse folder (``.cmfq`` by default) through DuckDB.

    Opening replays journals left by crashed loggers and brings the local index up to date
    (loading only partitions it has not seen). Partitions that fail verification are
    skipped and listed in :attr:`problems`; the rest stays queryable.
    """

    def __init__(self, path: str | os.PathLike[str] | Remote | None = None, *, refresh: bool = True,
                 progress: Progress | None = None, lock_timeout: float = LOCK_TIMEOUT_S,
                 remote_options: dict[str, Any] | None = None, query_memory_limit: str | None = None,
                 resident: bool | None = None) -> None:
        """``query_memory_limit``: DuckDB's memory limit for queries, set once the index is
        up to date (a refresh keeps the usual limit, $CMFQ_MEMORY_LIMIT or 512MB). ``resident``:
        answer point lookups from memory from the first (True), never (False), or from a
        session's second when the warehouse is small (None; see ``_resident``)."""
        self._query_memory_limit = query_memory_limit
        self._retry_limits = list(QUERY_RETRY_LIMITS)
        self._remote: Remote | None = None
        if isinstance(path, Remote):
            self._remote = path
        elif isinstance(path, str) and "://" in path and not path.startswith("file://"):
            self._remote = open_remote(path, remote_options)
        self._refresh_opts: dict[str, Any] = {"progress": progress, "lock_timeout": lock_timeout}
        if self._remote is not None:
            self.layout: Layout | None = None
            self._opened = open_remote_warehouse(self._remote, progress=progress)
        else:
            local = path.removeprefix("file://") if isinstance(path, str) else path
            self.layout = Layout(warehouse_path(local)).require()
            if refresh:
                replay_journals(self.layout)
            self._opened = open_warehouse(self.layout, refresh=refresh, progress=progress,
                                          lock_timeout=lock_timeout)
        self._con = self._opened.con
        self.mode = self._opened.mode
        self.report: RefreshReport = self._opened.report
        self._labels: dict[int, tuple[Any, ...]] = {}
        self._point: PointLookup | None = None  # None: not loaded (yet, or too big to load)
        self._point_loaded = False
        self._resident_mode, self._point_lookups = resident, 0
        self._graph: GraphMap | None = None  # None: not looked for yet, or there is none
        self._graph_looked = False
        self._thread_count = CPUS  # what opening set (connection.py)
        self._limit_memory()

    def _limit_memory(self) -> None:
        if self._query_memory_limit:
            self._con.execute("SET memory_limit = ?", [self._query_memory_limit])

    @property
    def root(self) -> str:
        """The warehouse folder, or the URL of the remote read in place."""
        return self._remote.url if self._remote is not None else str(self.layout.root)  # type: ignore[union-attr]

    @property
    def problems(self) -> list[str]:
        """Partitions skipped at the last refresh, each with the reason."""
        return [str(e) for e in self.report.rejected]

    def problems_list(self) -> list[str]:
        """:attr:`problems` as a call (for callers that go through method names)."""
        return self.problems

    def refresh(self) -> RefreshReport:
        """Pick up what was logged (or pushed) since this warehouse was opened."""
        # Close first: DuckDB will not attach an index file twice in one process.
        self._opened.close()
        if self._remote is not None:
            opened = open_remote_warehouse(self._remote, progress=self._refresh_opts["progress"])
        else:
            assert self.layout is not None
            replay_journals(self.layout)
            opened = open_warehouse(self.layout, refresh=True, **self._refresh_opts)
        self._opened = opened
        self._con, self.mode, self.report = opened.con, opened.mode, opened.report
        self._labels.clear()
        self._point, self._point_loaded = None, False
        self._graph, self._graph_looked = None, False
        self._thread_count = CPUS
        self._limit_memory()
        return self.report

    def close(self) -> None:
        self._opened.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- SQL ----------------------------------------------------------------------------------

    def sql(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Run any read-only SQL over the views; values belong in ``params`` (``?``/``$name``)."""
        return self.relation(query, params).pl()

    def relation(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
                 ) -> duckdb.DuckDBPyConnection:
        """Like :meth:`sql`, but returns the DuckDB result to stream from (``fetchmany``...)."""
        try:
            _check_read_only(query)
        except duckdb.Error as exc:
            raise QueryError(_first_line(exc)) from None
        return self._execute(query, params)

    def _execute(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
                 ) -> duckdb.DuckDBPyConnection:
        """Any statement, unchecked: for cmfq's own SQL (e.g. compare's temp table)."""
        try:
            while True:
                try:
                    return self._con.execute(query, params or [])
                except duckdb.OutOfMemoryException:
                    if not self._query_memory_limit:
                        raise
                    # What cannot spill did not fit in the small query limit: run it again at
                    # the next one up (QUERY_RETRY_LIMITS, on one thread: each thread holds
                    # hash tables of its own; then the usual limit and threads), for this
                    # query and the ones after it.
                    self._query_memory_limit = self._retry_limits.pop(0) if self._retry_limits else None
                    self._con.execute("SET memory_limit = ?", [self._query_memory_limit or memory_limit()])
                    self._con.execute(f"SET threads = {1 if self._query_memory_limit else self._thread_count}")
        except duckdb.Error as exc:
            raise QueryError(_first_line(exc)) from None

    def _rows(self, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self._execute(query, params).fetchall()

    def _point_lookup(self) -> None:
        """Count a point lookup (lineage, ancestors, descendants, metric history)."""
        self._point_lookups += 1

    def _resident(self) -> PointLookup | None:
        """The in-memory copy that answers point lookups (warehouse/point_lookup.py), when
        this warehouse is small enough to keep one and this session wants one: ``resident=True``
        loads it at the first point lookup, ``False`` never, and the default at the second. A
        one-shot command (the CLI) then never pays for the load; a notebook, the app or a
        service asking again and again gets answers in microseconds."""
        if not self._point_loaded:
            wanted = self._resident_mode
            if wanted is None:
                wanted = self._point_lookups >= RESIDENT_AFTER
            if not wanted:
                return None
            self._point = PointLookup.load(self._rows, lambda q: self._execute(q).pl())
            self._point_loaded = True
        return self._point

    def summary(self) -> dict[str, Any]:
        """Counts (pipelines, executions, artifacts, models, sites, failures), the size of the
        partitions, and when this warehouse last pushed or pulled."""
        counts = self.sql(
            """SELECT (SELECT count(*) FROM pipelines) AS pipelines, (SELECT count(*) FROM executions) AS executions,
                      (SELECT count(*) FROM executions WHERE status IN ('failed', 'interrupted')) AS failures,
                      (SELECT count(*) FROM artifacts) AS artifacts,
                      (SELECT count(*) FROM artifacts WHERE kind = 'model') AS models,
                      (SELECT count(DISTINCT site) FROM executions) AS sites,
                      (SELECT count(*) FROM deployments WHERE status = 'active') AS active_deployments""").row(
            0, named=True)
        info: dict[str, Any] = {**counts, "root": self.root, "partitions": 0, "bytes": 0, "last_sync": None}
        if self.layout is not None:
            sizes = [self.layout.path(n).stat().st_size for n in self.layout.partitions()
                     if self.layout.path(n).exists()]
            remotes = (self.layout.settings().get("remotes") or {}).values()
            syncs = [t for r in remotes for t in (r.get("last_push"), r.get("last_pull")) if t]
            info.update(partitions=len(sizes), bytes=sum(sizes), last_sync=max(syncs) if syncs else None)
        return info

    # -- listings -------------------------------------------------------------------------------

    def pipelines(self) -> pl.DataFrame:
        return self.sql("SELECT * FROM pipelines ORDER BY last_run DESC, name")

    def stages(self, pipeline: str | None = None) -> pl.DataFrame:
        return self.sql("SELECT * FROM stages WHERE ($1::VARCHAR IS NULL OR pipeline = $1) "
                        "ORDER BY pipeline, last_run", [pipeline])

    def executions(self, pipeline: str | None = None, stage: str | None = None, *,
                   status: str | None = None, params: Iterable[str | Condition] | Mapping[str, Any] = (),
                   metrics: Iterable[str | Condition] = (), limit: int | None = None) -> pl.DataFrame:
        """Executions, newest first, filtered by pipeline, stage, status, parameters and
        final metric values. Conditions read ``"n_est>=100"``; a mapping means equality."""
        args: list[Any]
        where, args = ["($1::VARCHAR IS NULL OR pipeline = $1)", "($2::VARCHAR IS NULL OR stage = $2)",
                       "($3::VARCHAR IS NULL OR status = $3)"], [pipeline, stage, status]
        conds = ([Condition.equals(k, v) for k, v in params.items()] if isinstance(params, Mapping)
                 else [_cond(c) for c in params])
        for c in conds:
            args += [c.name, c.value]
            n, v = len(args) - 1, len(args)
            target = (f"TRY_CAST(json_extract_string(params, json_key_path(${n})) AS DOUBLE)" if c.numeric
                      else f"json_extract_string(params, json_key_path(${n}))")
            where.append(f"{target} {c.op} ${v}")
        for c in (_cond(m) for m in metrics):
            args += [c.name, c.value]
            n, v = len(args) - 1, len(args)
            cast = "" if c.numeric else "::VARCHAR"
            where.append(f"EXISTS (SELECT 1 FROM final_metrics f WHERE f.execution_id = executions.id "
                         f"AND f.name = ${n} AND f.value{cast} {c.op} ${v})")
        sql = (f"SELECT {_EXECUTION_COLUMNS} FROM executions WHERE {' AND '.join(where)} "
               f"ORDER BY started_at DESC, id DESC")
        if limit is not None:
            args.append(int(limit))
            sql += f" LIMIT ${len(args)}"
        return self.sql(sql, args)

    def artifacts(self, kind: str | None = None, *, name: str | None = None,
                  execution: str | None = None, direction: Literal["in", "out"] | None = None,
                  limit: int | None = None) -> pl.DataFrame:
        """Artifacts, newest first: by kind, by name (substring), or used by one execution."""
        exec_id = self.resolve_execution(execution) if execution else None
        return self.sql(
            """SELECT a.hash, a.kind, a.name, a.size, a.first_seen_at, a.uri
               FROM artifacts a
               WHERE ($1::VARCHAR IS NULL OR a.kind = $1)
                 AND ($2::VARCHAR IS NULL OR contains(a.name, $2))
                 AND ($3::VARCHAR IS NULL OR EXISTS (
                      SELECT 1 FROM events e WHERE e.artifact_hash = a.hash AND e.execution_id = $3
                        AND ($4::VARCHAR IS NULL OR e.direction = $4)))
               ORDER BY a.first_seen_at DESC, a.hash LIMIT $5""",
            [kind, name, exec_id, direction, NO_LIMIT if limit is None else limit])

    def execution(self, ref: str) -> dict[str, Any]:
        """Everything about one execution: its row, final metrics, inputs and outputs."""
        exec_id = self.resolve_execution(ref)
        row = self.sql("SELECT * EXCLUDE (params, properties), params::VARCHAR AS params, "
                       "properties::VARCHAR AS properties FROM executions WHERE id = ?", [exec_id]).row(0, named=True)
        row["params"] = json.loads(row["params"])
        row["properties"] = json.loads(row["properties"])
        row["metrics"] = self.sql("SELECT name, value, last_step, min_value, max_value FROM final_metrics "
                                  "WHERE execution_id = ? ORDER BY name", [exec_id]).to_dicts()
        row["inputs"], row["outputs"] = ([
            r for r in self.sql(
                "SELECT e.artifact_hash AS hash, a.kind, coalesce(e.name, a.name) AS name, e.role, a.size "
                "FROM events e LEFT JOIN artifacts a ON a.hash = e.artifact_hash "
                "WHERE e.execution_id = ? AND e.direction = ? ORDER BY name", [exec_id, d]).to_dicts()]
            for d in ("in", "out"))
        from cmfq.warehouse.reproduce import reproduce_commands  # text only: DVC is not imported

        row["reproduce"] = reproduce_commands(self, row)
        return row

    def artifact(self, ref: str) -> dict[str, Any]:
        """One artifact with its producers and consumers."""
        digest = self.resolve_artifact(ref)
        row = self.sql("SELECT * EXCLUDE (properties), properties::VARCHAR AS properties FROM artifacts "
                       "WHERE hash = ?", [digest])
        info: dict[str, Any] = row.row(0, named=True) if row.height else {"hash": digest}
        info["properties"] = json.loads(info.get("properties") or "{}")
        info["producers"] = self.producer(digest).to_dicts()
        info["consumers"] = self.consumers(digest).to_dicts()
        return info

    def metric_history(self, execution: str, name: str | None = None) -> pl.DataFrame:
        """Every point of an execution's metrics (or one metric), in step order."""
        self._point_lookup()
        exec_id = self.resolve_execution(execution)
        if (resident := self._resident()) is not None:
            return resident.metric_history(exec_id, name)
        return self.sql("SELECT name, step, value, \"at\" FROM metrics WHERE execution_id = ? "
                        "AND (?::VARCHAR IS NULL OR name = ?) ORDER BY name, step NULLS LAST, \"at\", value",
                        [exec_id, name, name])

    # -- lineage --------------------------------------------------------------------------------

    def parents(self, ref: str) -> pl.DataFrame:
        """Artifacts one hop upstream: the inputs of the executions that produced ``ref``."""
        return self._hop("parents", ref)

    def children(self, ref: str) -> pl.DataFrame:
        """Artifacts one hop downstream: the outputs of the executions that consumed ``ref``."""
        return self._hop("children", ref)

    def ancestors(self, ref: str, max_depth: int | None = None) -> pl.DataFrame:
        """Every artifact upstream of ``ref`` (all hops), nearest first, with its depth
        (the same answer as the SQL macro ``ancestors(hash)``, computed faster)."""
        return self._walk("up", ref, max_depth)

    def descendants(self, ref: str, max_depth: int | None = None) -> pl.DataFrame:
        """Every artifact downstream of ``ref`` (all hops), nearest first, with its depth."""
        return self._walk("down", ref, max_depth)

    def producer(self, ref: str) -> pl.DataFrame:
        """The execution(s) that wrote ``ref``."""
        return self._executions_of("producers", self.resolve_artifact(ref))

    def consumers(self, ref: str) -> pl.DataFrame:
        """The executions that read ``ref``."""
        return self._executions_of("consumers", self.resolve_artifact(ref))

    def lineage(self, ref: str, direction: Direction = "up", max_depth: int | None = None) -> Lineage:
        """The lineage graph around an artifact (or an execution) as nodes and edges."""
        if direction not in ("up", "down", "both"):
            raise InvalidInputError(f"direction must be up, down or both, not {direction!r}.")
        self._point_lookup()
        root_exec = None
        try:
            roots = [self.resolve_artifact(ref)]
        except NotFoundError:
            try:
                root_exec = self.resolve_execution(ref)
            except NotFoundError:
                raise NotFoundError("artifact or execution", ref, hint="Give an artifact hash, hash prefix "
                                    "or name, or an execution id; `cmfq artifacts` lists them.") from None
            roots = []
        resident = self._resident()
        if root_exec is not None and resident is not None:
            up_roots = resident.execution_artifacts(root_exec, "in")
            down_roots = resident.execution_artifacts(root_exec, "out")
        elif root_exec is not None:
            up_roots = [r[0] for r in self._rows("SELECT artifact_hash FROM events WHERE execution_id = ? "
                                                 "AND direction = 'in'", [root_exec])]
            down_roots = [r[0] for r in self._rows("SELECT artifact_hash FROM events WHERE execution_id = ? "
                                                   "AND direction = 'out'", [root_exec])]
        else:
            up_roots = down_roots = roots
        # Walked on node ids; producers (upstream) and consumers (downstream) found by index probes.
        up: set[int] = set()
        down: set[int] = set()
        for walk, starts, into in (("up", up_roots, up), ("down", down_roots, down)):
            if direction in (walk, "both"):
                for h in starts:
                    start, depth = self._cone(walk, h, max_depth)  # type: ignore[arg-type]
                    into.update((start, *depth))
        nodes = sorted(up | down)
        hashes = sorted({r[1] for r in self._labelled(dict.fromkeys(nodes, 0))} | set(roots))
        execs = {*self._event_executions(sorted(up), "out"), *self._event_executions(sorted(down), "in")}
        if root_exec:
            execs.add(root_exec)
        return Lineage.build(self, root=root_exec or roots[0], artifacts=hashes, executions=sorted(execs),
                             nodes=nodes)

    # -- resolving names --------------------------------------------------------------------------

    def resolve_artifact(self, ref: str) -> str:
        """Full hash for a hash, unique hash prefix, or artifact name (latest version)."""
        ref = _ref(ref, "artifact")
        if self._is_whole("artifact", ref):
            return ref
        named = self._rows(
            "SELECT hash FROM (SELECT artifact_hash AS hash, max(\"at\") AS seen FROM events WHERE name = ? "
            "GROUP BY 1 UNION ALL SELECT hash, first_seen_at FROM artifacts WHERE name = ?) "
            "GROUP BY hash ORDER BY max(seen) DESC, hash", [ref, ref])
        if named:
            versions = [h for (h,) in named]
            if len(versions) > 1:
                log.info("cmfq: %r has %d versions; using the latest, %s", ref, len(versions), versions[0])
            return str(versions[0])
        if len(ref) >= MIN_PREFIX:
            found = [r[0] for r in self._rows(
                "SELECT hash FROM idx.nodes WHERE starts_with(hash, ?) ORDER BY 1 LIMIT 21", [ref])]
            if len(found) == 1:
                return str(found[0])
            if found:
                raise AmbiguousError("artifact", ref, found)
        raise NotFoundError("artifact", ref, hint="Give a hash, a hash prefix (4+ characters) or a name; "
                            "`cmfq artifacts` lists them.")

    def resolve_execution(self, ref: str) -> str:
        """Full id for an execution id or unique id prefix."""
        ref = _ref(ref, "execution")
        if len(ref) < MIN_PREFIX:
            raise NotFoundError("execution", ref, hint=f"Give at least {MIN_PREFIX} characters of the id.")
        if self._is_whole("execution", ref):
            return ref
        found = [r[0] for r in self._rows("SELECT id FROM executions WHERE starts_with(id, ?) ORDER BY id "
                                          "LIMIT 21", [ref])]
        if len(found) == 1:
            return str(found[0])
        if found:
            raise AmbiguousError("execution", ref, found)
        raise NotFoundError("execution", ref, hint="`cmfq executions` lists them.")

    # -- internals ----------------------------------------------------------------------------------

    def _is_whole(self, kind: Literal["artifact", "execution"], ref: str) -> bool:
        """Is ``ref`` a whole artifact hash or execution id: a dict lookup, or an index probe."""
        if (resident := self._resident()) is not None:
            return ref in (resident.node_of if kind == "artifact" else resident.executions)
        table, column = ("nodes", "hash") if kind == "artifact" else ("executions", "id")
        return bool(self._rows(f"SELECT 1 FROM idx.{table} WHERE {column} = ?", [ref]))

    def _hop(self, macro: str, ref: str) -> pl.DataFrame:
        digest = self.resolve_artifact(ref)
        return self.sql(
            f"""SELECT h.hash, a.kind, a.name, h.execution_id, x.stage, x.pipeline
                FROM {macro}(?) h LEFT JOIN artifacts a ON a.hash = h.hash
                LEFT JOIN executions x ON x.id = h.execution_id ORDER BY a.name, h.hash""", [digest])

    def _walk(self, direction: Literal["up", "down"], ref: str, max_depth: int | None) -> pl.DataFrame:
        self._point_lookup()
        return self._label(self._cone(direction, self.resolve_artifact(ref), max_depth)[1])

    def _cone(self, direction: Literal["up", "down"], digest: str, max_depth: int | None = None
              ) -> tuple[int, dict[int, int]]:
        """The start's node id, and the node id and depth of everything up or downstream."""
        if (resident := self._resident()) is not None:
            start = resident.node_of[digest]
            return start, resident.cone(direction, start, max_depth)
        (start,), = self._rows("SELECT id FROM idx.nodes WHERE hash = ?", [digest])
        if (graph := self._graph_map()) is not None:
            return start, graph.cone(direction, start, max_depth)
        # A deep, narrow walk is hundreds of tiny ART probes, where one thread avoids per-hop
        # task scheduling (twice as fast); a wide one scans, where more threads help. The
        # start's first hop (one index probe) tells which kind of walk this is.
        (fan_out,), = self._rows(f"SELECT count(*) FROM idx.lineage_graph WHERE "
                                 f"{'child' if direction == 'up' else 'parent'} = ?", [start])
        began = time.perf_counter()
        with self._threads(1 if fan_out < WIDE_FAN_OUT else CPUS):
            edges = self._rows(f"SELECT src, dst FROM cone_{direction}(?)", [start])
        if (time.perf_counter() - began) * 1000 > graph_map.BUILD_AFTER_MS:
            self._build_graph_map()  # a slow walk: the next ones read the arrays instead
        return start, _breadth_first(start, edges, max_depth)

    @contextlib.contextmanager
    def _threads(self, count: int) -> Iterator[None]:
        """Run the statements inside on ``count`` DuckDB threads, then go back to the count
        before. Index probes and scans of a few rows are faster on one: no task scheduling."""
        before, self._thread_count = self._thread_count, count
        if count != before:
            self._con.execute(f"SET threads = {count}")
        try:
            yield
        finally:
            self._thread_count = before
            if count != before:
                self._con.execute(f"SET threads = {before}")

    def _graph_map(self) -> GraphMap | None:
        """The adjacency arrays of the index's lineage graph, when some walk saved them for
        the graph as it is now (warehouse/graph_map.py). Looked for once per session: only
        this session's refresh() changes the index it has open."""
        if not self._graph_looked:
            self._graph_looked = True
            stamp = self._graph_stamp()
            if stamp is not None and self.layout is not None:
                self._graph = GraphMap.load(graph_map.folder(self.layout.cache_dir, stamp))
        return self._graph

    def _graph_stamp(self) -> str | None:
        found = self._rows("SELECT value FROM idx._cmfq_meta WHERE key = 'graph_stamp'")
        return found[0][0] if found and _STAMP.fullmatch(found[0][0]) else None

    def _build_graph_map(self) -> None:
        if (stamp := self._graph_stamp()) is None:
            return
        self._graph = GraphMap.build(self._con)
        if self.layout is not None:  # a remote read in place keeps it for the session
            self._graph.save(graph_map.folder(self.layout.cache_dir, stamp))

    def _label(self, depth: dict[int, int]) -> pl.DataFrame:
        """Node ids with their depth -> hash, depth, kind, name, size; nearest first."""
        found = sorted(self._labelled(depth), key=lambda r: (r[0], r[3] is None, r[3] or "", r[1]))
        return pl.DataFrame(
            {"hash": [r[1] for r in found], "depth": [r[0] for r in found], "kind": [r[2] for r in found],
             "name": [r[3] for r in found], "size": [r[4] for r in found]},
            schema={"hash": pl.String, "depth": pl.Int32, "kind": pl.String, "name": pl.String, "size": pl.Int64})

    def _labelled(self, depth: dict[int, int]) -> list[tuple[Any, ...]]:
        """Node ids with their depth -> (depth, hash, kind, name, size, node id), in no order."""
        if (resident := self._resident()) is not None:
            return [(d, *resident.label[i], i) for i, d in depth.items() if i in resident.label]
        missing = [i for i in depth if i not in self._labels]
        if len(missing) <= ART_LOOKUPS:
            rows = self._rows(f"SELECT id, hash, kind, name, size FROM idx.nodes WHERE id IN "
                              f"({', '.join('?' * len(missing))})", missing) if missing else []
        else:
            rows = self._rows("SELECT n.id, n.hash, n.kind, n.name, n.size FROM idx.nodes AS n "
                              "SEMI JOIN (SELECT unnest(?::INTEGER[]) AS id) AS d ON d.id = n.id", [missing])
        if len(self._labels) + len(rows) > LABEL_CACHE:
            self._labels.clear()
        self._labels.update((r[0], r[1:]) for r in rows)
        return [(depth[i], *self._labels[i], i) for i in depth if i in self._labels]

    def _executions_of(self, macro: Literal["producers", "consumers"], digest: str) -> pl.DataFrame:
        found = self._rows("SELECT id FROM idx.nodes WHERE hash = ?", [digest])
        ids = self._event_executions([found[0][0]] if found else [], "out" if macro == "producers" else "in")
        # Usually a handful of ids: probes of the executions_id index, not a scan of every run.
        where, args = in_list("id", ids)
        return self.sql(f"SELECT {_EXECUTION_COLUMNS} FROM executions WHERE {where} ORDER BY started_at", args)

    def _event_executions(self, nodes: list[int], direction: Literal["in", "out"]) -> list[str]:
        """The executions that read (``in``) or wrote (``out``) any of these node ids. The
        node filter stands alone in a materialized CTE: DuckDB probes the events_node index
        only when nothing else filters the scan (with the direction beside it, it reads every event)."""
        if not nodes:
            return []
        if (resident := self._resident()) is not None:
            return resident.event_executions(nodes, direction)
        where, args = in_list("node", nodes)
        return [r[0] for r in self._rows(
            f"""WITH e AS MATERIALIZED (SELECT execution_id, direction FROM idx.events WHERE {where})
                SELECT DISTINCT execution_id FROM e WHERE direction = ? ORDER BY 1""", [*args, direction])]


def in_list(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """``column`` is one of ``values``, as SQL and its parameters. A short list is an IN list,
    which DuckDB answers by probing an ART index on the column; a long one is a hash semi
    join in one scan (not ``list_contains``, which searches the list once per row: 150 times
    slower for 1,500 values over 2.5 M events); none at all is FALSE (``IN ()`` does not
    parse, and ``IN (NULL)`` scans the table for nothing)."""
    if not values:
        return "FALSE", []
    if len(values) <= ART_LOOKUPS:
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)
    return f"{column} IN (SELECT unnest(?))", [list(values)]


def _breadth_first(start: int, edges: list[tuple[int, int]], max_depth: int | None) -> dict[int, int]:
    """Depth of every node reachable from ``start`` over ``edges`` (start excluded)."""
    nxt: dict[int, list[int]] = {}
    for src, dst in edges:
        nxt.setdefault(src, []).append(dst)
    return breadth_first(start, nxt, max_depth)


#: Statements a query may hold. External access is off on the connection already (no files,
#: no extensions); this also keeps SQL from changing the session that later queries (other
#: pages of the app, other users) share: no CREATE/DROP of views, no SET, ATTACH, USE.
_READ_ONLY = frozenset({"SELECT", "EXPLAIN"})


#: Reading a remote in place holds its S3 key in a DuckDB secret; duckdb_secrets() would show
#: the key id and session token (only the secret key is redacted).
_CREDENTIAL_FUNCTIONS = re.compile(r"duckdb_secrets|which_secret", re.I)


def _check_read_only(query: str) -> None:
    if _CREDENTIAL_FUNCTIONS.search(query):
        raise QueryError("cmfq SQL does not show credentials: duckdb_secrets() and which_secret() are not available.",
                         hint="Credentials come from the AWS environment or profile; check them with the AWS CLI.")
    for statement in duckdb.extract_statements(query):
        kind = statement.type.name
        if kind not in _READ_ONLY:
            word = kind if kind not in ("SET", "VARIABLE_SET") else "SET, RESET, USE or PRAGMA"
            raise QueryError(f"cmfq SQL is read-only: {word} statements are not run.",
                             hint="Ask with SELECT (or EXPLAIN) over the views; to keep an answer, "
                                  "use `cmfq sql --format csv|json > file`.")


def _cond(c: str | Condition) -> Condition:
    return c if isinstance(c, Condition) else Condition.parse(c)


def _ref(ref: str, what: str) -> str:
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInputError(f"An {what} reference must be a non-empty string, got {ref!r}.")
    return ref.strip()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return re.sub(r"\s+", " ", text.split("\n\n")[0])[:500]
