"""The local index follows the partitions; compaction changes no answer."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
        assert wh.report.rows == 0  # and holds their rows already: nothing was re-read
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


def test_a_busy_index_is_answered_from_memory(warehouse_dir: Path) -> None:
    """Another process holding the index for writing never makes a query wait long or
    answer stale: the partitions are loaded into memory instead."""
    import subprocess
    import sys

    make_chain(warehouse_dir, "p", ["a", "b"])
    cmfq.Warehouse(warehouse_dir).close()  # build the index
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('locked', flush=True); time.sleep(60)", str(warehouse_dir / "_cache" / "index.duckdb")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        make_chain(warehouse_dir, "q", ["c"])  # something new that only the partitions know
        with cmfq.Warehouse(warehouse_dir, lock_timeout=0.5) as wh:
            assert wh.mode == "memory"
            assert wh.executions().height == 3
            assert wh.ancestors("c.out")["name"].to_list() == ["raw"]
    finally:
        holder.kill()
        holder.wait()
    with cmfq.Warehouse(warehouse_dir) as wh:
        assert wh.mode == "index" and wh.executions().height == 3


def test_spill_folders_of_dead_processes_are_removed(warehouse_dir: Path) -> None:
    make_chain(warehouse_dir, "p", ["a"])
    stale = warehouse_dir / "_cache" / "tmp" / "999999999-abc"
    stale.mkdir(parents=True)
    with cmfq.Warehouse(warehouse_dir):
        mine = [p for p in (warehouse_dir / "_cache" / "tmp").iterdir()]
        assert not stale.exists() and len(mine) == 1
    assert list((warehouse_dir / "_cache" / "tmp").iterdir()) == []


def test_verify_sweeps_old_temp_files_only(warehouse_dir: Path) -> None:
    import os
    import time

    from cmfq.warehouse.sync import verify

    make_chain(warehouse_dir, "p", ["a"])
    folder = next((warehouse_dir / "executions").iterdir())
    old, fresh = folder / ".tmp-old-x.parquet", folder / ".tmp-new-y.parquet"
    old.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    report = verify(Layout(warehouse_dir))
    assert report.temp_removed == 1 and not old.exists() and fresh.exists() and report.bad == []


def test_an_index_made_before_a_new_table_existed_is_upgraded(warehouse_dir: Path) -> None:
    import duckdb

    make_chain(warehouse_dir, "p", ["a"])
    cmfq.Warehouse(warehouse_dir).close()
    con = duckdb.connect(str(warehouse_dir / "_cache" / "index.duckdb"))
    con.execute("DROP TABLE deployments")  # as an index written by a cmfq without deployments
    con.close()
    with cmfq.Warehouse(warehouse_dir) as wh:
        assert wh.deployments().height == 0 and wh.executions().height == 1


def test_final_metrics_follow_late_steps_and_a_later_coarse_value(warehouse_dir: Path) -> None:
    # final_metrics is kept in the index, merge by merge: a run's later partitions must move it.
    def final(wh: cmfq.Warehouse) -> tuple[float, int | None, float, float]:
        row = wh.sql("SELECT value, last_step, min_value, max_value FROM final_metrics WHERE name = 'loss'")
        assert row.height == 1
        return row.row(0)

    with cmfq.Tracker("p", warehouse=warehouse_dir, capture_git=False, capture_env=False) as t, \
            t.execution("train") as ex:
        for step, loss in enumerate([0.9, 0.5]):
            ex.log_metric("loss", loss, step=step)
        t.flush()
        with cmfq.Warehouse(warehouse_dir) as wh:
            assert final(wh) == (0.5, 1, 0.5, 0.9)
            ex.log_metric("loss", 0.7, step=2)  # worse, but the last step: it is the final value
            t.flush()
            wh.refresh()
            assert final(wh) == (0.7, 2, 0.5, 0.9)
            ex.log_metric("loss", 0.4)  # a coarse value wins over any step
            t.flush()
            wh.refresh()
            assert final(wh) == (0.4, 2, 0.4, 0.9)
    with cmfq.Warehouse(warehouse_dir) as wh:  # and the index agrees with the raw rows
        raw = wh.sql("SELECT arg_max(value, (step IS NULL, coalesce(step, 0), \"at\")) AS value, max(step), "
                     "min(value), max(value) FROM metrics WHERE name = 'loss'")
        assert final(wh) == raw.row(0)


def test_a_step_logged_again_in_a_later_partition_replaces_the_indexed_one(warehouse_dir: Path) -> None:
    # The metrics merge skips its clash check when no staged (run, metric) is in final_metrics:
    # a step of a metric the index has must still be found and resolved, never kept twice.
    with cmfq.Tracker("p", warehouse=warehouse_dir, capture_git=False, capture_env=False) as t, \
            t.execution("train") as ex:
        ex.log_metric("loss", 0.9, step=1)
        ex.log_metric("acc", 0.1, step=1)
        t.flush()
        with cmfq.Warehouse(warehouse_dir) as wh:
            assert wh.sql("SELECT count(*) AS n FROM metrics")["n"][0] == 2
            ex.log_metric("loss", 0.3, step=1)  # the same key, later
            ex.log_metric("f1", 0.6, step=1)  # a metric new to the run
            t.flush()
            wh.refresh()
            rows = wh.sql("SELECT name, step, value FROM metrics ORDER BY name").rows()
    assert rows == [("acc", 1, 0.1), ("f1", 1, 0.6), ("loss", 1, 0.3)]


def test_two_warehouses_on_one_folder_in_one_process(warehouse_dir: Path) -> None:
    # DuckDB refuses to attach one file twice per process: the second must still answer (and
    # must not mistake the refusal for a damaged index and delete it), and refresh must work.
    make_chain(warehouse_dir, "p", ["a", "b"])
    index = warehouse_dir / "_cache" / "index.duckdb"
    with cmfq.Warehouse(warehouse_dir) as first:
        with cmfq.Warehouse(warehouse_dir) as second:
            assert first.executions().height == second.executions().height == 2
            assert index.exists()
        make_chain(warehouse_dir, "q", ["c"])
        first.refresh()
        assert first.executions().height == 3


# The scores the index keeps merge by merge must equal scoring every run from scratch.
SCORES_FROM_SCRATCH = """
WITH downstream AS (
    SELECT o.execution_id, f.name, max(f.value) AS value, min(f.min_value) AS min_value, max(f.max_value) AS max_value
    FROM events AS o JOIN events AS i ON i.artifact_hash = o.artifact_hash AND i.direction = 'in'
    JOIN final_metrics AS f ON f.execution_id = i.execution_id
    WHERE o.direction = 'out' GROUP BY ALL
)
SELECT coalesce(own.execution_id, d.execution_id) AS execution_id, x.stage, coalesce(own.name, d.name) AS name,
       coalesce(own.value, d.value) AS value, coalesce(own.min_value, d.min_value) AS min_value,
       coalesce(own.max_value, d.max_value) AS max_value
FROM final_metrics AS own FULL JOIN downstream AS d ON d.execution_id = own.execution_id AND d.name = own.name
LEFT JOIN executions AS x ON x.id = coalesce(own.execution_id, d.execution_id)
ORDER BY ALL
"""

runs_with_metrics = st.lists(
    st.tuples(st.sets(st.integers(0, 5), max_size=2), st.sets(st.integers(0, 5), min_size=1, max_size=2),
              st.one_of(st.none(), st.integers(0, 100)), st.booleans()),
    min_size=2, max_size=8)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs=runs_with_metrics)
def test_scores_kept_merge_by_merge_equal_scores_from_scratch(
        runs: list[tuple[set[int], set[int], int | None, bool]]) -> None:
    """Runs read and write artifacts 0-5 and some log a metric; the index is refreshed after
    random runs, so producers, consumers and metrics arrive in different merges."""
    with tempfile.TemporaryDirectory() as tmp, \
            cmfq.Tracker("s", warehouse=Path(tmp), capture_git=False, capture_env=False) as t:
        wh = None
        try:
            for n, (ins, outs, auc, refresh) in enumerate(runs):
                with t.execution(f"stage{n % 3}") as ex:
                    for i in sorted(ins):
                        ex.log_input(hash=f"{i:032x}", name=f"a{i}")
                    for o in sorted(outs):
                        ex.log_output(hash=f"{o:032x}", name=f"a{o}")
                    if auc is not None:
                        ex.log_metrics({"auc": auc / 100})
                if refresh:
                    t.flush()
                    wh = wh or cmfq.Warehouse(Path(tmp))
                    wh.refresh()
            t.flush()
            wh = wh or cmfq.Warehouse(Path(tmp))
            wh.refresh()
            kept = wh.sql("SELECT execution_id, stage, name, value, min_value, max_value FROM idx.scores ORDER BY ALL")
            assert kept.rows() == wh.sql(SCORES_FROM_SCRATCH).rows()
            _assert_produced_and_inputs_in_step(wh)
            # scored_by names the run itself or a consumer that logged the winning value
            for row in wh.sql("SELECT * FROM idx.scores").iter_rows(named=True):
                won = wh.sql("SELECT value FROM final_metrics WHERE execution_id = ? AND name = ?",
                             [row["scored_by"], row["name"]])
                assert won.height == 1 and won.item() == row["value"]
        finally:
            if wh is not None:
                wh.close()


# nodes.produced and scores.inputs, kept merge by merge, against the facts themselves (matched
# on hashes, not on the events.node column the index fills).
PRODUCED_FROM_SCRATCH = """
SELECT n.hash, EXISTS (SELECT 1 FROM events AS e WHERE e.artifact_hash = n.hash AND e.direction = 'out')
FROM nodes AS n ORDER BY ALL
"""
INPUTS_FROM_SCRATCH = """
SELECT s.execution_id, s.name, coalesce(list(DISTINCT n.id ORDER BY n.id) FILTER (WHERE n.id IS NOT NULL), [])
FROM idx.scores AS s
LEFT JOIN events AS e ON e.execution_id = s.execution_id AND e.direction = 'in'
LEFT JOIN nodes AS n ON n.hash = e.artifact_hash
GROUP BY ALL ORDER BY ALL
"""


def _assert_produced_and_inputs_in_step(wh: cmfq.Warehouse) -> None:
    assert wh.sql("SELECT hash, produced FROM idx.nodes ORDER BY ALL").rows() == wh.sql(PRODUCED_FROM_SCRATCH).rows()
    assert (wh.sql("SELECT execution_id, name, inputs FROM idx.scores ORDER BY ALL").rows()
            == wh.sql(INPUTS_FROM_SCRATCH).rows())


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs=runs_with_metrics, chunk_files=st.sampled_from([1, 2, 5_000]))
def test_produced_and_inputs_follow_merges_in_any_order(
        runs: list[tuple[set[int], set[int], int | None, bool]], chunk_files: int) -> None:
    """Every run is its own partitions, merged in digest order (not the order they were
    logged), one or a few per transaction: a producer of artifact 3 may merge after the
    runs that read it, turning a raw dataset into a derived one."""
    from cmfq.warehouse import index

    saved = index.CHUNK_FILES
    index.CHUNK_FILES = chunk_files
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with cmfq.Tracker("s", warehouse=Path(tmp), capture_git=False, capture_env=False) as t:
                wh = None
                try:
                    for n, (ins, outs, auc, refresh) in enumerate(runs):
                        with t.execution(f"stage{n % 3}") as ex:
                            for i in sorted(ins):
                                ex.log_input(hash=f"{i:032x}", name=f"a{i}", kind="dataset")
                            for o in sorted(outs):
                                ex.log_output(hash=f"{o:032x}", name=f"a{o}", kind="dataset")
                            if auc is not None:
                                ex.log_metrics({"auc": auc / 100})
                        t.flush()
                        if refresh:
                            wh = wh or cmfq.Warehouse(Path(tmp))
                            wh.refresh()
                            _assert_produced_and_inputs_in_step(wh)
                    wh = wh or cmfq.Warehouse(Path(tmp))
                    wh.refresh()
                    _assert_produced_and_inputs_in_step(wh)
                    merged = wh.sql("SELECT * FROM best_per_dataset('auc') ORDER BY ALL").rows()
                finally:
                    if wh is not None:
                        wh.close()
            # A rebuild from the partitions in one go gives the same index and the same answer.
            (Path(tmp) / "_cache" / "index.duckdb").unlink()
            with cmfq.Warehouse(Path(tmp)) as fresh:
                assert fresh.report.rebuilt or fresh.report.loaded
                _assert_produced_and_inputs_in_step(fresh)
                assert fresh.sql("SELECT * FROM best_per_dataset('auc') ORDER BY ALL").rows() == merged
    finally:
        index.CHUNK_FILES = saved


def test_runs_noted_but_not_rescored_are_rescored_on_next_open(warehouse_dir: Path) -> None:
    # A process that merged a chunk and died before rescoring leaves its runs in
    # _cmfq_scores_dirty (committed with the chunk): the next open must finish the job.
    import duckdb

    with cmfq.Tracker("p", warehouse=warehouse_dir, capture_git=False, capture_env=False) as t:
        with t.execution("train") as ex:
            ex.log_output(hash="a" * 32, name="model", kind="model")
        with t.execution("evaluate") as ex:
            ex.log_input(hash="a" * 32, name="model")
            ex.log_metrics({"auc": 0.9})
    with cmfq.Warehouse(warehouse_dir) as wh:
        right = wh.sql("SELECT * FROM idx.scores ORDER BY ALL")
    assert right.height == 2  # evaluate by its own auc, train by evaluate's
    assert sorted(right["inputs"].to_list(), key=len) == [[], [1]]  # train read nothing, evaluate the model
    con = duckdb.connect(str(warehouse_dir / "_cache" / "index.duckdb"))
    con.execute("INSERT INTO _cmfq_scores_dirty SELECT execution_id FROM scores")
    con.execute("UPDATE scores SET value = -1, inputs = [-1]")  # what a half-done rescore could leave
    con.close()
    with cmfq.Warehouse(warehouse_dir) as wh:
        assert wh.sql("SELECT * FROM idx.scores ORDER BY ALL").rows() == right.rows()
        assert wh.sql("SELECT count(*) FROM idx._cmfq_scores_dirty").item() == 0


@pytest.mark.parametrize("tried", [True, False])
def test_an_art_index_too_big_for_the_memory_limit_is_left_out_and_created_later(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tried: bool) -> None:
    """``tried``: every ART is attempted and the big one runs out of memory; else the size
    estimate leaves out those that would not fit without trying."""
    import json

    import duckdb

    from cmfq.warehouse import index

    if tried:
        monkeypatch.setattr(index, "ART_SHARE_OF_LIMIT", 1000.0)
    con = duckdb.connect()
    con.execute(f"ATTACH '{tmp_path / 'index.duckdb'}' AS idx")
    index.create_tables(con)
    # 400,000 hashes: their ART needs more than 24 MB while it is created, the table far less.
    con.execute("INSERT INTO idx.nodes SELECT i::INTEGER, md5(i::VARCHAR), 'dataset', NULL, NULL, false "
                "FROM range(400000) AS r(i)")
    con.execute("SET memory_limit = '24MB'")
    small = index.connection_memory_limit(con)
    art = "SELECT index_name FROM duckdb_indexes() WHERE database_name = 'idx' ORDER BY ALL"
    note = "SELECT value FROM idx._cmfq_meta WHERE key = 'art_left_out'"
    with caplog.at_level("WARNING", logger="cmfq"):
        index._create_art_indexes(con)
    created = {r[0] for r in con.execute(art).fetchall()}
    left_out = ["nodes_hash"] if tried else ["nodes_hash", "nodes_id"]  # 400,000 x 48 bytes > half of 24 MB
    assert json.loads(con.execute(note).fetchall()[0][0]) == {"limit": small, "names": left_out}
    assert not created & set(left_out) and "lineage_graph_child" in created  # empty tables: created
    assert "index nodes_hash left out" in caplog.text and "CMFQ_MEMORY_LIMIT" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="cmfq"):
        index._create_art_indexes(con)  # same limit: not tried again, not warned about again
    assert caplog.text == "" and json.loads(con.execute(note).fetchall()[0][0])["names"] == left_out
    assert con.execute("SELECT hash FROM idx.nodes WHERE id = 7").fetchall() == [(_md5("7"),)]
    con.execute("SET memory_limit = '512MB'")
    index._create_art_indexes(con)  # a higher limit: created
    assert {"nodes_hash", "nodes_id"} <= {r[0] for r in con.execute(art).fetchall()}
    assert json.loads(con.execute(note).fetchall()[0][0])["names"] == []


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()
