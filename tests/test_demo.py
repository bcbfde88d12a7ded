"""The demo warehouse holds what a reader of the README expects, and the same every run."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import pytest

import cmfq
from cmfq.data_samples.pipeline import DemoSummary, build_demo
from cmfq.errors import InvalidInputError

PIPELINES = {"tumor-classifier", "tumor-classifier-linear", "wine-classifier"}
STAGES = {"prepare", "featurize", "train", "evaluate"}


@dataclass
class Demo:
    summary: DemoSummary
    wh: cmfq.Warehouse
    lines: list[str]
    caught: list[warnings.WarningMessage]


def _package_md5(name: str) -> str:
    return hashlib.md5(files("cmfq.data_samples").joinpath(name).read_bytes()).hexdigest()


def _build(workdir: Path, cwd: Path) -> tuple[DemoSummary, list[str], list[warnings.WarningMessage]]:
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mp.setenv("CMFQ_SITE", "test-site")
        mp.chdir(cwd)
        summary = build_demo(workdir, echo=lines.append)
    return summary, lines, list(caught)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("demo")
    summary, lines, caught = _build(root / "demo", cwd=root)   # cwd is not a git repository
    with cmfq.Warehouse(summary.warehouse) as wh:
        yield Demo(summary, wh, lines, caught)


def test_summary_counts_what_was_logged(demo: Demo) -> None:
    s = demo.summary
    assert set(s.pipelines) == PIPELINES
    assert s.warehouse == s.workdir / ".cmfq"
    assert s.executions == demo.wh.sql("SELECT count(*) FROM executions").item() == 29
    assert s.failed == 1
    assert s.best_pipeline in {"tumor-classifier", "tumor-classifier-linear"}
    assert s.best_model_name == f"artifacts/{s.best_pipeline}/model/model.pkl"
    best = demo.wh.sql("SELECT max(m.value) FROM final_metrics m JOIN executions x ON x.id = m.execution_id "
                       "WHERE m.name = 'roc_auc' AND x.pipeline LIKE 'tumor-%'").item()
    assert s.best_roc_auc == pytest.approx(best)
    text = str(s)
    assert s.best_model[:12] in text and "cmfq -w" in text


def test_one_progress_line_per_iteration_and_no_warnings(demo: Demo) -> None:
    assert len(demo.lines) == 5 + 3 + 2
    assert sum("failed" in line for line in demo.lines) == 1
    assert [str(w.message) for w in demo.caught] == []


def test_three_pipelines_of_four_stages(demo: Demo) -> None:
    assert set(demo.wh.pipelines()["name"]) == PIPELINES
    stages = demo.wh.stages()
    for pipeline in PIPELINES:
        assert set(stages.filter(stages["pipeline"] == pipeline)["stage"]) == STAGES


def test_exactly_one_failed_execution_with_its_error(demo: Demo) -> None:
    failed = demo.wh.executions(status="failed")
    assert failed.height == 1
    info = demo.wh.execution(failed["id"][0])
    assert (info["pipeline"], info["stage"]) == ("tumor-classifier", "train")
    assert info["params"]["min_split"] == 1
    assert "min_samples_split" in info["error"]
    assert info["outputs"] == [] and [i["name"] for i in info["inputs"]] == [
        "artifacts/tumor-classifier/features/train.parquet"]
    # Everything else completed: no execution is left running.
    assert demo.wh.executions(status="completed").height == 28


def test_two_pipelines_share_the_raw_dataset(demo: Demo) -> None:
    raw = demo.wh.resolve_artifact("data/breast_cancer.csv")
    assert raw == _package_md5("breast_cancer.csv")
    assert set(demo.wh.consumers(raw)["pipeline"]) == {"tumor-classifier", "tumor-classifier-linear"}
    # Same file, same split and seed: the prepared files are the same bytes, hence one hash.
    for split in ("train", "test"):
        a = demo.wh.resolve_artifact(f"artifacts/tumor-classifier/prepared/{split}.csv")
        b = demo.wh.resolve_artifact(f"artifacts/tumor-classifier-linear/prepared/{split}.csv")
        assert a == b
        assert set(demo.wh.producer(a)["pipeline"]) == {"tumor-classifier", "tumor-classifier-linear"}


def test_every_evaluation_scores_between_chance_and_perfect(demo: Demo) -> None:
    evaluations = demo.wh.executions(stage="evaluate", status="completed")
    assert evaluations.height == 4 + 3 + 2
    for exec_id in evaluations["id"]:
        metrics = {m["name"]: m["value"] for m in demo.wh.execution(exec_id)["metrics"]}
        assert set(metrics) == {"roc_auc", "avg_prec"}
        assert all(0.5 < v <= 1.0 for v in metrics.values()), metrics


def test_training_loss_decreases(demo: Demo) -> None:
    trains = demo.wh.executions(stage="train", status="completed")
    assert trains.height == 4 + 3 + 2
    for exec_id in trains["id"]:
        history = demo.wh.metric_history(exec_id, "loss")
        steps, losses = history["step"].to_list(), history["value"].to_list()
        assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 10
        assert losses[-1] < 0.6 * losses[0], (exec_id, losses)


def test_best_model_traces_back_to_the_shipped_csv(demo: Demo) -> None:
    s, wh = demo.summary, demo.wh
    ancestors = wh.ancestors(s.best_model)
    raw = ancestors.filter(ancestors["name"] == "data/breast_cancer.csv")
    assert raw["hash"].to_list() == [_package_md5("breast_cancer.csv")]
    assert {"featureset", "dataset"} <= set(ancestors["kind"])
    producer = wh.producer(s.best_model)
    assert producer.height == 1 and producer["stage"][0] == "train"
    assert producer["pipeline"][0] == s.best_pipeline
    tree = wh.lineage(s.best_model, "up").to_tree("up")
    assert "data/breast_cancer.csv" in tree and "[prepare]" in tree


def test_model_name_has_one_version_per_iteration(demo: Demo) -> None:
    versions = demo.wh.sql("SELECT DISTINCT artifact_hash FROM events WHERE name = ? AND direction = 'out'",
                           ["artifacts/tumor-classifier/model/model.pkl"])
    assert versions.height == 4
    # The name resolves to the latest version, which is what is on disk now.
    latest = demo.wh.resolve_artifact("artifacts/tumor-classifier/model/model.pkl")
    on_disk = demo.summary.workdir / "artifacts/tumor-classifier/model/model.pkl"
    assert latest == hashlib.md5(on_disk.read_bytes()).hexdigest()


def test_featuresets_list_their_features(demo: Demo) -> None:
    columns = {
        "tumor": set(files("cmfq.data_samples").joinpath("breast_cancer.csv").read_text().split("\n")[0].split(",")),
        "wine": set(files("cmfq.data_samples").joinpath("wine.csv").read_text().split("\n")[0].split(",")),
    }
    featuresets = demo.wh.artifacts(kind="featureset")
    assert featuresets.height >= 2 * (3 + 2 + 2)
    for digest, name in featuresets.select("hash", "name").iter_rows():
        props = demo.wh.artifact(digest)["properties"]
        features = props["features"]
        assert features and "target" not in features
        assert set(features) <= columns["wine" if "wine" in name else "tumor"]
        assert props["transformation"].startswith("select columns")
    # The feature choice logged as a parameter matches the columns of the featureset written.
    for exec_id in demo.wh.executions(stage="featurize")["id"]:
        info = demo.wh.execution(exec_id)
        choice = info["params"]["features"]
        for out in info["outputs"]:
            features = demo.wh.artifact(out["hash"])["properties"]["features"]
            if choice.endswith("_*"):
                assert all(f.startswith(choice[:-1]) for f in features)


def test_artifacts_are_named_by_their_path_in_the_workdir(demo: Demo) -> None:
    names = demo.wh.sql("SELECT DISTINCT e.name FROM events e JOIN artifacts a ON a.hash = e.artifact_hash "
                        "WHERE a.kind <> 'env'")["name"]
    assert "data/wine.csv" in names.to_list()
    for name in names:
        assert not name.startswith("/") and (demo.summary.workdir / name).is_file(), name
    metrics_file = json.loads((demo.summary.workdir / "artifacts/wine-classifier/evaluate/metrics.json").read_text())
    assert set(metrics_file) == {"roc_auc", "avg_prec"}


def test_refuses_a_warehouse_that_has_content(demo: Demo) -> None:
    with pytest.raises(InvalidInputError, match="not empty"):
        build_demo(demo.summary.workdir, echo=lambda _: None)


def test_same_hashes_and_metrics_on_every_run(demo: Demo, tmp_path: Path) -> None:
    # The second run goes to another folder, from inside a git repository: neither changes a hash.
    repo = tmp_path / "repo"
    repo.mkdir()
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
    again, _, _ = _build(tmp_path / "again", cwd=repo)
    query = ("SELECT hash, kind, name FROM artifacts WHERE kind <> 'env' ORDER BY hash")
    metrics = ("SELECT x.pipeline, e.artifact_hash AS model, m.name, round(m.value, 12) AS value "
               "FROM final_metrics m JOIN executions x ON x.id = m.execution_id "
               "JOIN events e ON e.execution_id = x.id AND e.direction = 'in' AND e.name LIKE '%model.pkl' "
               "ORDER BY ALL")
    with cmfq.Warehouse(again.warehouse) as wh2:
        assert wh2.sql(query).equals(demo.wh.sql(query))
        assert wh2.sql(metrics).equals(demo.wh.sql(metrics))
        assert wh2.sql(metrics).height == 2 * 9
    assert (again.best_model, again.best_roc_auc) == (demo.summary.best_model, demo.summary.best_roc_auc)
