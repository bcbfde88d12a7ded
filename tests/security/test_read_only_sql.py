"""`cmfq sql` and the app's SQL console are read-only: every way SQL could write, read other
files, load code or change the shared session is refused in one line, and nothing changes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cmfq
from cmfq.cli.main import app
from tests.conftest import make_chain

runner = CliRunner()
ESCAPE = "/tmp/cmfq-read-only-escape"


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ro") / ".cmfq"
    make_chain(root, "p", ["prepare", "train"])
    cmfq.Warehouse(root).close()  # the index exists before the snapshots
    return root


def _snapshot(root: Path) -> dict[str, str]:
    """Every file of the warehouse (the index included) by content; DuckDB's spill folders aside."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "tmp" not in p.relative_to(root).parts}


def sql(root: Path, query: str, *extra: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["-w", str(root), "sql", query, *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stdout, result.stderr


REFUSED = {
    "copy out": f"COPY (SELECT * FROM executions) TO '{ESCAPE}.csv'",
    "copy into the warehouse": "COPY (SELECT 1 AS x) TO '{root}/executions/x.parquet' (FORMAT parquet)",
    "export": f"EXPORT DATABASE '{ESCAPE}'",
    "read a local file": "SELECT * FROM read_csv('/etc/passwd')",
    "read text": "SELECT content FROM read_text('/etc/hostname')",
    "list files": "SELECT * FROM glob('/etc/*')",
    "read partitions raw": "SELECT * FROM read_parquet('{root}/executions/*/*.parquet')",
    "attach a file": f"ATTACH '{ESCAPE}.duckdb' AS other",
    "attach memory": "ATTACH ':memory:' AS scratch",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "delete from the index": "DELETE FROM idx.executions",
    "insert into the index": "INSERT INTO idx.executions SELECT * FROM idx.executions",
    "create in the index": "CREATE TABLE idx.x AS SELECT 1",
    "replace a view": "CREATE OR REPLACE VIEW executions AS SELECT 'forged' AS id",
    "drop a view": "DROP VIEW pipelines",
    "temp table": "CREATE TEMP TABLE t AS SELECT 1",
    "second statement": "SELECT 1; DROP VIEW stages",
    "external access back on": "SET enable_external_access = true",
    "memory limit": "SET memory_limit = '100GB'",
    "pragma setting": "PRAGMA memory_limit = '100GB'",
    "switch catalog": "USE idx",
    "checkpoint": "CHECKPOINT idx",
    "call": "CALL pragma_version()",
}


@pytest.mark.parametrize("statement", list(REFUSED.values()), ids=list(REFUSED))
def test_refused_in_one_line_and_nothing_changes(wh: Path, statement: str) -> None:
    before = _snapshot(wh)
    code, out, err = sql(wh, statement.format(root=wh))
    assert code == 1 and out == "" and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert _snapshot(wh) == before
    assert not list(Path("/tmp").glob(Path(ESCAPE).name + "*"))


def test_reading_still_works_after_every_refusal(wh: Path) -> None:
    for statement in ("DROP VIEW pipelines", "CREATE OR REPLACE VIEW executions AS SELECT 'x' AS id"):
        assert sql(wh, statement)[0] == 1
    code, out, _ = sql(wh, "SHOW TABLES", "-f", "csv")
    assert code == 0 and "pipelines" in out.splitlines()
    code, out, _ = sql(wh, "EXPLAIN SELECT count(*) FROM executions", "-f", "csv")
    assert code == 0 and "physical_plan" in out
    code, out, _ = sql(wh, "WITH x AS (SELECT id FROM executions) SELECT count(*) AS n FROM x", "-f", "csv")
    assert out.splitlines() == ["n", "2"]


def test_the_message_says_what_to_do(wh: Path) -> None:
    _, _, err = sql(wh, "CREATE TABLE t AS SELECT 1")
    assert err.startswith("error: cmfq SQL is read-only: CREATE statements are not run.")
    assert "--format csv|json > file" in err


@pytest.mark.thorough
def test_remote_in_place_is_read_only_too(wh: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    assert runner.invoke(app, ["-w", str(wh), "remote", "add", "ro-test", str(remote)]).exit_code == 0
    assert runner.invoke(app, ["-w", str(wh), "push", "ro-test"]).exit_code == 0
    before = _snapshot(remote)
    for statement in (f"COPY (SELECT 1) TO '{ESCAPE}.csv'", "ATTACH ':memory:' AS m", "DROP VIEW executions"):
        result = runner.invoke(app, ["-w", str(wh), "sql", "--remote", str(remote), statement])
        assert result.exit_code == 1 and result.stderr.startswith("error: "), result.stderr
    result = runner.invoke(app, ["-w", str(wh), "sql", "--remote", str(remote), "SELECT count(*) AS n FROM executions",
                                 "-f", "csv"])
    assert result.stdout.splitlines() == ["n", "2"]
    assert _snapshot(remote) == before and not list(Path("/tmp").glob(Path(ESCAPE).name + "*"))


@pytest.mark.thorough
def test_app_console_refuses_and_other_pages_still_answer(demo_warehouse: Path, monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from importlib import resources

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CMFQ_WAREHOUSE", str(demo_warehouse))
    at = AppTest.from_file(str(resources.files("cmfq.app").joinpath("Overview.py")), default_timeout=60).run()
    at = at.switch_page("pages/7_SQL_console.py").run()
    for statement in ("CREATE OR REPLACE VIEW executions AS SELECT 'forged' AS id", "DROP VIEW pipelines",
                      "ATTACH ':memory:' AS m", f"COPY (SELECT 1) TO '{ESCAPE}.csv'"):
        at.text_area[0].input(statement).run()
        at.button[0].click().run()
        assert not at.exception and at.error and ("read-only" in at.error[0].value
                                                  or "Permission" in at.error[0].value), statement
    at.text_area[0].input("SELECT count(*) AS n FROM executions").run()
    at.button[0].click().run()
    assert not at.exception and at.dataframe[0].value["n"].to_list() == [29]
    at = at.switch_page("pages/1_Executions.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.dataframe[0].value.shape[0] == 29
