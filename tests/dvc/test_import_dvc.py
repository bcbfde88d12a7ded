"""`cmfq import dvc`: a real 4-stage DVC pipeline reproduced by DVC over several commits is
imported as executions with params, inputs, outputs, metrics and git commits; importing
again (a commit or the history, in any order) adds nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cmfq
from cmfq.cli.main import app
from cmfq.ingest.dvc import DvcError
from cmfq.ingest.import_dvc import import_dvc
from cmfq.warehouse.layout import Layout
from tests.conftest import write_tree
from tests.dvc.conftest import commit_all, dvc_add, dvc_init, dvc_repro, git

runner = CliRunner()
STAGES = ["prepare", "featurize", "train", "evaluate"]

PIPELINE = """\
stages:
  prepare:
    cmd: head -n ${prepare.rows} data/raw.csv > prepared.csv
    deps: [data/raw.csv]
    params: [prepare.rows]
    outs: [prepared.csv]
  featurize:
    cmd: sed 's/,/;/g' prepared.csv > features.csv
    deps: [prepared.csv]
    outs: [features.csv]
  train:
    cmd: cat features.csv > model.pkl && echo seed=${train.seed} >> model.pkl
    deps: [features.csv]
    params: [train.seed]
    outs: [model.pkl]
  evaluate:
    cmd: >-
      mkdir -p eval && printf '{"auc": 0.%s, "loss": {"val": %s}, "note": "x"}' ${train.seed} ${prepare.rows}
      > eval/metrics.json
    deps: [model.pkl]
    params: [train.seed]
    metrics:
      - eval/metrics.json:
          cache: false
"""


def _params(rows: int, seed: int) -> str:
    return f"prepare:\n  rows: {rows}\ntrain:\n  seed: {seed}\n  lr: 0.1\n"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The repository and, per commit, the stages DVC re-ran in it."""
    root = tmp_path_factory.mktemp("example") / "example-get-started"
    rows = "".join(f"{i},{i * i}\n" for i in range(20))
    repo = dvc_init(root, {"data/raw.csv": rows, "dvc.yaml": PIPELINE, "params.yaml": _params(5, 11)})
    git(root, "remote", "add", "origin", "https://ci:t0ken@git.example.com/ml/example-get-started.git")
    dvc_add(repo, "data/raw.csv")
    commits = []
    for day, (params, ran) in enumerate([((5, 11), STAGES), ((5, 42), ["train", "evaluate"]), ((8, 42), STAGES)]):
        write_tree(root, {"params.yaml": _params(*params)})
        dvc_repro(repo)
        commits.append((commit_all(root, f"run with {params}", date=f"2026-03-0{day + 1}T12:00:00Z"), ran))
    write_tree(root, {"README.md": "docs only\n"})
    commits.append((commit_all(root, "docs", date="2026-03-09T12:00:00Z"), []))
    repo.close()
    return {"root": root, "commits": commits}


def cli(wh: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["-w", str(wh), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def _partitions(wh: Path) -> set[str]:
    return {str(p.relative_to(wh)) for p in wh.rglob("*.parquet")}


def test_history_gives_one_execution_per_stage_run_with_lineage_and_metrics(example: dict, tmp_path: Path) -> None:
    root, commits = example["root"], example["commits"]
    wh = tmp_path / "wh"
    code, _, err = cli(wh, "import", "dvc", str(root), "--history")
    assert code == 0, err
    assert "Imported 10 new runs of pipeline example-get-started (10 found in 3 commits" in err
    with cmfq.Warehouse(wh) as w:
        runs = w.sql("SELECT stage, git_commit, params::VARCHAR AS params, git_repo, type, status "
                     "FROM executions ORDER BY started_at, stage")
        by_commit: dict[str, list[str]] = {}
        for r in runs.iter_rows(named=True):
            by_commit.setdefault(r["git_commit"], []).append(r["stage"])
            assert r["git_repo"] == "https://git.example.com/ml/example-get-started.git"  # no token
            assert (r["type"], r["status"]) == ("dvc", "completed")
        assert {sha: sorted(stages) for sha, stages in by_commit.items()} == {
            sha: sorted(ran) for sha, ran in commits if ran}
        last_sha = commits[2][0]
        (train,) = [i for i in w.executions(stage="train")["id"] if w.execution(i)["git_commit"] == last_sha]
        assert w.execution(train)["params"] == {"train.seed": 42}
        up = w.ancestors("model.pkl")["name"].to_list()
        assert up == ["features.csv", "prepared.csv", "data/raw.csv"]  # the latest model, all hops
        evaluate = w.consumers("model.pkl")["id"].to_list()
        assert len(evaluate) == 1
        info = w.execution(evaluate[0])
        assert {m["name"]: m["value"] for m in info["metrics"]} == {"auc": 0.42, "loss.val": 8.0}
        assert [o["name"] for o in info["outputs"]] == ["eval/metrics.json"]
        assert w.artifact("eval/metrics.json")["kind"] == "metrics"
        assert w.artifact("model.pkl")["properties"]["dvc"] == {
            "path": "model.pkl", "file": "dvc.lock", "stage": "train", "commit": last_sha}
        assert info["reproduce"] == [f"git checkout {last_sha}", "dvc pull model.pkl"]


def test_reimport_adds_nothing_and_commit_and_history_agree(example: dict, tmp_path: Path) -> None:
    root = example["root"]
    head_only, full = tmp_path / "head", tmp_path / "full"
    first = import_dvc(Layout(head_only), root)
    assert (first.runs, first.executions) == (4, 4)
    files = _partitions(head_only)
    again = import_dvc(Layout(head_only), root)
    assert (again.executions, again.partitions) == (0, 0) and _partitions(head_only) == files

    import_dvc(Layout(full), root, history=True)
    with cmfq.Warehouse(head_only) as a, cmfq.Warehouse(full) as b:
        query = "SELECT * FROM executions ORDER BY id"
        head_rows = a.sql(query)
        same = b.sql(query).filter(b.sql(query)["id"].is_in(head_rows["id"].to_list()))
        assert head_rows.equals(same)  # a run is dated to the oldest commit holding it, whichever way
    more = import_dvc(Layout(head_only), root, history=True)
    assert more.executions == 6  # only the older runs are new
    assert import_dvc(Layout(head_only), root, history=True).executions == 0


def test_cli_show_prints_reproduce_commands_and_metrics(example: dict, tmp_path: Path) -> None:
    wh = tmp_path / "wh"
    cli(wh, "import", "dvc", str(example["root"]))
    code, out, _ = cli(wh, "executions", "--stage", "train", "-f", "json")
    (train,) = json.loads(out)
    code, out, _ = cli(wh, "show", train["id"])
    assert code == 0
    assert f"git checkout {train['git_commit']}" in out and "dvc pull features.csv" in out


def test_detached_head_rev_and_no_git(example: dict, tmp_path: Path) -> None:
    root, commits = example["root"], example["commits"]
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    git(clone, "checkout", "-q", "--detach", commits[0][0])
    report = import_dvc(Layout(tmp_path / "wh"), clone, history=True, pipeline="detached")
    assert (report.runs, report.executions) == (4, 4)
    report = import_dvc(Layout(tmp_path / "wh2"), clone, rev=commits[1][0])
    assert report.runs == 4  # prepare and featurize from the first commit, train and evaluate rerun
    with pytest.raises(DvcError, match="is not a commit"):
        import_dvc(Layout(tmp_path / "wh3"), clone, rev="no-such-branch")
    with open(clone / "dvc.lock", "a") as f:
        f.write("# edited by hand\n")
    notes = import_dvc(Layout(tmp_path / "wh"), clone).notes
    assert notes == ["dvc.lock has changes not committed to git: commit it (git add dvc.lock && git commit) "
                     "and import again to record those runs."]

    nogit = tmp_path / "nogit"
    shutil.copytree(root, nogit, ignore=shutil.ignore_patterns(".git"))
    report = import_dvc(Layout(tmp_path / "wh4"), nogit)
    assert (report.runs, report.executions, report.commits) == (4, 4, 0)
    with cmfq.Warehouse(tmp_path / "wh4") as w:
        assert w.sql("SELECT count(*) AS n FROM executions WHERE git_commit IS NULL")["n"][0] == 4
    code, _, err = cli(tmp_path / "wh4", "import", "dvc", str(nogit), "--history")
    assert code == 1 and "not in a git repository" in err and "Drop --history" in err
    code, _, err = cli(tmp_path / "wh4", "import", "dvc", str(tmp_path / "wh4"))
    assert code == 1 and "not in a DVC project" in err


def test_tracker_logged_run_shows_how_to_get_its_inputs_back(project: Path, tmp_path: Path) -> None:
    wh = tmp_path / "wh"
    write_tree(project, {"data.csv": "a\n"})
    with cmfq.Tracker("p", warehouse=wh, capture_env=False, dvc=True, git_commit=True) as t:
        with t.execution("prepare") as ex:
            ex.log_output("data.csv")
    commit_all(project, "more code")  # the next run's code is newer than its input's .dvc file
    write_tree(project, {"local.txt": "never versioned"})
    with cmfq.Tracker("p", warehouse=wh, capture_env=False) as t, t.execution("train") as ex:
        ex.log_input("data.csv")
        ex.log_input("local.txt")
    with cmfq.Warehouse(wh) as w:
        info = w.execution(ex.id)
        data_commit = w.artifact("data.csv")["properties"]["dvc"]["commit"]
    head = git(project, "rev-parse", "HEAD")
    assert data_commit != head
    assert info["reproduce"] == [
        f"git checkout {head}", "# the run had uncommitted changes in 1 paths: this checkout is not exactly "
        "the code that ran", f"git checkout {data_commit} -- data.csv.dvc", "dvc pull data.csv",
        f"cmfq artifacts pull --execution {ex.id}"]


def test_a_project_with_no_runs_yet_says_so(project: Path, tmp_path: Path) -> None:
    write_tree(project, {"dvc.yaml": "stages:\n  s:\n    cmd: echo hi > o.txt\n    outs: [o.txt]\n"})
    commit_all(project, "pipeline, never reproduced")
    code, _, err = cli(tmp_path / "wh", "import", "dvc", str(project), "--history")
    assert code == 0 and "Imported 0 new runs" in err
    assert "has no dvc.lock in its git history" in err and "dvc repro" in err
