"""Shared fixtures: builders that make real warehouses and files in tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

import cmfq

BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A test never sees the developer's warehouse or site name.
    monkeypatch.delenv("CMFQ_WAREHOUSE", raising=False)
    monkeypatch.setenv("CMFQ_SITE", "test-site")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> Path:
    """Write ``{"relative/path": content}`` under ``root``; returns ``root``."""
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def make_files(tmp_path: Path) -> Callable[[Mapping[str, str | bytes]], Path]:
    return lambda files: write_tree(tmp_path, files)


@pytest.fixture
def warehouse_dir(tmp_path: Path) -> Path:
    return tmp_path / ".cmfq"


@pytest.fixture
def tracker(warehouse_dir: Path) -> Iterator[cmfq.Tracker]:
    t = cmfq.Tracker("test-pipeline", warehouse=warehouse_dir, capture_git=False)
    yield t
    t.close()


def make_chain(warehouse: Path, pipeline: str, stages: list[str], *, root: str = "raw") -> list[str]:
    """Log a linear chain root -> stage1 -> ... ; returns the artifact hashes in order."""
    hashes = [_fake_hash(f"{pipeline}/{root}")]
    with cmfq.Tracker(pipeline, warehouse=warehouse, capture_git=False, capture_env=False) as t:
        for i, stage in enumerate(stages):
            with t.execution(stage, params={"i": i}) as ex:
                ex.log_input(hash=hashes[-1], name=f"{root}" if i == 0 else f"{stages[i - 1]}.out")
                out = _fake_hash(f"{pipeline}/{stage}/{i}")
                ex.log_output(hash=out, name=f"{stage}.out", kind="model" if i == len(stages) - 1 else "dataset")
                hashes.append(out)
            t.flush()  # one partition per execution, as a slow real pipeline writes them
    return hashes


def _fake_hash(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()


def run_cli(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the installed ``cmfq`` console script as a real subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(BIN / "cmfq"), *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
