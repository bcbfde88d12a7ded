"""Fixtures for the interop tests: stores written by the real cmflib and mlflow, in their own
cached virtualenvs (peers.py). ``make test`` builds them before pytest starts; run on its own,
the first test that needs one builds it (a few minutes on a cold cache)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.interop import peer_stores
from tests.interop.example_project import EXAMPLE, make_project, run_stages


def run_example_on_cmfq(root: Path, scripts: Path = EXAMPLE / "src", params: Path = EXAMPLE / "params.yaml") -> Path:
    """CMF's example project in ``root``, its scripts changed only in their import lines, run
    with our Python: the four stages, then ``query.py`` (its output in ``root/query.out``).
    No git, no DVC, no ``cmf init``; the warehouse is the default ``root/.cmfq``."""
    make_project(root, scripts=scripts, params=params, use="cmfq")
    env = {**os.environ, "CMFQ_SITE": "example", "NEO4J": "False"}
    env.pop("CMFQ_WAREHOUSE", None)
    run_stages(root, env=env)
    query = subprocess.run([sys.executable, "src/query.py", "mlmd"], cwd=root, capture_output=True, text=True,
                           env=env, timeout=120)
    assert query.returncode == 0, query.stderr
    (root / "query.out").write_text(query.stdout)
    return root


@pytest.fixture(scope="session")
def cmfq_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CMF's example pipeline run once on cmfq's compatibility layer (see run_example_on_cmfq)."""
    return run_example_on_cmfq(tmp_path_factory.mktemp("cmfq") / "example")


@pytest.fixture(scope="session")
def cmflib_project() -> Path:
    """CMF's example pipeline run by the real cmflib 0.1.0: ``<dir>/mlmd`` is the store it wrote,
    ``<dir>/Test-env.json`` its ``dumptojson`` export. Read only: copy it before changing it."""
    return peer_stores.cmflib_example()


@pytest.fixture(scope="session")
def mlflow_stores() -> dict[str, Any]:
    """A SQLite store and an mlruns/ folder written by real mlflow calls, and what mlflow itself
    reads back from each (runs, params, tags, metric histories). Read only."""
    return peer_stores.mlflow_example()
