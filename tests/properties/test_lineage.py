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


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=runs, start=st.integers(0, N - 1))
def test_walks_equal_breadth_first_search(graph: list[tuple[set[int], set[int]]], start: int) -> None:
    edges = {(i, o) for ins, outs in graph for i in ins for o in outs}
    with tempfile.TemporaryDirectory() as tmp:
        with cmfq.Tracker("g", warehouse=Path(tmp), capture_git=False, capture_env=False) as t:
            for ins, outs in graph:
                with t.execution("step") as ex:
                    for i in sorted(ins):
                        ex.log_input(hash=H[i], name=f"n{i}")
                    for o in sorted(outs):
                        ex.log_output(hash=H[o], name=f"n{o}")
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
