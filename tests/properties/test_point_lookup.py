"""Property: a warehouse answering point lookups from memory (warehouse/point_lookup.py), or
walking the adjacency arrays of its graph (warehouse/graph_map.py), gives exactly the frames of
the DuckDB path: same rows, order, columns and types.

Graphs are random (cycles included), some artifacts are only seen in events, some runs fail,
and metrics mix per-step points, steps logged twice and final (step-less) values.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import cmfq
from cmfq.errors import NotFoundError
from cmfq.warehouse import graph_map, point_lookup, query

N = 8
H = [f"{i:032x}" for i in range(N)]
points = st.lists(st.tuples(st.sampled_from(["loss", "acc"]), st.one_of(st.none(), st.integers(0, 4)),
                            st.floats(-1e6, 1e6, allow_nan=False)), max_size=8)
runs = st.lists(st.tuples(st.sets(st.integers(0, N - 1), max_size=3), st.sets(st.integers(0, N - 1), max_size=2),
                          points, st.booleans()), min_size=1, max_size=10)


def _log(warehouse: Path, graph: list[tuple[set[int], set[int], list[tuple[str, int | None, float]], bool]]
         ) -> list[str]:
    ids = []
    with cmfq.Tracker("g", warehouse=warehouse, capture_git=False, capture_env=False) as t:
        for r, (ins, outs, metrics, fails) in enumerate(graph):
            try:
                with t.execution(f"step{r % 3}") as ex:
                    for i in sorted(ins):
                        ex.log_input(hash=H[i], name=f"n{i}" if i % 3 else None)  # some unnamed
                    for o in sorted(outs):
                        ex.log_output(hash=H[o], name=f"n{o}")
                    for name, step, value in metrics:
                        ex.log_metric(name, value, step=step)
                    if fails:
                        raise RuntimeError("this run fails")
            except RuntimeError:
                pass
            ids.append(ex.id)
    return ids


def _answers(wh: cmfq.Warehouse, refs: list[str], execs: list[str], depth: int | None) -> list[object]:
    out: list[object] = []
    for ref in refs + execs:
        for direction in ("up", "down", "both"):
            g = wh.lineage(ref, direction, max_depth=depth)  # type: ignore[arg-type]
            out += [g.nodes, g.edges]
    for ref in refs:
        out += [wh.ancestors(ref, max_depth=depth), wh.descendants(ref, max_depth=depth)]
    for e in execs:
        out += [wh.metric_history(e), wh.metric_history(e, "loss"), wh.metric_history(e, "none-such")]
    return out


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=runs, depth=st.one_of(st.none(), st.integers(1, 3)))
def test_memory_and_duckdb_give_the_same_frames(graph: list[tuple[set[int], set[int], list[tuple[str, int | None,
                                                                                              float]], bool]],
                                                depth: int | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ids = _log(Path(tmp), graph)
        refs = sorted({H[a] for ins, outs, _, _ in graph for a in ins | outs})
        answers = []
        # DuckDB walks (never building the arrays), walks over the arrays (built at the first
        # walk, whatever its speed), and everything from memory.
        for resident, build_after_ms in ((False, float("inf")), (False, -1.0), (True, float("inf"))):
            saved, graph_map.BUILD_AFTER_MS = graph_map.BUILD_AFTER_MS, build_after_ms
            try:
                with cmfq.Warehouse(Path(tmp), resident=resident) as wh:
                    answers.append(_answers(wh, refs, ids, depth))
                    # The path under test was the one taken.
                    assert (wh._point is not None) == resident
                    # (Every ref was walked from; with no ref there were no events, no graph.)
                    assert (wh._graph is not None) == (build_after_ms < 0 and not resident and bool(refs))
            finally:
                graph_map.BUILD_AFTER_MS = saved
        duck = answers[0]
        for other in answers[1:]:
            for expected, got in zip(duck, other, strict=True):
                assert isinstance(expected, pl.DataFrame)
                assert_frame_equal(got, expected)


def test_a_session_loads_at_its_second_lookup_and_drops_the_copy_on_refresh(tmp_path: Path) -> None:
    _log(tmp_path, [({0}, {1}, [("loss", 0, 1.0)], False)])
    with cmfq.Warehouse(tmp_path) as wh:
        assert wh.descendants(H[0])["hash"].to_list() == [H[1]]
        assert wh._point is None  # a one-shot command stays on DuckDB
        assert wh.descendants(H[0])["hash"].to_list() == [H[1]]
        assert wh._point is not None
        _log(tmp_path, [({1}, {2}, [], False)])
        wh.refresh()
        assert wh._point is None
        for _ in range(3):  # what was logged since is seen, from either path
            assert wh.descendants(H[0])["hash"].to_list() == [H[1], H[2]]
        with pytest.raises(NotFoundError):
            wh.metric_history("ffffffff-none")


def test_a_warehouse_too_big_to_keep_answers_from_duckdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _log(tmp_path, [({0}, {1}, [("loss", 0, 1.0)], False), ({1}, {2}, [], False)])
    monkeypatch.setattr(point_lookup, "RESIDENT_MAX_EVENTS", 3)  # this one has 4 events
    with cmfq.Warehouse(tmp_path, resident=True) as wh:
        assert wh.descendants(H[0])["hash"].to_list() == [H[1], H[2]]
        assert wh._point is None and wh._point_loaded
    assert query.RESIDENT_AFTER == 2
