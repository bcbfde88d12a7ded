"""Spark and DuckDB give the same answers on one warehouse: every view, the one-hop lineage
functions and the lineage walks, order aside. The warehouse holds what deduplication must
get right: a status change, the same partition in two folders, copies of a fact that tie on
`at`, a removed annotation, a cycle of content hashes, a diamond and a deep chain."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

import cmfq
import cmfq.spark
from cmfq.cli.main import app
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.writer import write_rows
from tests.conftest import make_chain

UTC = dt.UTC
AT = dt.datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def h(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _execution(id_: str, status: str, *, params: str = "{}") -> dict[str, Any]:
    return {"id": id_, "pipeline": "ties", "stage": "train", "site": "s", "started_at": AT, "status": status,
            "params": params, "properties": "{}", "at": AT}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spark") / "wh"
    with cmfq.Tracker("p1", warehouse=root, capture_git=False, capture_env=False) as t:
        with t.execution("prepare", params={"split": 0.2, 'a "quoted".key': "x, y"}) as ex:
            ex.log_input(hash=h("raw"), name="raw.csv")
            ex.log_output(hash=h("train"), name="train.csv")
            ex.log_output(hash=h("test"), name="test.csv")
        with t.execution("train", params={"n_est": 100}) as ex:
            ex.log_input(hash=h("train"), name="train.csv")
            ex.log_output(hash=h("model"), name="model.pkl", kind="model")
            for step in range(4):
                ex.log_metric("loss", 1 / (step + 1), step=step)
            ex.log_metrics({"roc_auc": 0.9})
        with t.execution("evaluate") as ex:  # train.csv -> model and test.csv both feed it: a diamond
            ex.log_input(hash=h("model"), name="model.pkl", kind="model")
            ex.log_input(hash=h("test"), name="test.csv")
            ex.log_output(hash=h("report"), name="report.json", kind="metrics")
            ex.log_metrics({"roc_auc": 0.91, "avg_prec": 0.5})
        with pytest.raises(RuntimeError), t.execution("train", params={"n_est": 5}) as ex:
            ex.log_input(hash=h("train"), name="train.csv")
            raise RuntimeError("diverged")
        for a, b in (("c1", "c2"), ("c2", "c1")):  # the same bytes back: a cycle
            with t.execution("roundtrip") as ex:
                ex.log_input(hash=h(a), name=a)
                ex.log_output(hash=h(b), name=b)
        t.annotate("artifact", h("model"), "label", "gold")
        t.annotate("artifact", h("model"), "stage", "staging")
        t.annotate("artifact", h("model"), "stage", None)
    with cmfq.Tracker("p2", warehouse=root, capture_git=False, capture_env=False, site="other") as t:
        with t.execution("featurize") as ex:  # raw.csv is shared by two pipelines
            ex.log_input(hash=h("raw"), name="data/raw.csv")
            ex.log_output(hash=h("p2/features"), name="features.parquet", kind="featureset")
    make_chain(root, "deep", [f"s{i}" for i in range(8)])
    layout = Layout(root)
    # The same partition in a second folder: one fact, twice on disk.
    some = next(n for n in layout.partitions(["events"]))
    copy = layout.root / "events" / "copy" / Path(str(some)).name
    copy.parent.mkdir(parents=True)
    shutil.copy(layout.path(some), copy)
    # Copies that tie on `at` and differ: the content digest decides, in both engines.
    write_rows(layout, "executions", "ties", [_execution("tie-1", "completed"), _execution("tie-1", "failed"),
                                              _execution("tie-2", "failed", params='{"b": 1}')])
    write_rows(layout, "executions", "ties", [_execution("tie-2", "failed", params='{"a": 1}')])
    write_rows(layout, "metrics", "ties", [{"execution_id": "tie-1", "name": "m", "step": None, "value": v, "at": AT}
                                           for v in (0.25, 1e-5, 3.0)])
    write_rows(layout, "artifacts", "ties", [{"hash": h("raw"), "kind": "dataset", "name": n, "properties": "{}",
                                              "site": "s", "at": AT - dt.timedelta(days=999)}
                                             for n in ("raw-old.csv", "raw 'old', v2.csv")])
    return root


@pytest.fixture(scope="module")
def both(root: Path, spark: Any) -> Any:
    names = cmfq.spark.register(spark, root, cache=True)
    assert set(names) == {*cmfq.spark.VIEWS, *cmfq.spark.FUNCTIONS}
    with cmfq.Warehouse(root) as wh:
        yield wh, spark


def _value(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.astimezone(UTC)
    if isinstance(v, float | decimal.Decimal):
        return round(float(v), 9)
    if isinstance(v, list):
        return tuple(_value(x) for x in v)
    return v


def _rows(df: pl.DataFrame) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(_value(v) for v in row) for row in df.rows())


def same(wh: cmfq.Warehouse, spark: Any, query: str) -> int:
    """Assert DuckDB and Spark return the same multiset of rows and columns; the row count."""
    duck = wh.sql(query)
    sparked = pl.from_arrow(spark.sql(query).toArrow())
    assert isinstance(sparked, pl.DataFrame)
    assert sparked.columns == duck.columns, query
    assert _rows(sparked) == _rows(duck), query
    return duck.height


# Node ids are local to each engine's index: compare what they stand for.
LOCAL_IDS = {"nodes": "SELECT hash, kind, name, size FROM nodes",
             "events": "SELECT e.execution_id, e.artifact_hash, e.direction, e.role, e.name, e.at FROM events AS e",
             "lineage_graph": "SELECT a.hash AS parent, b.hash AS child, g.execution_id FROM lineage_graph AS g "
                              "JOIN nodes AS a ON a.id = g.parent JOIN nodes AS b ON b.id = g.child"}


# The views run by default; the rest of the views, the one-hop functions, the deep
# chain and the CLI behind `-m spark_full` (`make test-spark`): each Spark query costs seconds.
CORE = ("executions", "artifacts", "events", "metrics", "lineage_edges")
FULL = pytest.mark.spark_full


@pytest.mark.parametrize("view", [v if v in CORE else pytest.param(v, marks=FULL) for v in cmfq.spark.VIEWS])
def test_every_view_answers_the_same(both: Any, view: str) -> None:
    wh, spark = both
    assert same(wh, spark, LOCAL_IDS.get(view, f"SELECT * FROM {view}")) > 0


def test_deduplication_and_latest_wins(both: Any) -> None:
    wh, spark = both
    got = {r["id"]: r["status"] for r in spark.sql("SELECT id, status FROM executions").collect()}
    assert got["tie-1"] in ("completed", "failed") and list(got).count("tie-1") == 1
    assert spark.sql("SELECT count(*) FROM executions WHERE status = 'running'").first()[0] == 0
    assert spark.sql("SELECT name FROM artifacts WHERE hash = ?", [h("raw")]).first()[0] in (
        "raw-old.csv", "raw 'old', v2.csv")  # the first sighting wins over raw.csv
    assert spark.sql("SELECT count(*) FROM annotations").first()[0] == 1  # the removed key is gone
    # the copied partition adds nothing
    assert spark.sql("SELECT count(*) FROM events").first()[0] == wh.sql("SELECT count(*) AS n FROM events")["n"][0]
    ids = [r[0] for r in spark.sql("SELECT id FROM nodes ORDER BY id").collect()]
    assert ids == list(range(1, len(ids) + 1))


@FULL
@pytest.mark.parametrize("fn", cmfq.spark.FUNCTIONS)
def test_one_hop_functions(both: Any, fn: str) -> None:
    wh, spark = both
    total = sum(same(wh, spark, f"SELECT * FROM {fn}('{h(a)}')") for a in ("train", "c1"))
    assert total > 0


@pytest.mark.parametrize("artifact", ["model", pytest.param("raw", marks=FULL), "c1"])
def test_lineage_walks(both: Any, artifact: str) -> None:
    wh, spark = both
    for direction in ("ancestors", "descendants"):
        duck = wh.sql(f"SELECT hash, depth FROM {direction}(?)", [h(artifact)])
        walked = pl.from_arrow(getattr(cmfq.spark, direction)(spark, h(artifact)).toArrow())
        assert isinstance(walked, pl.DataFrame)
        assert _rows(walked) == _rows(duck), (artifact, direction)


@FULL
def test_deep_chain_and_max_depth(both: Any) -> None:
    _, spark = both
    end = h("deep/s7/7")  # make_chain's last output: 8 hops below deep/raw
    assert cmfq.spark.ancestors(spark, end).agg({"depth": "max"}).first()[0] == 8
    assert cmfq.spark.ancestors(spark, end, max_depth=3).count() == 3
    assert cmfq.spark.descendants(spark, end).count() == 0


@FULL
def test_unknown_artifact(both: Any) -> None:
    _, spark = both
    with pytest.raises(cmfq.errors.NotFoundError, match="cmfq|artifact"):
        cmfq.spark.ancestors(spark, "0" * 32)


@FULL
def test_spark_sql_command(both: Any, root: Path) -> None:
    wh, _ = both
    runner = CliRunner()
    r = runner.invoke(app, ["spark-sql", "SELECT stage, count(*) AS n FROM executions GROUP BY stage",
                            "-w", str(root), "--format", "json"])
    assert r.exit_code == 0, r.stderr
    want = dict(wh.sql("SELECT stage, count(*) AS n FROM executions GROUP BY stage").rows())
    assert {row["stage"]: row["n"] for row in json.loads(r.stdout)} == want
    r = runner.invoke(app, ["spark-sql", "SELECT * FROM executions", "-w", str(root), "--limit", "2"])
    assert r.exit_code == 0 and "more rows" in (r.stdout + r.stderr).lower()
    r = runner.invoke(app, ["spark-sql", "SELECT * FROM no_such_view", "-w", str(root)])
    assert r.exit_code == 1 and "no_such_view" in r.stderr and len(r.stderr.strip().splitlines()) == 1
