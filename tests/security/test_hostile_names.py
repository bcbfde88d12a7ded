"""Hostile names: quotes, semicolons, newlines, markup, control characters, unicode, very long
strings, ``../`` and absolute paths as pipeline, stage, artifact names and param keys/values.

Each is stored and shown verbatim (API, CLI listings, ``cmfq show``, lineage, the app), never
becomes a path outside the warehouse, and never becomes SQL text.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import cmfq
from cmfq.cli.main import app
from cmfq.warehouse.text import printable

HOSTILE = [
    "it's \"quoted\"",
    "a; DROP TABLE executions; --",
    "line one\nline two\r\nthree",
    "../../../../tmp/cmfq-escape",
    "/etc/passwd",
    "..",
    "[bold red]markup[/] [/]",
    "tab\there \x1b[31mred\x1b[0m \x07bell",
    "ünïcødé 数据 🚀 \u202eevil",
    "x" * 5000,
    "C:\\Windows\\system32",
    "%2e%2e%2fpercent",
    "$1 ? :name {} ${x}",
]
runner = CliRunner()


def _log(root: Path) -> dict[str, str]:
    """One execution per hostile name, the name used as pipeline, stage, artifact name, param
    key and value; returns name -> execution id."""
    ids = {}
    for i, name in enumerate(HOSTILE):
        with cmfq.Tracker(name, warehouse=root, capture_git=False, capture_env=False) as t:
            with t.execution(name, params={name: name, "k": i}) as ex:
                ex.log_input(hash=f"{i:032x}", name=name)
                ex.log_output(hash=f"{i + 100:032x}", name=name + "/out", kind="model")
                ex.log_metric(name, float(i))
                ids[name] = ex.id
    with cmfq.Tracker("merge", warehouse=root, capture_git=False, capture_env=False) as t:
        with t.execution("merge") as ex:  # one lineage that holds every hostile name
            for i, name in enumerate(HOSTILE):
                ex.log_input(hash=f"{i + 100:032x}", name=name + "/out")
            ex.log_output(hash="f" * 32, name="merged", kind="model")
    return ids


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("hostile") / "wh"
    return root, _log(root)


def cli(root: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["-w", str(root), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stdout, result.stderr


def test_files_stay_inside_the_warehouse_with_bounded_names(hostile: tuple[Path, dict[str, str]]) -> None:
    root, _ = hostile
    outside = sorted(p.name for p in root.parent.iterdir())
    assert outside == ["wh"]  # nothing written next to the warehouse (`../`)
    assert not Path("/tmp/cmfq-escape").exists()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            assert len(n.encode()) <= 255 and "\n" not in n and n not in (".", "..")
        assert Path(dirpath).resolve().is_relative_to(root.resolve())


def test_api_returns_every_name_verbatim(hostile: tuple[Path, dict[str, str]]) -> None:
    root, ids = hostile
    with cmfq.Warehouse(root) as wh:
        assert set(wh.pipelines()["name"].to_list()) == {*HOSTILE, "merge"}
        for name, exec_id in ids.items():
            rows = wh.executions(pipeline=name, stage=name)
            assert rows["id"].to_list() == [exec_id]
            info = wh.execution(exec_id)
            assert info["pipeline"] == info["stage"] == name
            assert info["params"] == {name: name, "k": HOSTILE.index(name)}
            assert [m["name"] for m in info["metrics"]] == [name]
            assert [i["name"] for i in info["inputs"]] == [name]
            assert [o["name"] for o in info["outputs"]] == [name + "/out"]
            # A parameter filter on a hostile key and value finds exactly its run.
            assert wh.executions(params={name: name})["id"].to_list() == [exec_id]


def test_cli_listings_and_show_are_verbatim(hostile: tuple[Path, dict[str, str]]) -> None:
    root, ids = hostile
    code, out, _ = cli(root, "pipelines", "-f", "json")
    assert code == 0 and {r["name"] for r in json.loads(out)} == {*HOSTILE, "merge"}
    code, out, _ = cli(root, "artifacts", "-f", "json", "--limit", "1000")
    assert code == 0 and {r["name"] for r in json.loads(out)} >= set(HOSTILE)
    code, out, _ = cli(root, "executions", "-f", "json", "--limit", "1000")
    rows = {r["id"]: r for r in json.loads(out)}
    for name, exec_id in ids.items():
        assert (rows[exec_id]["pipeline"], rows[exec_id]["stage"], rows[exec_id]["params"][name]) == (name,) * 3
    code, out, err = cli(root, "executions", "--limit", "1000")
    assert code == 0 and all(i[:20] in out for i in ids.values()), err
    assert not RAW_CONTROLS & set(out)
    for name, exec_id in ids.items():
        code, out, err = cli(root, "show", exec_id)  # the table form: markup is text, not style
        assert code == 0 and "Traceback" not in err, err
        # Verbatim but for control characters, which show as escapes: no raw ESC, bell or
        # bidi override reaches the terminal.
        words = " ".join(printable(name).split("\n")[0][:40].split())  # rich expands tabs
        assert words in " ".join(out.split())
        assert not RAW_CONTROLS & set(out)


RAW_CONTROLS = {"\x1b", "\x07", "\r", "\u202e"}


def test_lineage_in_every_format(hostile: tuple[Path, dict[str, str]]) -> None:
    root, _ = hostile
    code, out, err = cli(root, "lineage", "merged", "-f", "json")
    assert code == 0, err
    labels = {n["label"] for n in json.loads(out)["nodes"]}
    assert {n + s for n in HOSTILE for s in ("", "/out")} <= labels
    for fmt in ("tree", "dot", "mermaid"):
        code, out, err = cli(root, "lineage", "merged", "-f", fmt)
        assert code == 0 and "Traceback" not in err, (fmt, err)
        assert not RAW_CONTROLS & set(out), fmt
        assert sum("cmfq-escape" in line for line in out.splitlines()) == 3, fmt  # in, run, out: one line each
        if fmt == "dot":
            # Each node and edge is one well-formed statement: a raw quote or newline in a
            # name would break out of its string.
            for line in out.splitlines()[3:-1]:
                assert DOT_STATEMENT.fullmatch(line), line


QUOTED = r'"(?:[^"\\\n]|\\.)*"'
DOT_STATEMENT = re.compile(rf"  {QUOTED}( \[label={QUOTED}, shape=[a-z, =]+(, penwidth=2)?\];| -> {QUOTED};)")


@pytest.mark.parametrize("where", [
    "params.k = '1'; DROP TABLE executions",
    "params.\"k\" = 1 OR 1=1",
    "stage = 'x'' OR ''1''=''1'",
    "params.k > 0) UNION SELECT * FROM executions --",
    "metrics.x = read_csv('/etc/passwd')",
])
def test_compare_where_metacharacters_error_or_answer(hostile: tuple[Path, dict[str, str]], where: str) -> None:
    root, _ = hostile
    code, out, err = cli(root, "compare", "--where", where, "-f", "json")
    assert code in (0, 1) and "Traceback" not in err
    if code == 0:
        assert json.loads(out) == []  # no run matches literal text; nothing leaks in
    else:
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    code, out, _ = cli(root, "pipelines", "-f", "json")
    assert len(json.loads(out)) == len(HOSTILE) + 1  # nothing was dropped


def test_compare_where_on_a_hostile_param_value(hostile: tuple[Path, dict[str, str]]) -> None:
    root, ids = hostile
    name = "a; DROP TABLE executions; --"
    escaped = name.replace("'", "''")
    code, out, err = cli(root, "compare", "--where", f"params.k = {HOSTILE.index(name)} AND stage = '{escaped}'",
                         "-f", "json")
    assert code == 0, err
    assert [r["id"] for r in json.loads(out)] == [ids[name]]


def test_app_pages_show_hostile_names(hostile: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import resources

    from streamlit.testing.v1 import AppTest

    root, ids = hostile
    monkeypatch.setenv("CMFQ_WAREHOUSE", str(root))
    at = AppTest.from_file(str(resources.files("cmfq.app").joinpath("Overview.py")), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    for page in ("pages/1_Executions.py", "pages/2_Artifacts.py", "pages/3_Lineage.py", "pages/7_SQL_console.py"):
        at = at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
    at = at.switch_page("pages/1_Executions.py").run()
    shown = at.dataframe[0].value
    assert set(shown["pipeline"].to_list()) == {*HOSTILE, "merge"}
    at = at.switch_page("pages/7_SQL_console.py").run()
    at.text_area[0].input("SELECT pipeline FROM executions").run()
    at.button[0].click().run()
    assert set(at.dataframe[0].value["pipeline"].to_list()) == {*HOSTILE, "merge"}


text = st.text(min_size=1, max_size=60).filter(lambda s: s.strip() and not s.startswith("-"))


@pytest.mark.thorough
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipeline=text, stage=text, key=text, value=st.one_of(text, st.integers(), st.floats(allow_nan=False)))
def test_any_name_round_trips_through_the_cli(pipeline: str, stage: str, key: str, value: object) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _round_trip(Path(tmp) / "wh", pipeline, stage, key, value)


def _round_trip(root: Path, pipeline: str, stage: str, key: str, value: object) -> None:
    with cmfq.Tracker(pipeline, warehouse=root, capture_git=False, capture_env=False) as t:
        with t.execution(stage, params={key: value}) as ex:
            ex.log_output(hash="0" * 32, name=key)
    code, out, err = cli(root, "executions", "-p", pipeline, "-s", stage, "-f", "json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["params"] == {key: value}
    code, out, _ = cli(root, "show", row["id"], "-f", "json")
    shown = json.loads(out)
    assert (shown["pipeline"], shown["stage"], shown["outputs"][0]["name"]) == (pipeline, stage, key)
