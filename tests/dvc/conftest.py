"""Real git repositories and real DVC 3 projects in tmp_path, built through their own tools."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_tree

GIT_ENV = {"GIT_AUTHOR_NAME": "Tess Ter", "GIT_AUTHOR_EMAIL": "tess@example.com",
           "GIT_COMMITTER_NAME": "Tess Ter", "GIT_COMMITTER_EMAIL": "tess@example.com"}


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    # Commits made by the code under test need an author; a developer's own config stays out.
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.delenv("DVC_STAGE", raising=False)


def git(root: Path, *args: str, date: str | None = None) -> str:
    """Run git in ``root``; returns stdout. ``date`` dates a commit (ISO 8601)."""
    env = {**os.environ, **GIT_ENV, "GIT_CONFIG_GLOBAL": os.devnull}
    if date:
        env |= {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout.strip()


def commit_all(root: Path, message: str, date: str | None = None) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message, date=date)
    return git(root, "rev-parse", "HEAD")


def dvc_init(root: Path, files: Mapping[str, str | bytes] | None = None) -> Any:
    """``git init`` + ``dvc init`` in ``root`` (with ``files`` written); returns DVC's Repo."""
    from dvc.repo import Repo

    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    write_tree(root, dict(files or {}))
    with contextlib.chdir(root), contextlib.redirect_stdout(None):
        repo = Repo.init(str(root))
    repo.scm_context.quiet = True
    return repo


def dvc_add(repo: Any, *targets: str | Path) -> None:
    """``dvc add`` as the user would run it (through DVC's API, quietly)."""
    with contextlib.chdir(repo.root_dir):
        repo.add([str(t) for t in targets])


def dvc_repro(repo: Any) -> None:
    """``dvc repro``: DVC runs stage commands relative to the current folder."""
    with contextlib.chdir(repo.root_dir), contextlib.redirect_stdout(None):
        repo.reproduce()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty git + DVC project, as the current folder, with one commit."""
    root = tmp_path / "proj"
    repo = dvc_init(root)
    repo.close()
    commit_all(root, "dvc init")
    monkeypatch.chdir(root)
    yield root
