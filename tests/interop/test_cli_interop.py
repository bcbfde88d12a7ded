"""`cmfq import ...` and `cmfq export ...` end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cmfq.cli.main import app
from tests.conftest import make_chain, run_cli

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_export_then_import_through_the_cli(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_chain(src, "alpha", ["prepare", "train"])
    make_chain(src, "beta", ["train"])
    code, out, err = invoke("-w", str(src), "export", "openlineage", "--pipeline", "alpha")
    assert code == 0 and "Wrote 4 OpenLineage events" in err
    events = [json.loads(line) for line in out.splitlines()]
    assert {e["job"]["namespace"] for e in events} == {"alpha"} and len(events) == 4
    (tmp_path / "alpha.jsonl").write_text(out)

    code, out, err = invoke("-w", str(tmp_path / "dst"), "import", "openlineage", str(tmp_path / "alpha.jsonl"),
                            "--json")
    assert code == 0 and "Imported openlineage" in err and "2 executions" in err
    assert json.loads(out)["executions"] == 2 and json.loads(out)["partitions_new"] > 0
    code, out, err = invoke("-w", str(tmp_path / "dst"), "import", "openlineage", str(tmp_path / "alpha.jsonl"))
    assert code == 0 and "Nothing new: this source was imported before." in err

    code, _, err = invoke("-w", str(src), "export", "cmf-json", "-o", str(tmp_path / "all.json"))
    assert code == 0 and "Wrote 2 pipeline(s)" in err
    exported = json.loads((tmp_path / "all.json").read_text())
    assert [p["name"] for p in exported["Pipeline"]] == ["alpha", "beta"]
    code, _, err = invoke("-w", str(tmp_path / "cmf"), "import", "cmf-json", str(tmp_path / "all.json"),
                          "--pipeline", "beta")
    assert code == 0 and "1 executions in 1 pipeline(s)" in err


def test_errors_are_one_line_with_exit_code_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"eventType": "START", "run": {"runId": "x"\n')
    for args, message in [(["import", "openlineage", str(bad)], "line 1: is not a JSON object"),
                          (["import", "mlflow", "mysql://db/mlflow"], "is a mysql:// tracking URI"),
                          (["import", "mlmd", str(bad)], "is not a SQLite database"),
                          (["import", "cmf-json", str(bad)], "is not valid JSON")]:
        code, _, err = invoke("-w", str(tmp_path / "wh"), *args)
        assert code == 1 and err.startswith("error:") and message in err, (args, err)
    proc = run_cli("-w", str(tmp_path / "wh"), "import", "openlineage", str(bad), cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "line 1" in proc.stderr


def test_groups_list_their_commands() -> None:
    code, out, _ = invoke("import", "--help")
    assert code == 0 and all(k in out for k in ("mlmd", "cmf-json", "mlflow", "openlineage"))
    code, out, _ = invoke("export", "--help")
    assert code == 0 and "openlineage" in out and "cmf-json" in out
