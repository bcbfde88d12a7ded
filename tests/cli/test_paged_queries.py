"""compare, models and search show a page cut in DuckDB (LIMIT/OFFSET in the query), and the
pages, walked with --offset, are exactly the API's unpaged answer: same rows, same order, ties
and offsets included."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cmfq
from cmfq.cli.main import app

runner = CliRunner()
PAGE = 3


def h(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train runs with tied scores, runs without one, a params key some runs lack, a model
    written by two runs, models no score reaches, and a tainted dataset upstream of some."""
    root = tmp_path_factory.mktemp("paged") / ".cmfq"
    scores = [0.9, 0.8, 0.9, None, 0.7, 0.9, 0.8, None, 0.95, 0.7, 0.9, 0.8, 0.6]
    for p, pipeline in enumerate(("alpha", "beta")):
        with cmfq.Tracker(pipeline, warehouse=root, capture_git=False, capture_env=False) as t:
            for i, score in enumerate(scores):
                params = {"n_est": 50 * (i % 3), "model": "gbm", **({"extra": i} if i % 4 == 0 else {})}
                with t.execution("train", params=params) as ex:
                    ex.log_input(hash=h(f"raw-{i % 2}"), name=f"data/train-{i % 2}.csv")
                    # Runs 5 and 6 of a pipeline write the same model: its producer is the earlier.
                    ex.log_output(hash=h(f"{pipeline}-model-{min(i, 5) if i in (5, 6) else i}"),
                                  name=f"models/{pipeline}/train-{i}.pkl", kind="model")
                    if score is not None:
                        ex.log_metrics({"roc_auc": score - p * 0.01 * (i % 2)})
                t.flush()
    assert runner.invoke(app, ["-w", str(root), "taint", h("raw-1"), "--reason", "leak"]).exit_code == 0
    return root


def pages(wh: Path, *args: str) -> list[dict[str, object]]:
    """Every row the CLI shows, walking --offset a page at a time."""
    rows: list[dict[str, object]] = []
    offset = 0
    while True:
        result = runner.invoke(app, ["-w", str(wh), *args, "-f", "json", "--limit", str(PAGE), "--offset", str(offset)])
        assert result.exit_code == 0, result.output
        page = json.loads(result.stdout)
        more = "more rows" in result.stderr
        # The page was cut by the query: it knows there is more, not how much more.
        assert not more or f"more rows; see them with --offset {offset + PAGE}" in result.stderr
        assert not any(ch.isdigit() for ch in result.stderr.split("more rows")[0]), result.stderr
        rows += page
        if not more:
            assert len(page) <= PAGE
            return rows
        assert len(page) == PAGE
        offset += PAGE


def as_json(frame: object) -> list[dict[str, object]]:
    return json.loads(json.dumps(frame.to_dicts(), default=str))  # type: ignore[attr-defined]


def same(cli_rows: list[dict[str, object]], api_rows: list[dict[str, object]]) -> None:
    assert [r["id" if "id" in r else "hash"] for r in cli_rows] == [r["id" if "id" in r else "hash"] for r in api_rows]
    assert len(cli_rows) == len(api_rows) and cli_rows and all(c.keys() == a.keys() for c, a in zip(cli_rows, api_rows, strict=True))


@pytest.mark.parametrize("extra", [[], ["--asc"], ["--where", "params.n_est >= 50"],
                                   ["--where", "metrics.roc_auc >= 0.8 OR params.extra = 4"], ["--pipeline", "beta"]])
def test_compare_pages_are_the_whole_answer(wh: Path, extra: list[str]) -> None:
    args = ["compare", "--stage", "train", "--metric", "roc_auc", *extra]
    with cmfq.Warehouse(wh) as w:
        kw = {"ascending": "--asc" in extra, "where": extra[1] if extra[:1] == ["--where"] else None,
              "pipeline": extra[1] if extra[:1] == ["--pipeline"] else None}
        full = w.compare("train", "roc_auc", **kw)  # type: ignore[arg-type]
        # The API cuts the page itself: the frame it returns is the page, nothing more.
        page = w.compare("train", "roc_auc", limit=PAGE, offset=PAGE, **kw)  # type: ignore[arg-type]
    assert page.rows() == full.slice(PAGE, PAGE).rows()
    cli_rows = pages(wh, *args)
    same(cli_rows, as_json(full))
    assert [r["roc_auc"] for r in cli_rows] == full["roc_auc"].to_list()
    # The varying params are those of all the runs, not of one page.
    assert {k for k in cli_rows[0] if k.startswith("params.")} == {c for c in full.columns if c.startswith("params.")}
    if not extra:
        assert {"params.n_est", "params.extra"} <= set(full.columns) and "params.model" not in full.columns


@pytest.mark.parametrize("extra", [[], ["--tainted"], ["--clean"]])
def test_models_pages_are_the_whole_answer(wh: Path, extra: list[str]) -> None:
    tainted = {"--tainted": True, "--clean": False}.get(extra[0]) if extra else None
    with cmfq.Warehouse(wh) as w:
        full = w.models(tainted=tainted)  # the models view, every row
        page = w.models(tainted=tainted, limit=PAGE, offset=2)
    assert page.rows() == full.slice(2, PAGE).rows()
    cli_rows = pages(wh, "models", *extra)
    same(cli_rows, as_json(full))
    keep = ("hash", "name", "pipeline", "run_id", "taint")
    assert [{k: r[k] for k in keep} for r in cli_rows] == full.select(keep).to_dicts()
    assert (tainted is None and len(full) == 24) or (tainted is not None and 0 < len(full) < 24)


@pytest.mark.parametrize("text", ["train", "models/alpha", h("raw-1")[:6], "gbm", "xtr", "nothing-matches-this"])
def test_search_pages_are_the_whole_answer(wh: Path, text: str) -> None:
    with cmfq.Warehouse(wh) as w:
        full = w.sql('SELECT * FROM search(?) ORDER BY entity, label, id, field, "match"', [text])
        page = w.search(text, limit=PAGE, offset=PAGE)
    assert page.rows() == full.slice(PAGE, PAGE).rows()
    if full.is_empty():
        result = runner.invoke(app, ["-w", str(wh), "search", text])
        assert result.exit_code == 0 and "no rows" in result.stdout
        return
    assert pages(wh, "search", text) == as_json(full)


def test_small_query_memory_limit_still_answers(wh: Path) -> None:
    """The CLI queries with a small DuckDB memory limit; a query that does not fit in it is
    answered again at the next limit up (QUERY_RETRY_LIMITS, then the usual one), never refused."""
    from cmfq.warehouse.connection import QUERY_RETRY_LIMITS

    with cmfq.Warehouse(wh) as w:
        expected = (w.compare("train", "roc_auc").rows(), w.models().rows())
        usual = w.sql("SELECT current_setting('memory_limit') AS m")["m"][0]
    with cmfq.Warehouse(wh, query_memory_limit="1MB") as w:
        assert (w.compare("train", "roc_auc").rows(), w.models().rows()) == expected
        now = w.sql("SELECT current_setting('memory_limit') AS m")["m"][0]
    with cmfq.Warehouse(wh, query_memory_limit=QUERY_RETRY_LIMITS[0]) as w:
        assert now == w.sql("SELECT current_setting('memory_limit') AS m")["m"][0] != usual


@pytest.mark.parametrize("fmt", ["csv", "json"])
@pytest.mark.parametrize("query", ["SELECT id, pipeline, params, started_at FROM executions ORDER BY id",
                                   "SELECT * FROM executions WHERE false",
                                   "SELECT 1 AS a, [1, 2] AS l, {'x': 'y'} AS s, 'a\nb' AS t, NULL::DOUBLE AS d"])
def test_sql_json_and_csv_stream_the_same_text(wh: Path, query: str, fmt: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`cmfq sql -f csv|json` writes batch by batch (here of 4 rows): the text of the whole frame."""
    import cmfq.cli.commands_query as commands_query
    from cmfq.cli.render import Format, emit

    with cmfq.Warehouse(wh) as w:
        frame = w.sql(query)
    whole = runner.invoke(app, ["-w", str(wh), "sql", "-f", fmt, query])
    monkeypatch.setattr(commands_query, "SQL_BATCH_ROWS", 4)
    batched = runner.invoke(app, ["-w", str(wh), "sql", "-f", fmt, query])
    assert whole.exit_code == batched.exit_code == 0
    assert batched.stdout == whole.stdout
    import contextlib
    import io

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        emit(frame, Format(fmt))
    assert batched.stdout == text.getvalue()
