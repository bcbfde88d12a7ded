"""The cmflib-compatible API in process: every logging call, the reader's answers, the differences."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cmfq
from cmfq.compat.cmf import Cmf
from cmfq.compat.cmfquery import CmfQuery
from cmfq.errors import InvalidInputError, WarehouseError


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for rel, text in {"data/raw.csv": "a,b\n1,2\n", "data/labels.csv": "id,label\n1,x\n",
                      "data/imgs/1.png": "p1", "data/imgs/2.png": "p2", "env.txt": "numpy==2\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_every_logging_call_lands_in_the_warehouse(project: Path) -> None:
    with pytest.warns(UserWarning, match="graph=True"):
        writer = Cmf(filepath="mlmd", pipeline_name="compat", custom_properties={"owner": "ana"}, graph=True)
    ctx = writer.create_context(pipeline_stage="Prepare", custom_properties={"site": "lab"})
    assert ctx.name == "compat/Prepare"
    ex = writer.create_execution(execution_type="Prepare-run", custom_properties={"seed": 1, "split": 0.2})
    writer.update_execution(ex.id, {"rows": 2})
    raw = writer.log_dataset("data/raw.csv", "input", custom_properties={"source": "kaggle"},
                             label="data/labels.csv", label_properties={"annotator": "bob"})
    assert raw.name == f"data/raw.csv:{raw.id}" and raw.type == "Dataset"
    writer.log_python_env("env.txt")
    slice_ = writer.create_dataslice("slice-a")
    slice_.add_data("data/imgs/1.png", {"label": 1})
    slice_.add_data("data/imgs/2.png")
    sliced = slice_.commit({"purpose": "bias check"})
    (project / "model.pkl").write_bytes(b"weights")
    writer.log_model(path="model.pkl", event="output", model_framework="SKlearn", model_type="RF",
                     model_name="RF:default")
    for loss in (0.5, 0.25):
        writer.log_metric("training_metrics", {"loss": loss, "note": "text is kept, not a metric"})
    writer.commit_metrics("training_metrics")
    writer.finalize()
    writer.log_execution_metrics("metrics", {"acc": 0.9, "tag": "best"})  # after finalize(), as CMF's test.py
    with pytest.raises(InvalidInputError, match=r"update_dataset_url\(\) is not supported.*recorded when logged"):
        writer.update_dataset_url(raw, "s3://x")
    with pytest.raises(InvalidInputError, match="'input' or 'output'"):
        writer.log_dataset("data/raw.csv", "sideways")
    writer.create_context("Train")
    second = writer.create_execution("Train-run")  # closes the first one as completed
    writer.close()

    with cmfq.Warehouse(project / ".cmfq") as wh:
        first = wh.execution(ex.id)
        assert first["status"] == "completed" and first["stage"] == "Prepare" and first["type"] == "Prepare-run"
        assert first["params"] == {"seed": 1, "split": 0.2, "rows": 2}
        assert {(a["kind"], a["name"]) for a in first["inputs"]} == {("dataset", "data/raw.csv"),
                                                                     ("label", "data/labels.csv"), ("env", "env.txt")}
        assert {a["kind"] for a in first["outputs"]} == {"dataslice", "model", "step_metrics", "metrics"}
        assert {m["name"]: m["value"] for m in first["metrics"]} == {"acc": 0.9, "training_metrics/loss": 0.25}
        assert wh.metric_history(ex.id, "training_metrics/loss")["step"].to_list() == [1, 2]
        assert wh.artifact(sliced.id)["properties"]["members"]["data/imgs/1.png"]["label"] == 1
        notes = set(wh.sql("SELECT entity_kind, entity_id, key, value FROM annotations").rows())
        assert notes == {("pipeline", "compat", "owner", "ana"), ("stage", "compat/Prepare", "site", "lab"),
                         ("artifact", raw.id, "labels_uri", f"data/labels.csv:{wh.resolve_artifact('data/labels.csv')}")}
        assert wh.execution(second.id)["status"] == "completed"

    q = CmfQuery("mlmd")
    assert q.get_pipeline_names() == ["compat"] and q.get_pipeline_id("nope") == -1
    assert q.get_pipeline_stages("compat") == ["compat/Prepare", "compat/Train"]
    steps = q.get_metrics(f"training_metrics:{[a for a in q.get_all_artifacts() if a.startswith('training')][0]}")
    assert steps is not None and steps.index.name == "SequenceNumber" and steps["loss"].to_list() == [0.5, 0.25]
    frame = q.get_all_artifacts_for_execution(ex.id)
    assert set(frame["event"]) == {"INPUT", "OUTPUT"} and "model_framework" in frame.columns
    assert "custom_properties_source" in q.get_artifact("data/raw.csv").columns
    exported = json.loads(q.dumptojson("compat", exec_uuid=ex.id) or "{}")
    stages = exported["Pipeline"][0]["stages"]
    assert [len(s["executions"]) for s in stages] == [1, 0]


def test_what_cmfq_does_not_do(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInputError, match="cmfq has no server"):
        Cmf(is_server=True)
    writer = Cmf(pipeline_name="p")
    with pytest.raises(InvalidInputError, match="does not exist"):
        writer.log_dataset("data/missing.csv", "input")
    art = writer.log_dataset("s3://bucket/remote.csv", "input", external=True)  # known by name only
    with pytest.raises(InvalidInputError, match="No metrics named 'x'"):
        writer.commit_metrics("x")
    with pytest.raises(InvalidInputError, match="not the current execution"):
        writer.update_execution("0000", {})
    writer.close()
    assert art.type == "Dataset"
    monkeypatch.setenv("CMFQ_WAREHOUSE", str(project / "elsewhere"))
    with pytest.raises(WarehouseError, match="No cmfq warehouse"):
        CmfQuery("mlmd")


def test_an_uncaught_exception_closes_the_execution_as_failed(tmp_path: Path) -> None:
    script = ("from cmfq.compat.cmf import Cmf\n"
              "w = Cmf(filepath='mlmd', pipeline_name='boom')\n"
              "w.create_context('Train'); w.create_execution('Train-run', {'lr': 0.1})\n"
              "raise MemoryError('out of memory')\n")
    env = {**os.environ, "CMFQ_SITE": "t"}
    env.pop("CMFQ_WAREHOUSE", None)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "MemoryError" in proc.stderr
    with cmfq.Warehouse(tmp_path / ".cmfq") as wh:
        (row,) = wh.sql("SELECT status, error FROM executions").rows()
    assert row == ("failed", "MemoryError: out of memory")
