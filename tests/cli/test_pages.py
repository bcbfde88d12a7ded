"""Every listing shows a page (a default --limit) and says how to see the rest (--offset)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from cmfq.cli.main import app
from tests.conftest import make_chain

runner = CliRunner()
LISTINGS = ["pipelines", "stages", "executions", "artifacts", "metrics", "compare", "models", "search", "techniques",
            "datasets", "rank", "deployments", "serving", "influence"]


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pages") / ".cmfq"
    for i in range(7):
        make_chain(root, f"p{i}", ["train"], root=f"raw{i}")
    return root


def cli(wh: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["-w", str(wh), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stdout, result.stderr


def test_every_listing_pages() -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name in LISTINGS:
        options = {o for p in commands[name].params for o in getattr(p, "opts", [])}
        assert {"--limit", "--offset"} <= options, name
        default = next(p.default for p in commands[name].params if "--limit" in getattr(p, "opts", []))
        assert isinstance(default, int) and default <= 1000, name


@pytest.mark.thorough
@pytest.mark.parametrize("command", ["pipelines", "executions", "artifacts"])
def test_pages_cover_everything_once(wh: Path, command: str) -> None:
    code, out, _ = cli(wh, command, "-f", "json", "--limit", "1000")
    everything = json.loads(out)
    key = "name" if command == "pipelines" else ("id" if command == "executions" else "hash")
    seen: list[str] = []
    for offset in range(0, len(everything) + 3, 3):
        code, out, err = cli(wh, command, "-f", "json", "--limit", "3", "--offset", str(offset))
        page = [r[key] for r in json.loads(out)]
        assert code == 0 and len(page) <= 3
        if offset + 3 < len(everything):
            assert f"--offset {offset + 3}" in err and "more rows" in err
        else:
            assert "more rows" not in err
        seen += page
    assert seen == [r[key] for r in everything]  # same order, nothing twice, nothing missed


def test_the_hint_counts_what_is_left(wh: Path) -> None:
    code, out, err = cli(wh, "pipelines", "--limit", "2")
    assert code == 0 and "5 more rows; see them with --offset 2, or raise --limit" in err
