"""The logging library end to end: what is logged is what the warehouse answers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import cmfq
from cmfq.errors import InvalidInputError
from cmfq.ingest.hashing import file_md5
from cmfq.ingest.ids import uuid7, uuid7_time_ms


def test_issue_example_round_trips(tmp_path: Path, make_files) -> None:
    make_files({"artifacts/features/train.pkl": "features", "artifacts/model/model.pkl": "model-bytes"})
    losses = [0.9, 0.5, 0.25]
    import os
    os.chdir(tmp_path)
    t = cmfq.Tracker(pipeline="example-get-started", warehouse=".cmfq", capture_git=False)
    with t.execution(stage="train", params={"n_est": 100, "min_split": 64}) as ex:
        ex.log_input("artifacts/features/train.pkl", kind="dataset")
        for step, loss in enumerate(losses):
            ex.log_metric("loss", loss, step=step)
        ex.log_output("artifacts/model/model.pkl", kind="model")
        ex.log_metrics({"roc_auc": 0.91, "avg_prec": 0.88})
    t.close()

    wh = cmfq.Warehouse(".cmfq")
    info = wh.execution(ex.id)
    assert info["pipeline"] == "example-get-started" and info["stage"] == "train"
    assert info["status"] == "completed" and info["ended_at"] >= info["started_at"]
    assert info["params"] == {"n_est": 100, "min_split": 64}
    assert {m["name"]: m["value"] for m in info["metrics"]} == {"avg_prec": 0.88, "loss": 0.25, "roc_auc": 0.91}
    assert [i["name"] for i in info["inputs"]] == ["artifacts/features/train.pkl"]
    assert info["outputs"][0]["hash"] == file_md5(tmp_path / "artifacts/model/model.pkl")
    assert wh.metric_history(ex.id, "loss")["value"].to_list() == losses
    assert wh.producer("artifacts/model/model.pkl")["id"].to_list() == [ex.id]
    assert wh.ancestors("artifacts/model/model.pkl")["name"].to_list() == ["artifacts/features/train.pkl"]


def test_exception_marks_failed_and_propagates(tracker: cmfq.Tracker) -> None:
    with pytest.raises(ZeroDivisionError):
        with tracker.execution("train", params={"lr": 0.1}) as ex:
            ex.log_metric("loss", 1.0, step=0)
            1 / 0  # noqa: B018
    tracker.flush()
    row = cmfq.Warehouse(tracker.layout.root).execution(ex.id)
    assert row["status"] == "failed"
    assert row["error"] == "ZeroDivisionError: division by zero"


def test_git_state_is_captured_and_absent_outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run(git + ["remote", "add", "origin", "https://user:s3cret@git.example.com/team/x.git"],
                   cwd=repo, check=True)
    (repo / "a.txt").write_text("a")
    subprocess.run(git + ["add", "a.txt"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "c1"], cwd=repo, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    monkeypatch.chdir(repo)
    with cmfq.Tracker("p", warehouse=tmp_path / "wh") as t:
        with t.execution("s") as ex:
            pass
    (repo / "a.txt").write_text("changed")
    with cmfq.Tracker("p", warehouse=tmp_path / "wh") as t:
        with t.execution("s") as dirty:
            pass
    monkeypatch.chdir(tmp_path)
    with cmfq.Tracker("p", warehouse=tmp_path / "wh") as t:
        with t.execution("s") as outside:
            pass
    wh = cmfq.Warehouse(tmp_path / "wh")
    clean = wh.execution(ex.id)
    assert (clean["git_commit"], clean["git_branch"], clean["git_dirty"]) == (sha, "main", False)
    assert clean["git_repo"] == "https://git.example.com/team/x.git"  # credentials stripped
    assert wh.execution(dirty.id)["git_dirty"] is True
    absent = wh.execution(outside.id)
    assert absent["git_commit"] is None and absent["git_repo"] is None and absent["status"] == "completed"


def test_environment_is_one_shared_artifact(warehouse_dir: Path) -> None:
    ids = []
    for _ in range(2):
        with cmfq.Tracker("p", warehouse=warehouse_dir, capture_git=False) as t:
            with t.execution("s") as ex:
                ids.append(ex.id)
    wh = cmfq.Warehouse(warehouse_dir)
    env_hashes = {wh.execution(i)["env_hash"] for i in ids}
    assert len(env_hashes) == 1
    env = wh.artifacts(kind="env")
    assert env["hash"].to_list() == list(env_hashes)
    packages = json.loads(wh.sql("SELECT properties::VARCHAR AS p FROM artifacts WHERE kind='env'")["p"][0])
    assert any(p.startswith("duckdb==") for p in packages["packages"])


def test_log_by_hash_without_a_file(tracker: cmfq.Tracker) -> None:
    with tracker.execution("deploy") as ex:
        h = ex.log_input(hash="0123456789abcdef0123456789abcdef", name="remote-model", kind="model")
    tracker.flush()
    art = cmfq.Warehouse(tracker.layout.root).artifact("remote-model")
    assert art["hash"] == h and art["kind"] == "model" and art["consumers"][0]["id"] == ex.id


def test_directory_artifacts_get_dvc_dir_hash(tracker: cmfq.Tracker, make_files) -> None:
    root = make_files({"ds/a.csv": "1", "ds/sub/b.csv": "2"})
    with tracker.execution("s") as ex:
        h = ex.log_output(root / "ds")
    assert h.endswith(".dir")
    tracker.flush()
    props = cmfq.Warehouse(tracker.layout.root).artifact(h)["properties"]
    assert props["nfiles"] == 2


@pytest.mark.parametrize("call, message", [
    (lambda ex: ex.log_input("does/not/exist.csv"), "does not exist"),
    (lambda ex: ex.log_metric("loss", "abc"), "must be a number"),
    (lambda ex: ex.log_metric("loss", 1.0, step=1.5), "must be an integer"),
    (lambda ex: ex.log_metric("", 1.0), "non-empty string"),
    (lambda ex: ex.log_input(), "hash="),
])
def test_bad_calls_say_what_to_do(tracker: cmfq.Tracker, call, message: str) -> None:
    with tracker.execution("s") as ex:
        with pytest.raises(InvalidInputError, match=message):
            call(ex)


def test_bad_tracker_arguments(warehouse_dir: Path) -> None:
    with pytest.raises(InvalidInputError, match="pipeline must be a non-empty string"):
        cmfq.Tracker("", warehouse=warehouse_dir)
    with cmfq.Tracker("p", warehouse=warehouse_dir, capture_git=False) as t:
        with pytest.raises(InvalidInputError, match="params must be a mapping"):
            t.execution("s", params=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="is closed"):
        t.execution("s")


def test_logging_after_end_is_refused(tracker: cmfq.Tracker) -> None:
    with tracker.execution("s") as ex:
        pass
    with pytest.raises(InvalidInputError, match="has ended"):
        ex.log_metric("x", 1)


def test_nested_executions_record_their_parent(tracker: cmfq.Tracker) -> None:
    with tracker.execution("outer") as outer:
        with tracker.execution("inner") as inner:
            pass
    tracker.flush()
    wh = cmfq.Warehouse(tracker.layout.root)
    assert wh.execution(inner.id)["parent_id"] == outer.id
    assert wh.execution(outer.id)["parent_id"] is None


def test_log_params_during_run_and_latest_status_wins(tracker: cmfq.Tracker) -> None:
    with tracker.execution("train", params={"lr": 0.1}) as ex:
        ex.log_params({"best_iteration": 7})
    tracker.flush()
    wh = cmfq.Warehouse(tracker.layout.root)
    assert wh.execution(ex.id)["params"] == {"lr": 0.1, "best_iteration": 7}
    # The running row and the completed row are both on disk; the view shows one, the latest.
    assert wh.sql("SELECT count(*) AS n, any_value(status) AS s FROM executions WHERE id = ?", [ex.id]).row(0) == (
        1, "completed")


def test_uuid7_is_time_ordered() -> None:
    a, b = uuid7(1000), uuid7(2000)
    assert a < b and uuid7_time_ms(a) == 1000 and a[14] == "7"
    assert len({uuid7() for _ in range(1000)}) == 1000
