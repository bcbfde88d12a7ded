"""OpenLineage: export valid RunEvents, import them (ours or anyone's) back into lineage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cmfq
from cmfq.ingest.export_openlineage import export_openlineage
from cmfq.ingest.facts_sink import ImportSourceError
from cmfq.ingest.import_openlineage import import_openlineage
from cmfq.ingest.stable_ids import identity_hash
from tests.interop.ol_models import check_event


def _log_history(root: Path, work: Path) -> None:
    """Two pipelines with files, params, step and final metrics, a failure and nesting."""
    work.mkdir()
    raw = work / "raw.csv"
    raw.write_text("x,y\n1,2\n3,4\n")
    with cmfq.Tracker("etl", warehouse=root, capture_git=False, capture_env=False) as t:
        with t.execution("prepare", params={"split": 0.2, "cols": ["x", "y"]}) as ex:
            ex.log_input(raw)
            (work / "clean").mkdir()
            (work / "clean" / "part-0.csv").write_text("1,2\n")
            ex.log_output(work / "clean", kind="dataset")
        with t.execution("train", params={"n_est": 50}) as ex:
            ex.log_input(work / "clean")
            for step in range(5):
                ex.log_metric("loss", 1 / (step + 1), step=step)
            (work / "model.pkl").write_bytes(b"model-bytes")
            ex.log_output(work / "model.pkl", kind="model")
            ex.log_metrics({"roc_auc": 0.9})
            with t.execution("calibrate") as child:  # nested: parent_id
                child.log_input(work / "model.pkl", kind="model")
                child.log_output(hash="a" * 32, name="s3://bucket/calibrated.pkl", uri="s3://bucket/calibrated.pkl",
                                 kind="model")
        with pytest.raises(RuntimeError), t.execution("evaluate") as ex:
            ex.log_input(work / "model.pkl", kind="model")
            raise RuntimeError("out of memory")
    with cmfq.Tracker("report", warehouse=root, capture_git=False, capture_env=False) as t:
        with t.execution("publish") as ex:
            ex.log_input(work / "model.pkl", kind="model")


def _facts(root: Path) -> dict[str, Any]:
    with cmfq.Warehouse(root) as wh:
        q = wh.sql
        executions = q("SELECT id, parent_id, pipeline, stage, status, error, params::VARCHAR AS params, "
                       "epoch_us(started_at) AS s, epoch_us(ended_at) AS e FROM executions ORDER BY id").rows()
        return {
            "executions": [(*r[:6], json.loads(r[6]), *r[7:]) for r in executions],
            "edges": sorted(q("SELECT parent_hash, child_hash, execution_id FROM lineage_edges").rows()),
            "events": sorted(q("SELECT execution_id, artifact_hash, direction FROM events").rows()),
            "artifacts": q("SELECT hash, kind, name, uri, size FROM artifacts ORDER BY hash").rows(),
            "metrics": q("SELECT execution_id, name, step, value FROM metrics ORDER BY ALL").rows(),
        }


@pytest.fixture
def history(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    _log_history(root, tmp_path / "work")
    return root


def _export(root: Path, target: Path, pipeline: str | None = None) -> list[dict[str, Any]]:
    with cmfq.Warehouse(root) as wh, open(target, "w") as out:
        export_openlineage(wh, out, pipeline=pipeline)
    return [json.loads(line) for line in target.read_text().splitlines()]


def test_exported_events_are_valid_and_carry_params_and_metrics(history: Path, tmp_path: Path) -> None:
    events = _export(history, tmp_path / "events.jsonl")
    for event in events:
        check_event(event)
    kinds = [(e["job"]["name"], e["eventType"]) for e in events]
    # each run's events together, runs in the order they started
    assert kinds == [("prepare", "START"), ("prepare", "COMPLETE"), ("train", "START"), ("train", "COMPLETE"),
                     ("calibrate", "START"), ("calibrate", "COMPLETE"), ("evaluate", "START"), ("evaluate", "FAIL"),
                     ("publish", "START"), ("publish", "COMPLETE")]
    train_end = events[3]
    assert train_end["run"]["facets"]["cmfq_params"]["params"] == {"n_est": 50}
    points = train_end["run"]["facets"]["cmfq_metrics"]["metrics"]
    assert [(p["name"], p["step"]) for p in points] == [("loss", 0), ("loss", 1), ("loss", 2), ("loss", 3),
                                                         ("loss", 4), ("roc_auc", None)]
    assert events[7]["run"]["facets"]["errorMessage"]["message"] == "RuntimeError: out of memory"
    calibrate = events[5]
    assert calibrate["run"]["facets"]["parent"]["run"]["runId"] == train_end["run"]["runId"]
    assert calibrate["outputs"][0]["namespace"] == "s3://bucket" and calibrate["outputs"][0]["name"] == "calibrated.pkl"
    assert {d["namespace"] for d in events[1]["inputs"]} == {"file"}
    only = _export(history, tmp_path / "report.jsonl", pipeline="report")
    assert {e["job"]["namespace"] for e in only} == {"report"}


def test_round_trip_preserves_lineage_params_and_metrics(history: Path, tmp_path: Path) -> None:
    _export(history, tmp_path / "events.jsonl")
    report = import_openlineage(tmp_path / "events.jsonl", tmp_path / "back")
    assert report.executions == 5 and not report.not_mapped
    assert _facts(tmp_path / "back") == _facts(history)
    again = import_openlineage(tmp_path / "events.jsonl", tmp_path / "back")
    assert again.partitions_new == 0 and again.partitions_existing > 0


def test_round_trip_through_a_consumer_that_drops_custom_facets(history: Path, tmp_path: Path) -> None:
    events = _export(history, tmp_path / "events.jsonl")
    folder = tmp_path / "plain"
    folder.mkdir()
    for i, event in enumerate(events):  # one JSON file per event, as some consumers store them
        event["run"]["facets"] = {k: v for k, v in event["run"]["facets"].items() if not k.startswith("cmfq_")}
        for ds in event["inputs"] + event["outputs"]:
            ds["facets"].pop("cmfq_artifact")
        (folder / f"{i:03d}.json").write_text(json.dumps(event, indent=1))
    import_openlineage(folder, tmp_path / "back")
    back, original = _facts(tmp_path / "back"), _facts(history)
    assert back["edges"] == original["edges"] and back["events"] == original["events"]
    assert [r[:6] for r in back["executions"]] == [r[:5] + (r[5],) for r in original["executions"]]


AIRFLOW = [
    {"eventType": "START", "eventTime": "2026-05-01T10:00:00.123456789Z", "producer": "https://airflow.invalid",
     "run": {"runId": "0190a3b4-0000-7000-8000-000000000001", "facets": {"parent": {
         "_producer": "p", "_schemaURL": "s", "run": {"runId": "0190a3b4-0000-7000-8000-0000000000aa"},
         "job": {"namespace": "airflow", "name": "daily_sales"}}}},
     "job": {"namespace": "airflow", "name": "daily_sales.extract", "facets": {}},
     "inputs": [{"namespace": "postgres://db:5432", "name": "shop.public.orders", "facets": {}}], "outputs": []},
    {"eventType": "COMPLETE", "eventTime": "2026-05-01T10:05:00Z", "producer": "https://airflow.invalid",
     "run": {"runId": "0190a3b4-0000-7000-8000-000000000001", "facets": {}},
     "job": {"namespace": "airflow", "name": "daily_sales.extract", "facets": {}},
     "inputs": [{"namespace": "postgres://db:5432", "name": "shop.public.orders", "facets": {}}],
     "outputs": [{"namespace": "s3://lake", "name": "sales/2026-05-01.parquet",
                  "facets": {"version": {"_producer": "p", "_schemaURL": "s", "datasetVersion": "v42"},
                             "schema": {"_producer": "p", "_schemaURL": "s", "fields": [{"name": "amount"}]}}}]},
    {"eventTime": "2026-05-01T10:06:00Z", "producer": "x", "schemaURL": "y",
     "dataset": {"namespace": "s3://lake", "name": "sales"}},
]


def test_foreign_events_map_jobs_to_stages_and_keep_facets(tmp_path: Path) -> None:
    src = tmp_path / "airflow.jsonl"
    src.write_text("\n".join(json.dumps(e) for e in AIRFLOW) + "\n\n")
    report = import_openlineage(src, tmp_path / "wh")
    assert report.not_mapped == {"dataset or job events without a run": 1}
    with cmfq.Warehouse(tmp_path / "wh") as wh:
        (ex,) = wh.sql("SELECT id, pipeline, stage, status, epoch_us(ended_at) - epoch_us(started_at) AS d, "
                       "parent_id FROM executions").to_dicts()
        assert ex == {"id": "0190a3b4-0000-7000-8000-000000000001", "pipeline": "daily_sales", "stage": "extract",
                      "status": "completed", "d": 299_876_544, "parent_id": "0190a3b4-0000-7000-8000-0000000000aa"}
        out = wh.artifact(identity_hash("openlineage", "s3://lake/sales/2026-05-01.parquet@v42"))
        assert out["uri"] == "s3://lake/sales/2026-05-01.parquet"
        assert out["properties"]["openlineage"]["facets"]["schema"]["fields"] == [{"name": "amount"}]
        assert wh.ancestors(out["hash"])["name"].to_list() == ["shop.public.orders"]
    moved = import_openlineage(src, tmp_path / "wh2", pipeline="sales")
    assert moved.pipelines == {"sales"}


@pytest.mark.parametrize("bad, record, problem", [
    ('{"eventType": "START", "eventTime": "2026-05-01T10:00:00Z", "run": {"runId": "0190', "line 2",
     "not a JSON object"),
    ('{"eventType": "START", "eventTime": "yesterday", "run": {"runId": "r"}, "job": {"namespace": "n", "name": "j"}}',
     "line 2", "not an ISO 8601"),
    ('{"eventType": "START", "eventTime": "2026-05-01T10:00:00Z", "job": {"namespace": "n", "name": "j"}, "run": {}}',
     "line 2", "no run.runId"),
    ('[1, 2]', "line 2", "not an OpenLineage event object"),
])
def test_malformed_events_name_the_line_and_import_nothing(tmp_path: Path, bad: str, record: str,
                                                            problem: str) -> None:
    src = tmp_path / "events.jsonl"
    src.write_text(json.dumps(AIRFLOW[0]) + "\n" + bad + "\n" + json.dumps(AIRFLOW[1]) + "\n")
    with pytest.raises(ImportSourceError) as info:
        import_openlineage(src, tmp_path / "wh")
    assert info.value.record == record and problem in str(info.value) and str(src) in str(info.value)
    assert not (tmp_path / "wh").exists()  # nothing written, not even an empty warehouse


# Blank names are refused by the tracker (a one-line error), so they are not drawn here.
_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1,
                 max_size=12).filter(str.strip)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_logged_history_survives_the_round_trip(tmp_path_factory: pytest.TempPathFactory,
                                                    data: st.DataObject) -> None:
    root = tmp_path_factory.mktemp("prop")
    pipelines = data.draw(st.lists(_names, min_size=1, max_size=2, unique=True))
    hashes = [f"{i:032x}" for i in range(6)]
    for pipeline in pipelines:
        with cmfq.Tracker(pipeline, warehouse=root / "src", capture_git=False, capture_env=False) as t:
            for _ in range(data.draw(st.integers(1, 3))):
                params = data.draw(st.dictionaries(_names, st.integers(-5, 5) | _names | st.booleans(), max_size=3))
                with t.execution(data.draw(_names), params=params) as ex:
                    for h in data.draw(st.lists(st.sampled_from(hashes), max_size=2, unique=True)):
                        ex.log_input(hash=h, name=data.draw(_names))
                    for h in data.draw(st.lists(st.sampled_from(hashes), max_size=2, unique=True)):
                        ex.log_output(hash=h, name=data.draw(_names), kind=data.draw(st.sampled_from(["model", "dataset"])))
                    for step, value in enumerate(data.draw(st.lists(st.floats(-1e6, 1e6), max_size=3))):
                        ex.log_metric(data.draw(_names), value, step=step)
    _export(root / "src", root / "events.jsonl")
    import_openlineage(root / "events.jsonl", root / "back")
    back, original = _facts(root / "back"), _facts(root / "src")
    assert back["executions"] == original["executions"] and back["edges"] == original["edges"]
    assert back["events"] == original["events"] and back["metrics"] == original["metrics"]
