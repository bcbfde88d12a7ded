"""The package as users get it: small public API, cheap import, a wheel that stands alone."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import cmfq

ROOT = Path(__file__).parents[1]


def test_public_api_is_exactly_these_names() -> None:
    assert sorted(cmfq.__all__) == ["CmfqError", "Execution", "Tracker", "Warehouse", "__version__", "track"]
    for name in cmfq.__all__:
        assert getattr(cmfq, name) is not None


def test_import_is_cheap_and_logging_needs_no_query_stack(tmp_path: Path) -> None:
    code = ("import sys, cmfq; a = set(sys.modules); cmfq.Tracker; b = set(sys.modules);"
            "heavy = ['duckdb', 'polars', 's3fs', 'dvc', 'streamlit', 'git', 'pyarrow'];"
            "print([m for m in heavy if m in a]); print([m for m in heavy if m in b])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    bare, with_tracker = out.stdout.splitlines()
    assert bare == "[]"
    assert with_tracker == "['pyarrow']"  # git is imported only when a tracker captures git state


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a clean copy: a stale build/ folder in a checkout would otherwise put files
    # into the wheel that the sources no longer have.
    import shutil

    src = tmp_path_factory.mktemp("src") / "cmfq"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".cmfq", "demo", ".data", "results",
        "artifacts", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(out), str(src)], check=True, capture_output=True)
    return next(out.glob("cmfq-*.whl"))


def test_wheel_has_one_top_level_package_and_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"cmfq", f"cmfq-{cmfq.__version__}.dist-info"}
    sql_files = sorted(f"cmfq/sql/{p.name}" for p in (ROOT / "sql").glob("*.sql"))
    assert sorted(n for n in names if n.startswith("cmfq/sql/") and n.endswith(".sql")) == sql_files
    for needed in ["cmfq/sql/views.sql", "cmfq/sql/lineage.sql", "cmfq/py.typed",
                   "cmfq/warehouse/query.py", "cmfq/ingest/tracker.py", "cmfq/cli/main.py",
                   "cmfq/app/__init__.py", "cmfq/app/Overview.py", "cmfq/app/pages/3_Lineage.py",
                   "cmfq/app/pages/7_SQL_console.py", "cmfq/data_samples/__init__.py"]:
        assert needed in names, needed


def test_wheel_works_from_a_foreign_folder(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    script = """
import cmfq, sys
assert cmfq.__file__.startswith(sys.argv[1]), cmfq.__file__   # the wheel, not the checkout
with cmfq.Tracker("wheel", warehouse="wh", capture_git=False) as t:
    with t.execution("s", params={"a": 1}) as ex:
        ex.log_output(hash="0" * 32, name="m")
wh = cmfq.Warehouse("wh")
assert wh.ancestors("m").height == 0 and wh.executions().height == 1
print("ok")
"""
    work = tmp_path / "work"
    work.mkdir()
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", script, str(target)], cwd=work, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
