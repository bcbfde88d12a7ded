"""The code version of a run: git repo, commit, branch and dirty state (GitPython)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_CREDENTIALS = re.compile(r"(?<=://)[^/@]+@")


@dataclass(frozen=True)
class GitInfo:
    repo: str | None = None
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None


def strip_credentials(url: str) -> str:
    """Drop ``user:token@`` from a remote URL so that secrets never enter the metadata."""
    return _CREDENTIALS.sub("", url)


def git_info(path: str | Path = ".") -> GitInfo:
    """Git state of the repository containing ``path``; all None outside a repository.

    An empty repository has no commit; a detached HEAD has no branch. Neither is an error.
    """
    import git  # GitPython costs 60 ms to import: only trackers that capture git pay it

    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return GitInfo()
    except git.GitCommandNotFound:
        return GitInfo()
    try:
        origin = next(iter(repo.remotes), None)
        url = strip_credentials(next(origin.urls)) if origin is not None else repo.working_tree_dir
    except (StopIteration, git.GitCommandError, ValueError):
        url = repo.working_tree_dir
    try:
        commit = repo.head.commit.hexsha
    except ValueError:  # empty repository: HEAD points to a branch with no commit
        commit = None
    branch = None if repo.head.is_detached else repo.active_branch.name
    try:
        dirty = repo.is_dirty(untracked_files=True)
    except git.GitCommandError:
        dirty = None
    return GitInfo(repo=str(url) if url else None, commit=commit, branch=branch, dirty=dirty)
