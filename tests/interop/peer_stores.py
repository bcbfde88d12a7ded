"""Stores written by the real peers, for the importers' tests: built once, cached (peers.py).

- ``cmflib_example()``: CMF's example pipeline run by cmflib 0.1.0. ``<store>/example/mlmd`` is
  the ML Metadata store it wrote, ``<store>/example/Test-env.json`` its ``dumptojson`` export.
- ``mlflow_example()``: a SQLite store and an ``mlruns/`` folder written by real mlflow calls
  (mlflow_driver.py), and what mlflow itself reads back from each.

The tests only read these folders; a test that damages a store copies it first.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.interop.example_project import EXAMPLE, HERE, STAGES, git_dvc_init, make_project
from tests.interop.peers import cached_store, check, run_peer

MLFLOW_DRIVER = HERE / "mlflow_driver.py"
_EXAMPLE_INPUTS = [*sorted(EXAMPLE.rglob("*.py")), EXAMPLE / "params.yaml", HERE / "example_project.py",
                   Path(__file__)]


def cmflib_example() -> Path:
    """The example project as cmflib left it (see the module's docstring)."""
    return cached_store("cmflib-example", _EXAMPLE_INPUTS, _build_cmflib_example) / "example"


def _build_cmflib_example(folder: Path) -> None:
    root = make_project(folder / "example")
    git_dvc_init(root)
    for name, args in STAGES:
        check(run_peer("cmflib", [f"src/{name}.py", *args], cwd=root))
    # cmflib reports a failed `dvc add` on stderr and goes on: check it logged every artifact
    with sqlite3.connect(root / "mlmd") as con:
        names = {r[0].split(":")[0] for r in con.execute("SELECT name FROM Artifact")}
    assert {"artifacts/data.xml.gz", "artifacts/labels.csv", "artifacts/model/model.pkl", "metrics"} <= names, names
    export = "from cmflib.cmfquery import CmfQuery; print(CmfQuery('mlmd').dumptojson('Test-env'))"
    (root / "Test-env.json").write_text(check(run_peer("cmflib", ["-c", export], cwd=root)).strip().splitlines()[-1])


def mlflow_example() -> dict[str, Any]:
    """``{"sqlite" | "file": {"uri": ..., "read": <what mlflow reads back>}, "root": folder}``."""
    root = cached_store("mlflow-example", [MLFLOW_DRIVER, Path(__file__)], _build_mlflow_example)
    out: dict[str, Any] = json.loads((root / "stores.json").read_text())
    out["root"] = root
    return out


def _build_mlflow_example(root: Path) -> None:
    out: dict[str, Any] = {}
    for kind, uri in (("sqlite", f"sqlite:///{root / 'mlflow.db'}"), ("file", f"file://{root / 'mlruns'}")):
        env = {"MLFLOW_ALLOW_FILE_STORE": "true"} if kind == "file" else {}
        check(run_peer("mlflow", [str(MLFLOW_DRIVER), "write", uri], cwd=root, env=env))
        dump = check(run_peer("mlflow", [str(MLFLOW_DRIVER), "read", uri], cwd=root, env=env))
        out[kind] = {"uri": uri, "read": json.loads(dump.strip().splitlines()[-1])}
    (root / "stores.json").write_text(json.dumps(out))


#: What ``python -m tests.interop.peers`` builds for each peer: its stores' folder.
BUILDERS: dict[str, Callable[[], Path]] = {"cmflib": cmflib_example, "mlflow": lambda: mlflow_example()["root"]}
