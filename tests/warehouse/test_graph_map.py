"""The adjacency arrays of the lineage graph (warehouse/graph_map.py): built by a slow walk,
saved under the graph's stamp, read by later sessions, never read once the graph changed,
and ignored when damaged. (tests/properties/test_point_lookup.py checks that walks over them
give exactly the DuckDB answers on random graphs.)"""

from __future__ import annotations

from pathlib import Path

import pytest

import cmfq
from cmfq.warehouse import graph_map

CHAIN = 40


def _chain(warehouse: Path, length: int, first: int = 0) -> list[str]:
    """A chain of ``length`` steps, each reading the previous artifact: hashes in order."""
    hashes = [f"{i:032x}" for i in range(first, first + length + 1)]
    with cmfq.Tracker("chain", warehouse=warehouse, capture_git=False, capture_env=False) as t:
        for parent, child in zip(hashes, hashes[1:], strict=False):
            with t.execution("refine") as ex:
                ex.log_input(hash=parent, name=f"a{int(parent, 16)}")
                ex.log_output(hash=child, name=f"a{int(child, 16)}")
    return hashes


def _maps(warehouse: Path) -> list[Path]:
    return sorted((warehouse / "_cache").glob("graph-*"))


@pytest.fixture
def build_at_every_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_map, "BUILD_AFTER_MS", -1.0)


@pytest.mark.usefixtures("build_at_every_walk")
def test_a_slow_walk_saves_the_map_and_the_next_session_walks_it(tmp_path: Path) -> None:
    hashes = _chain(tmp_path, CHAIN)
    with cmfq.Warehouse(tmp_path, resident=False) as wh:
        expected = wh.ancestors(hashes[-1])
        assert wh._graph is not None  # built by that walk
    assert len(_maps(tmp_path)) == 1
    with cmfq.Warehouse(tmp_path, resident=False) as wh:
        assert wh.ancestors(hashes[-1]).equals(expected)
        assert wh._graph is not None and wh._graph_looked  # loaded, not built: the walk was not in SQL
    assert expected["depth"].to_list() == list(range(1, CHAIN + 1))
    assert expected["hash"].to_list() == hashes[-2::-1]


@pytest.mark.usefixtures("build_at_every_walk")
def test_a_map_of_an_older_graph_is_never_read(tmp_path: Path) -> None:
    hashes = _chain(tmp_path, 3)
    with cmfq.Warehouse(tmp_path, resident=False) as wh:
        assert wh.descendants(hashes[0]).height == 3
        old = _maps(tmp_path)
        more = _chain(tmp_path, 2, first=3)  # extends the chain from its last artifact
        wh.refresh()
        assert wh.descendants(hashes[0])["hash"].to_list() == [*hashes[1:], *more[1:]]
    assert _maps(tmp_path) != old and len(_maps(tmp_path)) == 1  # the old map was removed
    with cmfq.Warehouse(tmp_path, resident=False) as wh:
        assert wh.descendants(hashes[0]).height == 5


@pytest.mark.usefixtures("build_at_every_walk")
def test_a_damaged_map_is_ignored_and_replaced(tmp_path: Path) -> None:
    hashes = _chain(tmp_path, 5)
    with cmfq.Warehouse(tmp_path, resident=False) as wh:
        wh.ancestors(hashes[-1])
    (saved,) = _maps(tmp_path)
    (saved / "up_next.npy").write_bytes(b"\x93NUMPY truncated")
    with cmfq.Warehouse(tmp_path, resident=False) as wh:
        assert wh.ancestors(hashes[-1])["hash"].to_list() == hashes[-2::-1]
    assert graph_map.GraphMap.load(saved) is not None  # rebuilt in place of the damaged one


def test_fast_walks_build_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_map, "BUILD_AFTER_MS", 60_000.0)  # every walk is fast, even on a loaded machine
    hashes = _chain(tmp_path, 3)
    with cmfq.Warehouse(tmp_path, resident=False) as wh:
        assert wh.ancestors(hashes[-1]).height == 3
        assert wh._graph is None
    assert _maps(tmp_path) == []


def test_a_big_graph_is_built_a_batch_at_a_time_into_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches and key ranges far smaller than the graph (as on 20 M edges, where holding
    them all or sorting them in DuckDB at once did not fit a command's memory): the arrays
    equal the in-memory build, are memory-mapped from the folder built beside the index,
    and saving renames that folder rather than copying it."""
    import random

    import numpy as np

    monkeypatch.setattr(graph_map, "BATCH_EDGES", 7)
    monkeypatch.setattr(graph_map, "SLICE_EDGES", 5)
    rng = random.Random(9)
    made = [f"{i:032x}" for i in range(4)]
    with cmfq.Tracker("fan", warehouse=tmp_path, capture_git=False, capture_env=False) as t:
        for _ in range(40):
            with t.execution("step") as ex:
                for parent in rng.sample(made, min(len(made), rng.randint(1, 3))):
                    ex.log_input(hash=parent, name=f"a{parent[-3:]}")
                for _ in range(rng.randint(1, 3)):
                    made.append(f"{len(made):032x}")
                    ex.log_output(hash=made[-1], name=f"a{len(made)}")
    with cmfq.Warehouse(tmp_path, resident=False) as wh:
        built = graph_map.GraphMap.build(wh._con)
        edges = wh._con.execute("SELECT parent, child FROM idx.lineage_graph").fetchnumpy()
        (top,), = wh._con.execute("SELECT max(id) FROM idx.nodes").fetchall()
    assert len(edges["parent"]) > 4 * graph_map.SLICE_EDGES
    assert built.built_in is not None and isinstance(built.up_next, np.memmap)
    for start, targets, key, value in ((built.up_start, built.up_next, "child", "parent"),
                                       (built.down_start, built.down_next, "parent", "child")):
        want_start, want_next = graph_map._compressed(np.asarray(edges[key], np.int32),
                                                      np.asarray(edges[value], np.int32), top + 1)
        assert start.tolist() == want_start.tolist()
        for n in range(top + 1):  # each node's neighbours, sorted in the streamed build
            assert targets[start[n]:start[n + 1]].tolist() == sorted(want_next[start[n]:start[n + 1]].tolist())
    folder = graph_map.folder(tmp_path / "_cache", "test")
    built.save(folder)
    assert not built.built_in.exists() and not list((tmp_path / "_cache").glob(".graph-build-*"))
    saved = graph_map.GraphMap.load(folder)
    assert saved is not None and saved.down_next.tolist() == built.down_next.tolist()
