"""The local index follows the partitions; compaction changes no answer."""

from __future__ import annotations

from pathlib import Path

import polars as pl

import cmfq
from cmfq.warehouse.compact import compact
from cmfq.warehouse.layout import Layout
from tests.conftest import make_chain

ANSWERS = {
    "executions": "SELECT id, status, params::VARCHAR FROM executions ORDER BY id",
    "events": "SELECT * FROM events ORDER BY ALL",
    "metrics": "SELECT * FROM metrics ORDER BY ALL",
    "lineage": "SELECT * FROM lineage_edges ORDER BY ALL",
}


def _answers(root: Path) -> dict[str, pl.DataFrame]:
    with cmfq.Warehouse(root) as wh:
        return {k: wh.sql(q) for k, q in ANSWERS.items()}


def test_index_loads_only_new_partitions(warehouse_dir: Path) -> None:
    make_chain(warehouse_dir, "p1", ["a", "b"])
    with cmfq.Warehouse(warehouse_dir) as wh:
        assert wh.report.loaded > 0 and wh.mode == "index"
    with cmfq.Warehouse(warehouse_dir) as wh:
        assert wh.report.loaded == 0  # nothing new: the index file answered
        assert wh.executions().height == 2
    make_chain(warehouse_dir, "p2", ["c"])
    with cmfq.Warehouse(warehouse_dir) as wh:
        assert wh.report.loaded == 3 and not wh.report.rebuilt
        assert wh.executions().height == 3


def test_compaction_changes_no_answer_and_needs_no_rebuild(warehouse_dir: Path) -> None:
    for p in range(3):
        make_chain(warehouse_dir, f"p{p}", ["prepare", "train", "evaluate"])
    before = _answers(warehouse_dir)
    layout = Layout(warehouse_dir)
    n_before = len(list(layout.partitions()))
    report = compact(layout)
    n_after = len(list(layout.partitions()))
    assert report.inputs - report.outputs == n_before - n_after > 0
    assert n_after == len({(n.table, n.folder) for n in layout.partitions()}) == 3 * 3
    with cmfq.Warehouse(warehouse_dir) as wh:
        assert not wh.report.rebuilt  # the index knew the inputs were replaced
    after = _answers(warehouse_dir)
    for key in ANSWERS:
        assert before[key].equals(after[key]), key
    assert compact(layout).inputs == 0  # idempotent


def test_a_deleted_partition_rebuilds_the_index(warehouse_dir: Path) -> None:
    make_chain(warehouse_dir, "p", ["a", "b"])
    _answers(warehouse_dir)
    layout = Layout(warehouse_dir)
    victim = next(n for n in layout.partitions(["metrics", "executions"]) if n.table == "executions")
    layout.path(victim).unlink()
    with cmfq.Warehouse(warehouse_dir) as wh:
        assert wh.report.rebuilt
        assert wh.executions().height < 2


def test_deleting_the_index_loses_nothing(warehouse_dir: Path) -> None:
    make_chain(warehouse_dir, "p", ["a", "b", "c"])
    before = _answers(warehouse_dir)
    (warehouse_dir / "_cache" / "index.duckdb").unlink()
    after = _answers(warehouse_dir)
    for key in ANSWERS:
        assert before[key].equals(after[key]), key
