"""Importing MLflow stores written by real mlflow calls: the same params, metrics and steps."""

from __future__ import annotations

import json
import math
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

import cmfq
from cmfq.ingest.facts_sink import ImportSourceError
from cmfq.ingest.import_mlflow import import_mlflow
from cmfq.ingest.stable_ids import identity_hash
from cmfq.warehouse.layout import Layout

pytestmark = pytest.mark.timeout(1800)  # the first run installs mlflow in its own virtualenv


def _unique(points: list[list[Any]]) -> list[list[Any]]:
    return [p for i, p in enumerate(points) if p not in points[:i]]


def _ours(root: Path) -> dict[str, dict[str, Any]]:
    with cmfq.Warehouse(root) as wh:
        runs = wh.sql("SELECT id, pipeline, stage, status, parent_id, params::VARCHAR AS params, "
                      "properties::VARCHAR AS properties, epoch_ms(started_at) AS start, epoch_ms(ended_at) AS end "
                      "FROM executions").to_dicts()
        points = wh.sql("SELECT execution_id, name, step, value, epoch_ms(\"at\") AS ts FROM metrics "
                        "ORDER BY execution_id, name, step").rows()
        notes = wh.sql("SELECT entity_id, key, value FROM annotations").rows()
    out = {}
    for run in runs:
        props = json.loads(run["properties"])["mlflow"]
        out[props["run_id"]] = {**run, "params": json.loads(run["params"]), "tags": props["tags"],
                                "metrics": {}, "notes": {k: v for e, k, v in notes if e == run["id"]}}
    by_id = {r["id"]: r for r in out.values()}
    for ex_id, name, step, value, ts in points:
        by_id[ex_id]["metrics"].setdefault(name, []).append([step, "nan" if math.isnan(value) else value, ts])
    return out


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_params_metrics_steps_and_tags_come_back_as_mlflow_reads_them(mlflow_stores: dict[str, Any],
                                                                       tmp_path: Path, kind: str) -> None:
    store = mlflow_stores[kind]
    report = import_mlflow(store["uri"], tmp_path / "wh")
    mlflow_read: dict[str, Any] = store["read"]
    ours = _ours(tmp_path / "wh")
    assert set(ours) == set(mlflow_read) and report.executions == 4
    for run_id, theirs in mlflow_read.items():
        mine = ours[run_id]
        assert mine["id"] == str(uuid.UUID(run_id))
        assert mine["pipeline"] == theirs["experiment"]
        assert mine["params"] == theirs["params"]  # as MLflow keeps them: text
        assert mine["tags"] == theirs["tags"]
        # every step, value and timestamp (mlflow's file store repeats some points verbatim: one is kept)
        assert mine["metrics"] == {k: _unique(v) for k, v in theirs["metrics"].items()}
        assert (mine["start"], mine["end"]) == (theirs["start"], theirs["end"])
        assert mine["status"] == {"FINISHED": "completed", "FAILED": "failed"}[theirs["status"]]
        assert mine["notes"] == {k: v for k, v in theirs["tags"].items() if not k.startswith("mlflow.")}
    by_name = {r["name"]: (run_id, r) for run_id, r in mlflow_read.items()}
    parent_id, _ = by_name["pipeline"]
    for child in ("prepare", "train"):  # nested runs are stages of the parent's pipeline
        assert ours[by_name[child][0]]["stage"] == child
        assert ours[by_name[child][0]]["parent_id"] == str(uuid.UUID(parent_id))
    assert ours[parent_id]["stage"] == "mlflow_driver"  # a top-level run: the script it came from

    train_id, train = by_name["train"]
    with cmfq.Warehouse(tmp_path / "wh") as wh:
        info = wh.execution(str(uuid.UUID(train_id)))
        (dataset,) = info["inputs"]
        assert dataset["hash"] == train["datasets"][0][1] and dataset["role"] == "training"  # digest as the hash
        (model,) = info["outputs"]
        assert model["kind"] == "model" and model["hash"] == identity_hash("mlflow", f"model/{train['models'][0]}")
        assert wh.artifact(model["hash"])["properties"]["mlflow"]["params"] == train["params"]
        prepare = wh.execution(str(uuid.UUID(by_name["prepare"][0])))
        assert [a["hash"] for a in prepare["inputs"]] == [dataset["hash"]]  # same data, same artifact
        assert wh.ancestors(model["hash"])["hash"].to_list() == [dataset["hash"]]

    files = sorted(str(p) for p in Layout(tmp_path / "wh").partitions())
    again = import_mlflow(store["uri"], tmp_path / "wh")
    assert again.partitions_new == 0 and sorted(str(p) for p in Layout(tmp_path / "wh").partitions()) == files


def test_one_experiment_only(mlflow_stores: dict[str, Any], tmp_path: Path) -> None:
    report = import_mlflow(mlflow_stores["sqlite"]["uri"], tmp_path / "wh", experiment="second")
    assert report.pipelines == {"second"} and report.executions == 1
    with pytest.raises(ImportSourceError, match=r"no experiment named 'nope'.*'churn'"):
        import_mlflow(mlflow_stores["sqlite"]["uri"], tmp_path / "wh", experiment="nope")


def test_wrong_uris_fail_with_a_clear_message(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE things (id INTEGER)").connection.commit()
    (tmp_path / "empty").mkdir()
    cases = [(f"sqlite:///{tmp_path}/missing.db", "no such file"),
             (f"sqlite:///{other}", "not an MLflow tracking database: it has no experiments, runs"),
             ("postgresql://user@db/mlflow", "cmfq reads MLflow stores directly"),
             ("http://127.0.0.1:5000", "tracking URI"),
             (str(tmp_path / "empty"), "not an MLflow file store"),
             (str(tmp_path / "nowhere"), "no such file or folder")]
    for uri, message in cases:
        with pytest.raises(ImportSourceError, match=message) as info:
            import_mlflow(uri, tmp_path / "wh")
        assert uri in str(info.value)
    assert not (tmp_path / "wh").exists()


def test_a_malformed_run_is_named_and_nothing_of_it_is_written(mlflow_stores: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    store = tmp_path / "mlruns"
    shutil.copytree(Path(mlflow_stores["file"]["uri"].removeprefix("file://")), store)
    bad_run = next(p for p in store.glob("*/*/metrics/loss") if len(p.read_text().splitlines()) > 5).parents[1]
    with open(bad_run / "metrics" / "loss", "a") as f:
        f.write("1795430000000 0.5\u0000garbage 7\n")
    with pytest.raises(ImportSourceError) as info:
        import_mlflow(str(store), tmp_path / "wh")
    assert info.value.record == f"run {bad_run.name}" and "of metric 'loss'" in str(info.value)
    assert not (tmp_path / "wh").exists()
