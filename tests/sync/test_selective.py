"""Query a remote in place, and pull only what a question needs (the issue's acceptance scenario)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cmfq
from cmfq.cli.main import app
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.remote import Remote
from cmfq.warehouse.sync import push

runner = CliRunner()


def h(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _two_sites(tmp_path: Path) -> tuple[Path, Path]:
    """Site A prepares the data; site B trains and evaluates on it: one pipeline, two sites.
    An unrelated pipeline lives on site B too."""
    a, b = tmp_path / "site-a", tmp_path / "site-b"
    with cmfq.Tracker("tumor", warehouse=a, site="site-a", capture_git=False, capture_env=False) as t:
        with t.execution("prepare", params={"split": 0.2}) as ex:
            ex.log_input(hash=h("raw"), name="data/raw.csv")
            ex.log_output(hash=h("train"), name="prepared/train.csv")
            ex.log_output(hash=h("test"), name="prepared/test.csv")
        t.annotate("artifact", h("raw"), "license", "CC BY 4.0")
    with cmfq.Tracker("tumor", warehouse=b, site="site-b", capture_git=False, capture_env=False) as t:
        with t.execution("train", params={"n_est": 100}) as ex:
            ex.log_input(hash=h("train"), name="prepared/train.csv")
            ex.log_metric("loss", 0.5, step=1)
            ex.log_output(hash=h("model"), name="model/model.pkl", kind="model")
        with t.execution("evaluate") as ex:
            ex.log_input(hash=h("model"), name="model/model.pkl", kind="model")
            ex.log_input(hash=h("test"), name="prepared/test.csv")
            ex.log_metrics({"roc_auc": 0.97})
    with cmfq.Tracker("unrelated", warehouse=b, capture_git=False, capture_env=False) as t:
        with t.execution("etl") as ex:
            ex.log_input(hash=h("other-raw"), name="other.csv")
            ex.log_output(hash=h("other-out"), name="other.parquet")
    return a, b


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_third_site_pulls_a_models_chain_from_s3_and_a_folder(tmp_path: Path, s3_bucket: str,
                                                              s3_server: dict[str, str]) -> None:
    a, b = _two_sites(tmp_path)
    folder = tmp_path / "shared-folder"
    s3_url = f"s3://{s3_bucket}/metadata"
    for site in (a, b):
        assert cli("-w", str(site), "remote", "add", "s3", s3_url, "--endpoint-url", s3_server["endpoint"])[0] == 0
        assert cli("-w", str(site), "remote", "add", "folder", str(folder))[0] == 0
        for remote in ("s3", "folder"):
            code, _, err = cli("-w", str(site), "push", remote)
            assert code == 0, err
    for remote, url, extra in (("s3", s3_url, ["--endpoint-url", s3_server["endpoint"]]),
                               ("folder", str(folder), [])):
        c = tmp_path / f"site-c-{remote}"
        cli("-w", str(c), "init")
        cli("-w", str(c), "remote", "add", remote, url, *extra)
        code, _, err = cli("-w", str(c), "pull", remote, "--artifact", "model/model.pkl")
        assert code == 0 and "Pulled the lineage of model/model.pkl" in err and "3 executions" in err, err
        code, tree, _ = cli("-w", str(c), "lineage", "model/model.pkl", "--direction", "both")
        assert code == 0
        lines = tree.splitlines()
        assert lines[0].startswith("model/model.pkl")
        assert any("[train]" in ln for ln in lines) and any("[prepare]" in ln for ln in lines)
        assert any("[evaluate]" in ln for ln in lines) and lines[-2].startswith("↑ data/raw.csv")
        code, out, _ = cli("-w", str(c), "sql", "SELECT pipeline, stage, site FROM executions ORDER BY stage",
                           "-f", "json")
        assert [(r["stage"], r["site"]) for r in json.loads(out)] == [
            ("evaluate", "site-b"), ("prepare", "site-a"), ("train", "site-b")]  # the unrelated etl stayed
        code, out, _ = cli("-w", str(c), "sql", "SELECT key, value FROM annotations", "-f", "json")
        assert json.loads(out) == [{"key": "license", "value": "CC BY 4.0"}]
        code, out, _ = cli("-w", str(c), "metrics", json.loads(cli("-w", str(c), "executions", "-s", "train",
                                                                 "-f", "json")[1])[0]["id"], "-f", "json")
        assert [(m["name"], m["step"]) for m in json.loads(out)] == [("loss", 1)]
        assert cli("-w", str(c), "verify")[0] == 0


def test_query_a_remote_in_place(tmp_path: Path, remote: Remote, s3_server: dict[str, str]) -> None:
    a, b = _two_sites(tmp_path)
    push(Layout(a), remote)
    push(Layout(b), remote)
    with cmfq.Warehouse(remote) as rw:
        assert rw.mode == "remote"
        assert sorted(rw.pipelines()["name"].to_list()) == ["tumor", "unrelated"]
        assert rw.ancestors("model/model.pkl")["name"].to_list() == ["prepared/train.csv", "data/raw.csv"]
    assert not (tmp_path / "site-c").exists()  # nothing was written locally
    if "://" in remote.url:  # the Python API also takes the URL itself, with options
        with cmfq.Warehouse(remote.url, remote_options={"endpoint_url": s3_server["endpoint"]}) as rw:
            assert rw.executions().height == 4


def test_sql_on_a_remote_from_the_cli(tmp_path: Path) -> None:
    a, _ = _two_sites(tmp_path)
    cli("-w", str(a), "remote", "add", "origin", str(tmp_path / "r"))
    cli("-w", str(a), "push")
    code, out, _ = cli("-w", str(a), "sql", "--remote", "origin", "SELECT count(*) AS n FROM executions", "-f", "csv")
    assert code == 0 and out.splitlines() == ["n", "1"]
    code, out, _ = cli("sql", "--remote", str(tmp_path / "r"), "SELECT count(*) AS n FROM events", "-f", "csv")
    assert code == 0 and out.splitlines() == ["n", "3"]


def test_pull_since(tmp_path: Path) -> None:
    a, b = _two_sites(tmp_path)
    remote = tmp_path / "r"
    for site in (a, b):
        cli("-w", str(site), "remote", "add", "origin", str(remote))
        cli("-w", str(site), "push")
    c = tmp_path / "c"
    cli("-w", str(c), "init")
    cli("-w", str(c), "remote", "add", "origin", str(remote))
    code, _, err = cli("-w", str(c), "pull", "--since", "2000-01-01")
    assert code == 0 and "4 executions" in err
    code, _, err = cli("-w", str(c), "pull", "--since", "2999-01-01")
    assert code == 0 and "0 executions" in err
    code, _, err = cli("-w", str(c), "pull", "--since", "yesterday")
    assert code == 1 and "is not a date" in err


@pytest.mark.parametrize("args, message", [(["--artifact", "nope"], "No artifact or execution matches 'nope'"),
                                           (["--artifact", "x", "--since", "2020-01-01"], "not both")])
def test_selective_pull_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    a, _ = _two_sites(tmp_path)
    cli("-w", str(a), "remote", "add", "origin", str(tmp_path / "r"))
    cli("-w", str(a), "push")
    code, _, err = cli("-w", str(a), "pull", *args)
    assert code == 1 and message in err
