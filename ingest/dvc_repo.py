"""A DVC project through DVC's own Python API, and the DVC facts of what a logger logs.

:class:`DvcContent` answers a :class:`~cmfq.Tracker`'s question "what is this path?": for a
path DVC tracks, the md5, size and file count come from its ``.dvc`` file or ``dvc.lock``,
and DVC's own hash state (inode, mtime, size -> md5) confirms that the data is still the
version recorded there, without reading it. A path changed since (a stale ``.dvc``) is
hashed, logged under its real hash and reported with :class:`StaleDvcWarning`. With
``add=True``, outputs DVC does not track yet are ``dvc add``-ed (in process, one API call),
and their ``.dvc`` files committed to git on request.

DVC is imported only when a logged path lies in a DVC project (about 0.3 s, once).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cmfq.ingest.dvc import DVCFILE_SUFFIX, LOCKFILE, DvcError, DvcIndex, Tracked, find_root
from cmfq.ingest.hashing import HashCache

#: Set by ``dvc repro`` for the commands of a stage: its outputs are DVC's to record.
ENV_DVC_STAGE = "DVC_STAGE"


class StaleDvcWarning(UserWarning):
    """A DVC-tracked file changed since its ``.dvc`` file (or ``dvc.lock``) was written."""


class DvcRepo:
    """One DVC project, opened through ``dvc.repo.Repo`` on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._repo: Any = None

    @property
    def repo(self) -> Any:
        if self._repo is None:
            from dvc.exceptions import DvcException
            from dvc.repo import Repo

            try:
                self._repo = Repo(str(self.root))
            except DvcException as exc:
                raise DvcError(f"DVC cannot open the project at {self.root}: {exc}.",
                               hint="Check it with `dvc doctor` and `dvc status`.") from None
            self._repo.scm_context.quiet = True  # no "To track the changes with git, run: ..." on stdout
        return self._repo

    def known_md5s(self, paths: Sequence[str]) -> dict[str, str]:
        """md5s DVC's state database holds for files unchanged since DVC hashed them
        (same inode, mtime and size); other files are left out."""
        if not paths:
            return {}
        try:
            repo = self.repo
            found = repo.state.get_many(list(paths), repo.fs, {})
            return {p: h.value for p, _meta, h in found if h is not None and h.name == "md5" and h.value}
        except Exception:  # noqa: BLE001 - the state is an optimisation: without it, we hash
            return {}

    def listing(self, dir_md5: str) -> dict[str, str] | None:
        """relpath -> md5 of a tracked folder, from the ``.dir`` object in DVC's cache."""
        try:
            path = self.repo.cache.local.oid_to_path(dir_md5)
            entries = json.loads(Path(path).read_bytes())
            return {e["relpath"]: e["md5"] for e in entries}
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def add(self, paths: Sequence[Path]) -> list[Path]:
        """``dvc add`` the paths in one API call; returns the ``.dvc`` files written."""
        from dvc.exceptions import DvcException

        try:
            with contextlib.redirect_stdout(io.StringIO()):
                stages = self.repo.add([str(p) for p in paths])
        except DvcException as exc:
            raise DvcError(f"`dvc add {' '.join(str(p) for p in paths)}` failed: {_first_line(exc)}.",
                           hint=_add_hint(exc)) from None
        return [Path(stage.path) for stage in stages]

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None


class DvcContent:
    """The id, size and DVC facts of local paths, for one logger.

    ``describe(path)`` returns ``(hash, size, properties)``. ``properties`` holds
    ``nfiles`` for a folder and, for a DVC-tracked path, ``dvc``: its path in the project,
    the metafile that records it, the dvc.lock stage, the git commit holding that version of
    the metafile (None while it is uncommitted), and ``stale`` when the data changed since.
    """

    def __init__(self, hashes: HashCache, *, message: str = "cmfq: track {path}") -> None:
        self.hashes = hashes
        self.index = DvcIndex()
        self.message = message
        self._repos: dict[Path, DvcRepo] = {}
        self._git = GitRepos()

    def describe(self, path: Path, *, add: bool = False, commit: bool = False,
                 label: str = "") -> tuple[str, int, dict[str, Any]]:
        """``add``: ``dvc add`` the path unless DVC tracks this version of it already.
        ``commit``: commit its ``.dvc`` file (and the ``.gitignore`` beside the data) to git
        if it is not committed yet; ``label`` is appended to the commit message."""
        if not path.is_absolute() or "/." in str(path):
            path = Path(os.path.abspath(path))  # DVC's state is keyed by absolute path
        tracked = self._lookup(path)
        if add and self._should_add(path, tracked):
            tracked = self._add(path)
        if tracked is None:
            return self._plain(path)
        digest, size, nfiles = self._actual(path, tracked)
        expected = self._expected(tracked)
        out = tracked.out
        info: dict[str, Any] = {"path": tracked.path, "file": out.metafile}
        if out.stage:
            info["stage"] = out.stage
        metafile = Path(os.path.join(tracked.root, out.metafile))
        sha = self._git.commit_holding(metafile, tracked.root, self.index.blob_id(os.fspath(metafile)))
        if sha is None and commit and tracked.sub is None and out.metafile.endswith(DVCFILE_SUFFIX):
            message = self.message.format(path=tracked.path) + (f" ({label})" if label else "")
            sha = commit_files(tracked.root, [metafile, (tracked.root / out.path).parent / ".gitignore"], message)
            self._git.forget_head()
        info["commit"] = sha
        if out.legacy:
            info["hash"] = out.hash_name
            if expected is not None and expected != digest and not path.is_dir() and _dos2unix_md5(path) == expected:
                expected = digest  # DVC 2 hashed this text file with its line ends normalised
        if expected is not None and expected != digest and not (out.legacy and path.is_dir()):
            info.update(stale=True, recorded_md5=expected)
            _warn_stale(tracked, digest, expected)
        props: dict[str, Any] = {"dvc": info}
        if nfiles is not None:
            props["nfiles"] = nfiles
        return digest, size, props

    def describe_many(self, paths: Sequence[Path]) -> list[tuple[str, int, dict[str, Any]]]:
        """:meth:`describe` for many paths, asking DVC's state about all their files at once."""
        absolute = [p if p.is_absolute() else Path(os.path.abspath(p)) for p in map(Path, paths)]
        by_root: dict[Path, list[str]] = {}
        for p in absolute:
            root = self.index.root_of(p)
            if root is not None:
                files = [str(f) for f in p.rglob("*") if f.is_file()] if p.is_dir() else [str(p)]
                by_root.setdefault(root, []).extend(files)
        for root, files in by_root.items():
            self._seed(self._repo(root), files)
        return [self.describe(p) for p in absolute]

    def close(self) -> None:
        for repo in self._repos.values():
            repo.close()
        self._repos.clear()
        self._git.close()

    # -- internals ----------------------------------------------------------------------------

    def _repo(self, root: Path) -> DvcRepo:
        if root not in self._repos:
            self._repos[root] = DvcRepo(root)
        return self._repos[root]

    def _lookup(self, path: Path) -> Tracked | None:
        try:
            tracked = self.index.lookup(path)
        except (DvcError, OSError, UnicodeDecodeError) as exc:
            warnings.warn(f"{path}: its DVC metafile cannot be read ({exc}); hashing the file instead.",
                          StaleDvcWarning, stacklevel=6)
            return None
        stage = os.environ.get(ENV_DVC_STAGE)
        if tracked is not None and stage and tracked.out.stage and _same_stage(tracked, stage):
            return None  # `dvc repro` is running this stage: dvc.lock holds the previous run
        return tracked

    def _should_add(self, path: Path, tracked: Tracked | None) -> bool:
        if os.environ.get(ENV_DVC_STAGE):
            return False  # inside `dvc repro`, DVC holds the lock and records the stage's outputs
        if tracked is None:
            return True
        if tracked.sub is not None or not tracked.out.metafile.endswith(DVCFILE_SUFFIX):
            return False  # a stage output or part of a tracked folder: not ours to re-add
        digest, _, _ = self._actual(path, tracked)
        return digest != tracked.out.md5  # stale .dvc file: `dvc add` records the new version

    def _add(self, path: Path) -> Tracked | None:
        root = find_root(path)
        if root is None:
            raise DvcError(f"{path} is not inside a DVC project, so it cannot be `dvc add`-ed.",
                           hint="Run `dvc init` in the project, or log it with dvc=False.")
        self._repo(root).add([path])
        return self.index.lookup(path)

    def _plain(self, path: Path) -> tuple[str, int, dict[str, Any]]:
        if path.is_dir():
            digest, size, nfiles = self.hashes.directory(path)
            return digest, size, {"nfiles": nfiles}
        digest, size = self.hashes.file(path)
        return digest, size, {}

    def _actual(self, path: Path, tracked: Tracked) -> tuple[str, int, int | None]:
        """The path's real hash; files DVC hashed at their current stat are not read."""
        repo = self._repo(tracked.root)
        if path.is_dir():
            files = [str(p) for p in path.rglob("*") if p.is_file()]
            self._seed(repo, files)
            return self.hashes.directory(path)
        self._seed(repo, [str(path)])
        digest, size = self.hashes.file(path)
        return digest, size, None

    def _seed(self, repo: DvcRepo, files: list[str]) -> None:
        unknown = [f for f in files if self.hashes.peek(f) is None]
        for f, md5 in repo.known_md5s(unknown).items():
            self.hashes.remember(f, md5, os.stat(f))

    def _expected(self, tracked: Tracked) -> str | None:
        """The md5 DVC recorded for the path (looked up in the folder's listing for a path
        inside a tracked folder; None when that listing is not in the cache)."""
        out = tracked.out
        if tracked.sub is None or out.md5 is None:
            return out.md5
        listing = self._repo(tracked.root).listing(out.md5)
        if listing is None:
            return None
        if tracked.sub in listing:
            return listing[tracked.sub]
        prefix = tracked.sub + "/"
        inner = sorted(({"md5": m, "relpath": r[len(prefix):]} for r, m in listing.items()
                        if r.startswith(prefix)), key=lambda e: e["relpath"])
        return hashlib.md5(json.dumps(inner, sort_keys=True).encode()).hexdigest() + ".dir" if inner else None



# -- git ---------------------------------------------------------------------------------------------

class GitRepos:
    """GitPython repositories by folder, opened once, with the blob ids of HEAD's DVC
    metafiles listed once per HEAD (one ``git ls-tree``, not one tree walk per file)."""

    #: How long a HEAD read stays fresh: resolving HEAD costs 0.3 ms, too much per file.
    HEAD_TTL_S = 1.0

    def __init__(self) -> None:
        self._repos: dict[Path, Any] = {}
        self._heads: dict[str, tuple[str, dict[str, str]]] = {}  # work tree -> (HEAD, {path: blob id})
        self._checked: dict[str, float] = {}  # work tree -> when HEAD was last read

    def of(self, folder: Path) -> Any | None:
        import git

        if folder not in self._repos:
            try:
                self._repos[folder] = git.Repo(folder, search_parent_directories=True)
            except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandNotFound):
                self._repos[folder] = None
        return self._repos[folder]

    def commit_holding(self, path: Path, where: Path, blob: str | None = None) -> str | None:
        """A commit holding ``path`` byte for byte (checking it out restores this version):
        HEAD's, else None (uncommitted, modified since, or no git). ``where``: the project;
        ``blob``: git's id of the file's bytes, when already known."""
        repo = self.of(where)
        if repo is None or repo.working_tree_dir is None:
            return None
        wt = repo.working_tree_dir
        rel = (str(path)[len(wt) + 1:] if str(path).startswith(wt + os.sep) else os.path.relpath(path, wt))
        rel = rel.replace(os.sep, "/")
        if blob is None:
            try:
                data = path.read_bytes()
            except OSError:
                return None
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's id of these bytes
        head, blobs = self._heads.get(repo.working_tree_dir, ("", {}))
        if blobs.get(rel) == blob:
            return head  # that commit holds these bytes, even if HEAD has moved on since
        now = time.monotonic()
        if now - self._checked.get(repo.working_tree_dir, -self.HEAD_TTL_S) < self.HEAD_TTL_S:
            return None
        self._checked[repo.working_tree_dir] = now
        try:
            current = str(repo.head.commit.hexsha)
        except ValueError:
            return None  # no commit yet
        if current != head:  # a commit since (ours, or the user's): list again
            blobs = _metafile_blobs(repo, current)
            self._heads[repo.working_tree_dir] = (current, blobs)
            return current if blobs.get(rel) == blob else None
        return None

    def forget_head(self) -> None:
        """HEAD just moved (a commit of ours): read it again at the next miss."""
        self._checked.clear()

    def close(self) -> None:
        for repo in self._repos.values():
            if repo is not None:
                repo.close()
        self._repos.clear()


def _metafile_blobs(repo: Any, commit: str) -> dict[str, str]:
    import git

    try:  # ls-tree takes no globs: list the tree, keep the metafiles
        out = repo.git.ls_tree("-r", "-z", commit)
    except git.GitCommandError:
        return {}
    blobs = {}
    for entry in out.split("\0"):
        meta, _, name = entry.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "blob" and (name.endswith(DVCFILE_SUFFIX) or name.endswith(LOCKFILE)):
            blobs[name] = parts[2]
    return blobs


def check_can_version(where: Path, *, add: bool, commit: bool) -> None:
    """Raise a clear :class:`DvcError` now, rather than at the first output, if ``dvc add``
    (``add``) or committing ``.dvc`` files (``commit``) cannot work from ``where``."""
    root = find_root(where)
    if add and root is None:
        raise DvcError(f"{where} is not inside a DVC project, so outputs cannot be `dvc add`-ed.",
                       hint="Run `git init && dvc init` in the project, or log with dvc=False.")
    if commit:
        check_can_commit(root or where)


def check_can_commit(where: Path) -> None:
    """Raise :class:`DvcError` unless a commit made at ``where`` would land on a branch."""
    import git

    try:
        repo = git.Repo(where, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandNotFound):
        raise DvcError(f"{where} is not inside a git repository, so .dvc files cannot be committed.",
                       hint="Run `git init` there, or log with git_commit=False.") from None
    try:
        if repo.head.is_detached:
            raise DvcError(f"HEAD of the git repository at {repo.working_tree_dir} is detached: a commit "
                           "made now would belong to no branch.",
                           hint="Check out a branch (git switch -c <name>), or log with git_commit=False.")
    finally:
        repo.close()


def commit_files(where: Path, files: Sequence[Path], message: str) -> str:
    """Commit exactly ``files`` (whatever else is staged stays staged); returns the commit.

    Files that do not exist are skipped; if none changed, HEAD's commit is returned.
    """
    import git

    check_can_commit(where)
    repo = git.Repo(where, search_parent_directories=True)
    try:
        paths = [os.path.relpath(f, repo.working_tree_dir) for f in files if f.exists()]
        repo.git.add("--", *paths)
        if not repo.git.status("--porcelain", "--", *paths):
            return str(repo.head.commit.hexsha)
        repo.git.commit("-m", message, "--only", "--", *paths)
        return str(repo.head.commit.hexsha)
    except git.GitCommandError as exc:
        raise DvcError(f"`git commit` of {', '.join(paths)} failed: {_git_error(exc)}.",
                       hint="Set your identity (git config user.name / user.email) or fix the repository, "
                       "or log with git_commit=False.") from None
    finally:
        repo.close()


# -- messages ---------------------------------------------------------------------------------------------

def _warn_stale(tracked: Tracked, actual: str, expected: str) -> None:
    out = tracked.out
    fix = (f"`dvc add {out.path}` to track this version" if out.metafile.endswith(DVCFILE_SUFFIX)
           else f"`dvc commit {out.stage or out.path}` (or `dvc repro`) to record this version")
    warnings.warn(f"{tracked.path} changed since {out.metafile} recorded it (DVC has {expected}, the file "
                  f"is {actual}); logged under the file's own hash. Run {fix}, or `dvc checkout "
                  f"{out.path}` to restore the recorded one.", StaleDvcWarning, stacklevel=6)


def _dos2unix_md5(path: Path) -> str:
    """The md5 DVC 2 gave a text file: CRLF read as LF (files are small enough to be text)."""
    return hashlib.md5(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def _same_stage(tracked: Tracked, running: str) -> bool:
    # DVC_STAGE is the stage's address: "train", or "sub/dvc.yaml:train" outside the root.
    name = running.rsplit(":", 1)[-1]
    return tracked.out.stage == name


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")


def _git_error(exc: Exception) -> str:
    stderr = getattr(exc, "stderr", "") or str(exc)
    lines = [ln.strip() for ln in str(stderr).splitlines() if ln.strip() and not ln.strip().startswith("stderr:")]
    return (lines[-1] if lines else str(exc)).strip("'")


def _add_hint(exc: Exception) -> str:
    from dvc.lock import LockError

    if isinstance(exc, LockError):
        return ("Another DVC command holds the project's lock (is this running inside `dvc repro`? Its "
                "stage outputs are recorded in dvc.lock anyway). Log with dvc=False there.")
    return "Run the same `dvc add` by hand to see DVC's full message; log with dvc=False to skip it."
