"""Schema evolution: every released format stays readable; a newer one is refused, clearly.

``tests/fixtures/warehouse-v<N>/`` holds a small warehouse written by the cmfq that introduced
format version N (made by ``python -m tests.fixtures.make_warehouse``, then never rewritten).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import cmfq
from cmfq.cli.main import app
from cmfq.errors import FormatVersionError
from cmfq.warehouse import partition
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.partition import PartitionName
from cmfq.warehouse.remote import open_remote
from cmfq.warehouse.schema import FORMAT_VERSION
from cmfq.warehouse.sync import pull, verify

FIXTURES = Path(__file__).parents[1] / "fixtures"
RELEASED = sorted(FIXTURES.glob("warehouse-v*"), key=lambda p: int(p.name.rsplit("v", 1)[1]))
NEWER = FORMAT_VERSION + 1


def test_a_fixture_exists_for_every_format_up_to_the_current_one() -> None:
    assert [int(p.name.rsplit("v", 1)[1]) for p in RELEASED] == list(range(1, FORMAT_VERSION + 1))


@pytest.mark.parametrize("fixture", RELEASED, ids=lambda p: p.name)
def test_released_format_reads_with_the_same_answers(tmp_path: Path, fixture: Path) -> None:
    wh_dir = tmp_path / "wh"
    shutil.copytree(fixture, wh_dir)  # opening writes an index under _cache/
    assert verify(Layout(wh_dir)).bad == []
    with cmfq.Warehouse(wh_dir) as wh:
        assert wh.problems == []
        runs = wh.sql("SELECT stage, status, params::VARCHAR AS p FROM executions ORDER BY started_at").rows()
        assert [(stage, status, json.loads(p)) for stage, status, p in runs] == [
            ("prepare", "completed", {"note": "quotes ' and \" kept", "split": 0.5}),
            ("train", "completed", {"n_est": 10})]
        train = wh.sql("SELECT id FROM executions WHERE stage = 'train'").item()
        assert wh.metric_history(train, "loss")["value"].to_list() == [1.0, 0.5, 1.0 / 3]
        assert wh.sql("SELECT value FROM final_metrics WHERE name = 'roc_auc'").item() == 0.875
        ancestors = wh.ancestors("models/model.bin")
        assert set(ancestors["name"].drop_nulls()) >= {"prepared.csv", "data/raw.csv"}
        assert wh.sql("SELECT value FROM annotations WHERE key = 'label'").item() == "gold"
        assert wh.sql("SELECT environment, status FROM deployments").rows() == [("production", "active")]
        assert wh.sql("SELECT value FROM serving_metrics").item() == 0.93
        assert wh.sql("SELECT count(*) FROM dataset_stats").item() == 2  # columns x and y
    sink = Layout(tmp_path / "sink")
    sink.init("x")
    assert pull(sink, open_remote(str(fixture))).failed == []  # a remote of that format too


def _newer_partition(root: Path) -> str:
    """A partition as a future cmfq might write it: well-formed, but of format version NEWER."""
    name = sorted(Layout(root).partitions(["executions"]))[0]
    rows = partition.decode(name, Layout(root).path(name).read_bytes()).rows
    buf = io.BytesIO()
    pq.write_table(rows.replace_schema_metadata({partition.META_VERSION: str(NEWER).encode(),
                                                 partition.META_TABLE: b"executions"}), buf)
    data = buf.getvalue()
    newer = PartitionName("executions", "future", hashlib.sha256(data).hexdigest())
    Layout(root).path(newer).parent.mkdir(parents=True)
    Layout(root).path(newer).write_bytes(data)
    return str(newer)


def test_newer_partition_is_refused_on_read_with_what_to_do(tmp_path: Path) -> None:
    wh_dir = tmp_path / "wh"
    shutil.copytree(RELEASED[-1], wh_dir)
    newer = _newer_partition(wh_dir)
    with pytest.raises(FormatVersionError, match=f"{newer} has format version {NEWER}, but this cmfq reads "
                       f"versions up to {FORMAT_VERSION}"):
        cmfq.Warehouse(wh_dir)
    result = CliRunner().invoke(app, ["-w", str(wh_dir), "executions"])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Upgrade cmfq" in result.stderr
    assert (wh_dir / newer).is_file()  # not damaged, so never quarantined


def test_newer_partition_is_refused_on_pull_and_the_rest_arrives(tmp_path: Path) -> None:
    remote_dir = tmp_path / "remote"
    shutil.copytree(RELEASED[-1], remote_dir)
    newer = _newer_partition(remote_dir)
    sink = Layout(tmp_path / "sink")
    sink.init("x")
    report = pull(sink, open_remote(str(remote_dir)))
    assert [str(e) for e in report.failed] == [
        f"{remote_dir}/{newer} has format version {NEWER}, but this cmfq reads versions up to "
        f"{FORMAT_VERSION}. Upgrade cmfq (pip install -U cmfq) to read it."]
    assert report.files == len(list(Layout(RELEASED[-1]).partitions()))
    assert not sink.quarantine_dir.exists()
    with cmfq.Warehouse(sink.root) as wh:
        assert wh.executions().height == 2


@pytest.mark.parametrize("where", ["warehouse", "remote"])
def test_newer_warehouse_or_remote_is_refused(tmp_path: Path, where: str) -> None:
    root = tmp_path / where
    shutil.copytree(RELEASED[-1], root)
    marker = json.loads((root / "cmfq.json").read_text())
    (root / "cmfq.json").write_text(json.dumps({**marker, "format_version": NEWER}))
    runner = CliRunner()
    if where == "warehouse":
        result = runner.invoke(app, ["-w", str(root), "executions"])
    else:
        here = tmp_path / "here"
        runner.invoke(app, ["-w", str(here), "init"])
        runner.invoke(app, ["-w", str(here), "remote", "add", "origin", str(root)])
        result = runner.invoke(app, ["-w", str(here), "pull"])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert f"has format version {NEWER}, but this cmfq reads versions up to {FORMAT_VERSION}" in result.stderr
