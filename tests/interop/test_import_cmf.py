"""Importing what the real cmflib wrote (MLMD store, JSON export), and exporting back to cmflib."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

import cmfq
from cmfq.ingest import import_mlmd as mlmd_module
from cmfq.ingest.export_cmf_json import export_cmf_json
from cmfq.ingest.facts_sink import ImportSourceError
from cmfq.ingest.hashing import file_md5
from cmfq.ingest.import_cmf_json import import_cmf_json
from cmfq.ingest.import_mlmd import import_mlmd
from cmfq.warehouse.layout import Layout
from tests.interop.example_project import git_dvc_init
from tests.interop.peers import check, run_peer

pytestmark = pytest.mark.timeout(1800)  # the first run installs cmflib in its own virtualenv

FILES = ["artifacts/data.xml.gz", "artifacts/parsed/train.tsv", "artifacts/parsed/test.tsv",
         "artifacts/features/train.pkl", "artifacts/features/test.pkl", "artifacts/model/model.pkl"]


def _summary(root: Path) -> dict[str, object]:
    with cmfq.Warehouse(root) as wh:
        return {
            "executions": wh.sql("SELECT id, pipeline, stage, status, params::VARCHAR AS p, git_commit, env_hash "
                                 "FROM executions ORDER BY started_at").rows(),
            "edges": sorted(wh.sql("SELECT parent_hash, child_hash, execution_id FROM lineage_edges").rows()),
            "artifacts": wh.sql("SELECT hash, kind, name FROM artifacts ORDER BY hash").rows(),
            "metrics": wh.sql("SELECT execution_id, name, step, value FROM metrics ORDER BY ALL").rows(),
        }


def test_a_store_cmflib_wrote_imports_with_lineage_params_and_metrics(cmflib_project: Path, tmp_path: Path) -> None:
    wh_path = tmp_path / "wh"
    report = import_mlmd(cmflib_project / "mlmd", wh_path)
    assert report.executions == 4 and report.pipelines == {"Test-env"} and not report.not_mapped
    store = sqlite3.connect(cmflib_project / "mlmd")
    uuids = [r[0] for r in store.execute("SELECT string_value FROM ExecutionProperty "
                                           "WHERE name = 'Execution_uuid' ORDER BY execution_id")]
    with cmfq.Warehouse(wh_path) as wh:
        rows = wh.sql("SELECT id, stage, params::VARCHAR AS p, env_hash, git_commit FROM executions "
                      "ORDER BY started_at").to_dicts()
        assert [r["id"] for r in rows] == uuids  # CMF's Execution_uuid is the execution id
        assert [r["stage"] for r in rows] == ["Prepare", "Featurize", "Train", "Evaluate"]
        assert json.loads(rows[2]["p"]) == {"min_split": 64, "n_est": 100, "seed": 20170428}
        assert all(r["env_hash"] and r["git_commit"] for r in rows)
        # artifacts are identified by the same md5 DVC gave the files
        for rel in FILES:
            assert wh.resolve_artifact(rel) == file_md5(cmflib_project / rel), rel
        chain = dict(wh.ancestors("metrics").select("name", "depth").iter_rows())
        assert chain["artifacts/model/model.pkl"] == 1 and chain["artifacts/data.xml.gz"] == 3
        assert chain["artifacts/labels.csv"] == 3  # an input of Prepare, like the raw data
        evaluate = wh.execution(uuids[3])
        assert {m["name"] for m in evaluate["metrics"]} == {"avg_prec", "roc_auc"}
        steps = wh.metric_history(uuids[2], "training_metrics/train_loss")  # read from cmflib's Parquet file
        assert steps["step"].to_list() == [1, 2, 3] and steps["value"].to_list() == [1.0, 0.5, 1 / 3]
        raw = wh.artifact("artifacts/data.xml.gz")
        assert raw["properties"]["user-metadata1"] == "metadata_value"
        assert raw["properties"]["cmf"]["name"].startswith("artifacts/data.xml.gz:")
        notes = wh.sql("SELECT entity_kind, entity_id, key, value FROM annotations").rows()
        assert notes == [("stage", "Test-env/Prepare", "user-metadata1", "metadata_value")]

    files = sorted(str(p) for p in Layout(wh_path).partitions())
    again = import_mlmd(cmflib_project / "mlmd", wh_path)
    assert again.partitions_new == 0 and sorted(str(p) for p in Layout(wh_path).partitions()) == files


def test_the_json_export_of_the_store_imports_to_the_same_facts(cmflib_project: Path, tmp_path: Path) -> None:
    import_mlmd(cmflib_project / "mlmd", tmp_path / "from-store")
    report = import_cmf_json(cmflib_project / "Test-env.json", tmp_path / "from-json")
    assert report.executions == 4
    store, exported = _summary(tmp_path / "from-store"), _summary(tmp_path / "from-json")
    assert store == exported
    assert import_cmf_json(cmflib_project / "Test-env.json", tmp_path / "from-json").partitions_new == 0


def test_the_compat_reader_answers_as_cmflib_does(cmflib_project: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from cmfq.compat.cmfquery import CmfQuery

    import_mlmd(cmflib_project / "mlmd", tmp_path / "wh")
    monkeypatch.setenv("CMFQ_WAREHOUSE", str(tmp_path / "wh"))
    script = """
import json
from cmflib.cmfquery import CmfQuery
q = CmfQuery("mlmd")
model = [a for a in q.get_all_artifacts() if a.startswith("artifacts/model/model.pkl")][0]
split = [a for a in q.get_all_artifacts() if a.startswith("artifacts/parsed/train.tsv")][0]
print(json.dumps({
    "stages": q.get_pipeline_stages("Test-env"),
    "columns": sorted(q.get_all_executions_in_stage("Test-env/Train").columns),
    "uuids": q.get_all_executions_in_pipeline("Test-env")["Execution_uuid"].tolist(),
    "artifact_columns": sorted(q.get_all_artifacts_for_execution(3).columns),
    "parents": sorted(q.get_all_parent_artifacts(model)["name"]),
    "children": sorted(q.get_all_child_artifacts(split)["name"]),
    "model": model, "producer": q.find_producer_execution(model).properties["Execution_uuid"].string_value,
}))
"""
    theirs = json.loads(check(run_peer("cmflib", ["-c", script], cwd=cmflib_project)).strip().splitlines()[-1])
    q = CmfQuery(str(cmflib_project / "mlmd"))
    assert q.get_pipeline_names() == ["Test-env"]
    assert q.get_pipeline_stages("Test-env") == theirs["stages"]
    assert sorted(q.get_all_executions_in_stage("Test-env/Train").columns) == theirs["columns"]
    assert q.get_all_executions_in_pipeline("Test-env")["Execution_uuid"].tolist() == theirs["uuids"]
    train = q.get_all_executions_in_stage("Test-env/Train")["id"][0]
    assert sorted(q.get_all_artifacts_for_execution(train).columns) == theirs["artifact_columns"]
    env = [n for n in theirs["parents"] if n.startswith("cmf_artifacts/python_env")]
    # cmfq keeps the environment as the execution's env_hash, not as a lineage parent
    assert sorted(q.get_all_parent_artifacts(theirs["model"])["name"]) == sorted(set(theirs["parents"]) - set(env))
    child_of = [n for n in q.get_all_artifacts() if n.startswith("artifacts/parsed/train.tsv")][0]
    assert sorted(q.get_all_child_artifacts(child_of)["name"]) == theirs["children"]
    producer = q.find_producer_execution(theirs["model"])
    assert producer is not None and producer.properties["Execution_uuid"].string_value == theirs["producer"]
    assert q.get_all_parent_artifacts("no/such/file").empty and q.find_producer_execution("nope") is None


def test_cmflib_reads_back_what_cmfq_exports(cmfq_example: Path, tmp_path: Path) -> None:
    # a pipeline logged with cmfq's compatibility API (not by cmflib), exported as CMF JSON ...
    with cmfq.Warehouse(cmfq_example / ".cmfq") as wh, open(tmp_path / "Test-env.json", "w") as out:
        assert export_cmf_json(wh, out, pipeline="Test-env") == 1
    # ... is merged into an MLMD store by cmflib's own merger, lineage intact
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    git_dvc_init(theirs)
    script = f"""
import json
from cmflib.cmf_merger import parse_json_to_mlmd
from cmflib.cmfquery import CmfQuery
data = json.load(open({str(tmp_path / 'Test-env.json')!r}))
assert parse_json_to_mlmd(json.dumps(data["Pipeline"][0]), "mlmd", "pull", None) == "success"
q = CmfQuery("mlmd")
raw = [a for a in q.get_all_artifacts() if a.startswith("artifacts/data.xml.gz")][0]
print(json.dumps({{"stages": q.get_pipeline_stages("Test-env"),
                  "descendants": sorted(set(q.get_all_child_artifacts(raw)["type"]))}}))
"""
    out = json.loads(check(run_peer("cmflib", ["-c", script], cwd=theirs)).strip().splitlines()[-1])
    assert out["stages"] == ["Test-env/Prepare", "Test-env/Featurize", "Test-env/Train", "Test-env/Evaluate"]
    assert out["descendants"] == ["Dataset", "Metrics", "Model", "Step_Metrics"]


def test_stores_that_are_not_mlmd_fail_clearly(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE runs (id INTEGER)").connection.commit()
    text = tmp_path / "notes.txt"
    text.write_text("hello " * 100)
    for source, message in [(other, "not an ML Metadata store: it has no Type, Artifact"),
                            (text, "is not a SQLite database"), (tmp_path / "missing", "no such file")]:
        with pytest.raises(ImportSourceError, match=message) as info:
            import_mlmd(source, tmp_path / "wh")
        assert str(source) in str(info.value)
    assert not (tmp_path / "wh").exists()


def test_a_damaged_record_is_named_and_nothing_of_it_is_written(cmflib_project: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    damaged = tmp_path / "mlmd"
    shutil.copy(cmflib_project / "mlmd", damaged)
    con = sqlite3.connect(damaged)
    con.execute("INSERT INTO Event (artifact_id, execution_id, type, milliseconds_since_epoch) VALUES (999, 3, 3, 0)")
    con.commit()
    monkeypatch.setattr(mlmd_module, "CHUNK", 1)  # one execution per batch: the two before it are complete
    with pytest.raises(ImportSourceError) as info:
        import_mlmd(damaged, tmp_path / "wh")
    assert info.value.record == "execution 3" and "points at artifact 999" in str(info.value)
    uuid3 = con.execute("SELECT string_value FROM ExecutionProperty WHERE execution_id = 3 "
                        "AND name = 'Execution_uuid'").fetchone()[0]
    with cmfq.Warehouse(tmp_path / "wh") as wh:
        assert wh.executions()["stage"].to_list() == ["Featurize", "Prepare"]
        assert wh.sql("SELECT count(*) AS n FROM events WHERE execution_id = ?", [uuid3])["n"][0] == 0


def test_malformed_cmf_json_is_named_and_imports_nothing(cmflib_project: Path, tmp_path: Path) -> None:
    text = (cmflib_project / "Test-env.json").read_text()
    truncated = tmp_path / "truncated.json"
    truncated.write_text(text[: len(text) // 2])
    with pytest.raises(ImportSourceError, match=r"is not valid JSON: .* at line 1, column"):
        import_cmf_json(truncated, tmp_path / "wh")
    data = json.loads(text)
    data["Pipeline"][0]["stages"][2]["executions"][0]["events"][1]["type"] = 99
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ImportSourceError) as info:
        import_cmf_json(bad, tmp_path / "wh")
    assert info.value.record == "Pipeline[0] 'Test-env' › stages[2] 'Test-env/Train' › executions[0]"
    assert "event 1 has event type 99" in str(info.value)
    assert not (tmp_path / "wh").exists()
