"""CMF's example-get-started pipeline, changed only in its import lines, runs on cmfq."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import cmfq
from tests.conftest import run_cli
from tests.interop.conftest import run_example_on_cmfq

UPSTREAM = os.environ.get("CMF_EXAMPLE_DIR")  # a checkout's examples/example-get-started


def test_example_pipeline_runs_on_cmfq_and_its_lineage_is_complete(cmfq_example: Path) -> None:
    check_example(cmfq_example)


@pytest.mark.skipif(not UPSTREAM, reason="set CMF_EXAMPLE_DIR to a checkout's examples/example-get-started")
def test_upstream_example_scripts_run_on_cmfq(tmp_path: Path) -> None:
    root = Path(str(UPSTREAM))
    check_example(run_example_on_cmfq(tmp_path / "example", scripts=root / "src", params=root / "params.yaml"))


def check_example(root: Path) -> None:
    query = (root / "query.out").read_text()
    assert "['Test-env/Prepare', 'Test-env/Featurize', 'Test-env/Train', 'Test-env/Evaluate']" in query
    assert "custom_properties_n_est" in query and "Git_Start_Commit" not in query

    proc = run_cli("lineage", "metrics", "--format", "json", cwd=root)  # the default ./.cmfq
    assert proc.returncode == 0, proc.stderr
    graph = json.loads(proc.stdout)
    names = {n["label"] for n in graph["nodes"] if n["type"] == "artifact"}
    for expected in ["artifacts/data.xml.gz", "artifacts/parsed/train.tsv", "artifacts/parsed/test.tsv",
                     "artifacts/features/train.pkl", "artifacts/features/test.pkl", "artifacts/model/model.pkl",
                     "metrics"]:
        assert expected in names, (expected, names)
    with cmfq.Warehouse(root / ".cmfq") as wh:
        chain = dict(wh.ancestors("metrics").select("name", "depth").iter_rows())
        # metrics <- model, test features <- train features, both splits <- raw data
        assert chain["artifacts/model/model.pkl"] == 1 and chain["artifacts/features/test.pkl"] == 1
        assert chain["artifacts/features/train.pkl"] == 2 and chain["artifacts/parsed/train.tsv"] == 2
        assert chain["artifacts/data.xml.gz"] == 3
        stages = wh.sql("SELECT stage, status, params::VARCHAR AS p FROM executions ORDER BY started_at").rows()
        assert [(s, st) for s, st, _ in stages] == [("Prepare", "completed"), ("Featurize", "completed"),
                                                    ("Train", "completed"), ("Evaluate", "completed")]
        assert json.loads(stages[2][2])["n_est"] == 100
        evaluate = wh.execution(wh.executions(stage="Evaluate")["id"][0])
        # logged after finalize(): still the Evaluate execution's
        assert {m["name"] for m in evaluate["metrics"]} == {"avg_prec", "roc_auc"}
        label = wh.artifacts(kind="label")
        assert label["name"].to_list() == ["artifacts/labels.csv"]
        raw = wh.artifact("artifacts/data.xml.gz")
        assert raw["properties"]["user-metadata1"] == "metadata_value"
