"""The code version of a run: git repo, commit, branch and dirty state (GitPython)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: ``user[:password]@`` right after the scheme. Greedy up to the last ``@`` before the path,
#: so that a password holding an ``@`` does not leave its tail behind.
_CREDENTIALS = re.compile(r"(?<=://)[^/]*@")
#: Dirty paths kept per execution; the count says how many there were in all.
MAX_DIRTY_PATHS = 50


@dataclass(frozen=True)
class GitInfo:
    repo: str | None = None
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    #: The first :data:`MAX_DIRTY_PATHS` modified or untracked paths, relative to the root.
    dirty_paths: tuple[str, ...] = ()
    dirty_count: int = 0
    detached: bool = False
    root: str | None = None

    def properties(self) -> dict[str, Any]:
        """What the execution row has no column for, for its ``properties``."""
        if not self.dirty_count:
            return {}
        return {"git_dirty_paths": list(self.dirty_paths), "git_dirty_count": self.dirty_count}


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
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandNotFound):
        return GitInfo()
    try:
        return _describe(repo)
    finally:
        repo.close()


def _describe(repo: Any) -> GitInfo:
    import git

    try:
        origin = next(iter(repo.remotes), None)
        url = strip_credentials(next(origin.urls)) if origin is not None else repo.working_tree_dir
    except (StopIteration, git.GitCommandError, ValueError):
        url = repo.working_tree_dir
    try:
        commit = repo.head.commit.hexsha
    except ValueError:  # empty repository: HEAD points to a branch with no commit
        commit = None
    detached = repo.head.is_detached
    branch = None if detached else repo.active_branch.name
    try:
        # One porcelain call gives both the flag and the paths (is_dirty would be a second).
        out = repo.git.status("--porcelain=v1", "-z", "--untracked-files=all")
    except git.GitCommandError:
        return GitInfo(repo=str(url) if url else None, commit=commit, branch=branch, detached=detached,
                       root=repo.working_tree_dir)
    paths = _porcelain_paths(out)
    return GitInfo(repo=str(url) if url else None, commit=commit, branch=branch, dirty=bool(paths),
                   dirty_paths=tuple(paths[:MAX_DIRTY_PATHS]), dirty_count=len(paths), detached=detached,
                   root=repo.working_tree_dir)


def _porcelain_paths(out: str) -> list[str]:
    """Paths of ``git status --porcelain=v1 -z`` output: ``XY path``, renames with the old
    path as a second NUL-separated field (skipped)."""
    paths: list[str] = []
    fields = out.split("\0")
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":
            i += 1  # the rename's source path
    return paths
