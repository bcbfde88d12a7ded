"""The CLI end to end through typer's CliRunner, and once as the installed console script."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cmfq.cli.main import app
from tests.conftest import make_chain, run_cli

runner = CliRunner()


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / ".cmfq"
    make_chain(root, "alpha", ["prepare", "train", "evaluate"])
    make_chain(root, "beta", ["train"], root="raw")  # shares nothing with alpha but its root name
    return root


def cmfq(wh: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["-w", str(wh), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_listings_in_every_format(wh: Path) -> None:
    code, out, _ = cmfq(wh, "pipelines")
    assert code == 0 and "alpha" in out and "beta" in out
    code, out, _ = cmfq(wh, "executions", "--pipeline", "alpha", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and [r["stage"] for r in rows] == ["evaluate", "train", "prepare"]
    assert rows[0]["params"] == {"i": 2}  # JSON columns nest as objects
    code, out, _ = cmfq(wh, "artifacts", "--kind", "model", "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and {r["name"] for r in parsed} == {"evaluate.out", "train.out"}
    code, out, _ = cmfq(wh, "stages", "-p", "alpha", "-f", "json")
    assert {r["stage"] for r in json.loads(out)} == {"prepare", "train", "evaluate"}


def test_filters_on_params_and_limits(wh: Path) -> None:
    _, out, _ = cmfq(wh, "executions", "--param", "i>=1", "-f", "json")
    assert sorted(r["params"]["i"] for r in json.loads(out)) == [1, 2]
    _, out, err = cmfq(wh, "executions", "--limit", "1")
    assert "more rows" in err


@pytest.mark.parametrize("hostile", ["i=1; DROP TABLE executions", "x'y=1", 'i="1" OR 1=1 --', "i=) UNION SELECT 1"])
def test_sql_metacharacters_in_filters_are_only_data(wh: Path, hostile: str) -> None:
    code, out, _ = cmfq(wh, "executions", "--param", hostile, "-f", "json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = cmfq(wh, "executions", "-f", "json")
    assert len(json.loads(out)) == 4  # nothing was dropped


def test_bad_filter_is_one_line(wh: Path) -> None:
    code, out, err = cmfq(wh, "executions", "--param", "no operator here")
    assert code == 1 and err.startswith("error: Cannot read the filter") and "Traceback" not in err


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=40).filter(lambda s: not s.startswith("-")))
def test_any_filter_text_answers_or_fails_cleanly(wh: Path, text: str) -> None:
    result = runner.invoke(app, ["-w", str(wh), "executions", "--param", text, "-f", "json"])
    assert result.exit_code in (0, 1), result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    if result.exit_code == 1:
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_lineage_formats(wh: Path) -> None:
    code, tree, _ = cmfq(wh, "lineage", "evaluate.out")
    assert code == 0
    lines = tree.splitlines()
    assert lines[0].startswith("evaluate.out") and lines[-1].startswith("↑ raw")
    assert [ln.split("]")[0] for ln in lines if "[" in ln] == ["↑ [evaluate", "↑ [train", "↑ [prepare"]
    code, out, _ = cmfq(wh, "lineage", "evaluate.out", "--format", "json")
    graph = json.loads(out)
    assert len(graph["nodes"]) == 7 and len(graph["edges"]) == 6
    code, out, _ = cmfq(wh, "lineage", "raw", "--direction", "down", "--depth", "1", "-f", "json")
    kinds = sorted(n["type"] for n in json.loads(out)["nodes"])
    # `raw` names two artifacts (one per pipeline): the latest one is beta's.
    assert kinds == ["artifact", "artifact", "execution"]
    _, dot, _ = cmfq(wh, "lineage", "evaluate.out", "-f", "dot")
    assert dot.startswith("digraph lineage {") and dot.count("->") == 6
    _, mermaid, _ = cmfq(wh, "lineage", "evaluate.out", "-f", "mermaid")
    assert mermaid.startswith("flowchart LR") and mermaid.count("-->") == 6


def test_unknown_reference_is_a_clear_error(wh: Path) -> None:
    code, out, err = cmfq(wh, "lineage", "no-such-model")
    assert code == 1 and out == ""
    assert err.startswith("error: No artifact or execution matches 'no-such-model'")


def test_ambiguous_prefix_lists_candidates(tmp_path: Path) -> None:
    from cmfq import Tracker

    with Tracker("p", warehouse=tmp_path, capture_git=False, capture_env=False) as t:
        with t.execution("s") as ex:
            ex.log_output(hash="abcd" + "0" * 28, name="one")
            ex.log_output(hash="abcd" + "1" * 28, name="two")
    code, _, err = cmfq(tmp_path, "lineage", "abcd")
    assert code == 1 and "matches 2 artifacts" in err and "abcd0000" in err and "longer prefix" in err


def test_show_execution_and_artifact(wh: Path) -> None:
    _, out, _ = cmfq(wh, "executions", "-p", "alpha", "-s", "train", "-f", "json")
    exec_id = json.loads(out)[0]["id"]
    code, out, _ = cmfq(wh, "show", exec_id[:20], "-f", "json")
    info = json.loads(out)
    assert code == 0 and info["id"] == exec_id and info["params"] == {"i": 1}
    assert [i["name"] for i in info["inputs"]] == ["prepare.out"]
    code, out, _ = cmfq(wh, "show", "train.out")
    assert code == 0 and "producers (1)" in out


def test_sql_answers_and_errors_without_traceback(wh: Path) -> None:
    code, out, _ = cmfq(wh, "sql", "SELECT stage, count(*) AS n FROM executions GROUP BY 1 ORDER BY 1", "-f", "csv")
    assert code == 0 and out.splitlines() == ["stage,n", "evaluate,1", "prepare,1", "train,2"]
    code, out, _ = cmfq(wh, "sql", "SELECT * FROM ancestors((SELECT hash FROM artifacts WHERE name = 'evaluate.out'"
                        " AND hash IN (SELECT artifact_hash FROM events))) ORDER BY depth", "-f", "json")
    assert [r["depth"] for r in json.loads(out)] == [1, 2, 3]
    code, _, err = cmfq(wh, "sql", "SELEC 1")
    assert code == 1 and err.startswith("error: Parser Error") and "Traceback" not in err


@pytest.mark.parametrize("statement", [
    "COPY (SELECT 1) TO '/tmp/cmfq-should-not-exist.csv'",
    "ATTACH '/tmp/cmfq-other.duckdb' AS other",
    "INSTALL httpfs",
    "DELETE FROM idx.executions",
    "CREATE TABLE idx.x AS SELECT 1",
])
def test_sql_is_read_only(wh: Path, statement: str) -> None:
    code, _, err = cmfq(wh, "sql", statement)
    assert code == 1 and err.startswith("error: ")
    assert not Path("/tmp/cmfq-should-not-exist.csv").exists()
    code, out, _ = cmfq(wh, "sql", "SELECT count(*) AS n FROM executions", "-f", "csv")
    assert out.splitlines()[1] == "4"


def test_interactive_sql(wh: Path) -> None:
    result = runner.invoke(app, ["-w", str(wh), "sql", "-f", "csv"],
                           input="SELECT count(*) AS n\nFROM pipelines;\nSELEC;\nquit\n")
    assert result.exit_code == 0
    assert "n\n2" in result.stdout and "error: Parser Error" in result.stderr


def test_missing_warehouse_says_how_to_make_one(tmp_path: Path) -> None:
    code, _, err = cmfq(tmp_path / "nothing-here", "pipelines")
    assert code == 1 and "No cmfq warehouse at" in err and "cmfq init" in err


def test_init_and_compact(tmp_path: Path) -> None:
    code, _, err = cmfq(tmp_path / "w", "init", "--site", "lab-1")
    assert code == 0 and "Created" in err
    assert json.loads((tmp_path / "w" / "cmfq.json").read_text())["site"] == "lab-1"
    make_chain(tmp_path / "w", "p", ["a", "b", "c"])
    code, _, err = cmfq(tmp_path / "w", "compact")
    assert code == 0 and "Compacted 9 partitions into 3" in err
    code, _, err = cmfq(tmp_path / "w", "compact", "--table", "nope")
    assert code == 1 and "Unknown table" in err


def test_every_command_has_help() -> None:
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        assert command.help and len(command.help) > 20, name
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0 and "Usage" in result.stdout, name


def test_installed_console_script_runs(wh: Path, tmp_path: Path) -> None:
    proc = run_cli("-w", str(wh), "executions", "-f", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 4
    proc = run_cli("-w", str(wh), "lineage", "nope", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and proc.stderr.startswith("error:")
    proc = run_cli(cwd=tmp_path)
    assert proc.returncode == 2 and "Usage" in proc.stdout  # no arguments: help


def test_every_command_is_in_the_readme_and_setup_is_two_commands() -> None:
    import re

    import typer.main

    readme = (Path(__file__).parents[2] / "README.md").read_text("utf-8")
    for name in typer.main.get_command(app).commands:  # type: ignore[attr-defined]
        assert f"cmfq {name}" in readme, f"`cmfq {name}` is not documented in README.md"
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
