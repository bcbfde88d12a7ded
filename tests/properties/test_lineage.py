"""Property: ancestors() and descendants() equal a plain breadth-first walk.

Graphs are random and may contain cycles: with content hashes, an execution can write back
bytes identical to an earlier artifact.
"""

from __future__ import annotations

import tempfile
from collections import deque
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cmfq
from cmfq.warehouse import query

N = 10
H = [f"{i:032x}" for i in range(N)]
runs = st.lists(st.tuples(st.sets(st.integers(0, N - 1), max_size=3), st.sets(st.integers(0, N - 1), min_size=1,
                                                                               max_size=2)), min_size=1, max_size=12)


def bfs(start: int, edges: set[tuple[int, int]]) -> dict[int, int]:
    depth, queue = {start: 0}, deque([start])
    while queue:
        node = queue.popleft()
        for a, b in sorted(edges):
            if a == node and b not in depth:
                depth[b] = depth[node] + 1
                queue.append(b)
    depth.pop(start)
    return depth


def _log(warehouse: Path, graph: list[tuple[set[int], set[int]]]) -> list[str]:
    """One run per (inputs, outputs) of ``graph``, artifact i having hash H[i]; the run ids."""
    ids = []
    with cmfq.Tracker("g", warehouse=warehouse, capture_git=False, capture_env=False) as t:
        for ins, outs in graph:
            with t.execution("step") as ex:
                for i in sorted(ins):
                    ex.log_input(hash=H[i], name=f"n{i}")
                for o in sorted(outs):
                    ex.log_output(hash=H[o], name=f"n{o}")
            ids.append(ex.id)
    return ids


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=runs, start=st.integers(0, N - 1))
def test_walks_equal_breadth_first_search(graph: list[tuple[set[int], set[int]]], start: int) -> None:
    edges = {(i, o) for ins, outs in graph for i in ins for o in outs}
    with tempfile.TemporaryDirectory() as tmp:
        _log(Path(tmp), graph)
        known = {n for ins, outs in graph for n in ins | outs}
        if start not in known:
            return
        with cmfq.Warehouse(Path(tmp)) as wh:
            up = dict(wh.ancestors(H[start]).select("hash", "depth").iter_rows())
            down = dict(wh.descendants(H[start]).select("hash", "depth").iter_rows())
            # The SQL macros a user types give the same answer as the API.
            raw = dict(wh.sql("SELECT hash, depth FROM ancestors(?)", [H[start]]).iter_rows())
        reversed_edges = {(b, a) for a, b in edges}
        assert up == raw == {H[n]: d for n, d in bfs(start, reversed_edges).items()}
        assert down == {H[n]: d for n, d in bfs(start, edges).items()}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=runs, root=st.tuples(st.sampled_from(["artifact", "run"]), st.integers(0, N - 1)),
       direction=st.sampled_from(["up", "down", "both"]))
def test_lineage_graph_is_the_runs_around_the_walk(graph: list[tuple[set[int], set[int]]], root: tuple[str, int],
                                                   direction: str) -> None:
    """lineage() of an artifact or of a run: the walked artifacts, the runs that wrote them
    (up) or read them (down), the root run itself, and exactly the logged events between
    those; the same whether events are found by index probes (short lists) or by one scan
    (long lists)."""
    edges = {(i, o) for ins, outs in graph for i in ins for o in outs}
    with tempfile.TemporaryDirectory() as tmp:
        ids = _log(Path(tmp), graph)
        kind, n = root
        if kind == "run":  # upstream of its inputs, downstream of its outputs, and itself
            r0 = n % len(graph)
            starts_up, starts_down, ref, runs_in = graph[r0][0], graph[r0][1], ids[r0], {r0}
        elif n in {a for ins, outs in graph for a in ins | outs}:
            starts_up, starts_down, ref, runs_in = {n}, {n}, H[n], set()
        else:
            return
        up = {a for s in starts_up for a in {s, *bfs(s, {(b, a) for a, b in edges})}} \
            if direction in ("up", "both") else set()
        down = {a for s in starts_down for a in {s, *bfs(s, edges)}} if direction in ("down", "both") else set()
        runs_in |= {r for r, (ins, outs) in enumerate(graph) if outs & up or ins & down}
        artifacts = up | down | ({n} if kind == "artifact" else set())
        expected_edges = sorted({(H[i], ids[r]) for r in runs_in for i in graph[r][0] if i in artifacts}
                                | {(ids[r], H[o]) for r in runs_in for o in graph[r][1] if o in artifacts})
        answers, original = [], query.ART_LOOKUPS
        for lookups in (original, 0):  # 0: every list counts as long
            query.ART_LOOKUPS = lookups
            try:
                with cmfq.Warehouse(Path(tmp)) as wh:
                    g = wh.lineage(ref, direction)  # type: ignore[arg-type]
            finally:
                query.ART_LOOKUPS = original
            nodes = g.nodes.filter(g.nodes["type"] == "artifact")["id"].to_list()
            answers.append((sorted(nodes), sorted(g.nodes.filter(g.nodes["type"] == "execution")["id"].to_list()),
                            sorted(g.edges.iter_rows())))
        assert answers[0] == answers[1]
        assert answers[0] == (sorted(H[a] for a in artifacts), sorted(ids[r] for r in runs_in), expected_edges)
