"""Import a DVC pipeline's runs as lineage: ``dvc.yaml`` + ``dvc.lock`` at a commit, or
through the whole git history.

Each stage entry of a ``dvc.lock`` is one run of that stage: its command, its parameters
(the values DVC recorded), its ``deps`` (inputs) and ``outs`` (outputs) by md5, and the
numbers in its ``metrics:`` files. A run becomes an execution whose id is derived from the
entry itself (uuid5 of the repository's root commit, the lock file, the stage and the
entry's content), dated and attributed to the oldest commit that holds that entry. So a
stage unchanged across 100 commits is one execution, importing a commit or the history
gives the same rows, and importing again adds nothing: executions already in the warehouse
are skipped.

    report = import_dvc(Layout(Path(".cmfq")), Path("."), history=True)
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmfq.ingest.dvc import (
    LOCKFILE,
    PARAMS_FILE,
    PIPELINE_FILE,
    DvcError,
    DvcOut,
    find_metafiles,
    find_root,
    load_yaml,
    lock_entries,
    parse_lockfile,
    stage_base,
    stage_wdirs,
)
from cmfq.warehouse.layout import Layout

#: Namespace of the uuid5 ids of imported DVC stage runs.
NAMESPACE = uuid.UUID("0b7f3c1e-5a2d-5e8f-9c41-d3a6e2b8f570")
_MODEL_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".onnx", ".h5", ".keras", ".safetensors", ".ckpt")

Progress = Callable[[int, int], None]


@dataclass
class ImportReport:
    """What ``cmfq import dvc`` found and what it added."""

    pipeline: str
    commits: int = 0  # commits read (those that changed a dvc.lock)
    runs: int = 0  # distinct stage runs found
    executions: int = 0  # of which new to the warehouse
    artifacts: int = 0
    metrics: int = 0
    partitions: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Commit:
    sha: str | None  # None: the working tree of a project without git
    at_us: int
    author: str | None
    message: str


@dataclass
class _Run:
    lockfile: str  # posix, relative to the DVC root
    stage: str
    entry: dict[str, Any]
    commit: _Commit
    pipeline_yaml: dict[str, Any] | None

    @property
    def key(self) -> str:
        return _entry_key(self.lockfile, self.stage, self.entry)


def import_dvc(layout: Layout, path: Path, *, history: bool = False, pipeline: str | None = None,
               rev: str = "HEAD", progress: Progress | None = None) -> ImportReport:
    """Import the stage runs of the DVC project at or above ``path`` into the warehouse.

    ``history``: every run recorded in any commit reachable from ``rev``; otherwise the
    runs recorded in ``rev``'s ``dvc.lock`` files (or, without git, the working tree's).
    """
    started = time.perf_counter()
    root = find_root(path) or _pipeline_folder(path)
    source = _Source.open(root, rev)
    try:
        name = pipeline or source.default_pipeline()
        report = ImportReport(name)
        if history and source.git is None:
            raise DvcError(f"{root} is not in a git repository, so it has no history to import.",
                           hint="Drop --history to import the runs in its dvc.lock now.")
        runs = source.runs(None if history else source.current_keys(), report, progress)
        report.runs = len(runs)
        report.notes.extend(source.uncommitted_locks())
        if not runs and not report.notes:
            where = "in its git history" if history else f"at {rev}" if source.git is not None else "in it"
            report.notes.append(f"{root} has no dvc.lock {where}: there are no stage runs to import yet. Run "
                                "`dvc repro` (and commit dvc.lock), then import again.")
        layout.init(_site())
        _write(layout, source, name, runs, report)
    finally:
        source.close()
    report.seconds = time.perf_counter() - started
    return report


def run_id(repo_id: str, lockfile: str, stage: str, entry: dict[str, Any]) -> str:
    """The execution id of one ``dvc.lock`` stage entry (the same on every site and import)."""
    return str(uuid.uuid5(NAMESPACE, f"{repo_id}\n{_entry_key(lockfile, stage, entry)}"))


# -- reading the project, at commits or in the working tree ------------------------------------------

class _Source:
    """A DVC project's metafiles read from git objects (or from disk without git)."""

    def __init__(self, root: Path, git_repo: Any, rev: str) -> None:
        self.root = root
        self.git = git_repo
        self.rev = rev
        self.prefix = "" if git_repo is None else _git_prefix(git_repo, root)
        self._yaml_cache: dict[str, Any] = {}

    @classmethod
    def open(cls, root: Path, rev: str) -> _Source:
        import git

        try:
            repo = git.Repo(root, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandNotFound):
            return cls(root, None, rev)
        try:
            repo.commit(rev)
        except (ValueError, git.BadName, git.GitCommandError):
            repo.close()
            if rev != "HEAD":
                raise DvcError(f"{rev!r} is not a commit of the git repository at {root}.",
                               hint="Give a branch, tag or commit id that exists (git log lists them).") from None
            return cls(root, None, rev)  # no commit yet: the working tree is all there is
        return cls(root, repo, rev)

    def close(self) -> None:
        if self.git is not None:
            self.git.close()

    def default_pipeline(self) -> str:
        """The repository's name (from its first remote's URL), else the project folder's."""
        if self.git is not None:
            for remote in self.git.remotes:
                try:
                    url = next(remote.urls)
                except (StopIteration, ValueError):
                    continue
                base = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
                if base:
                    return base
        return self.root.name or "dvc"

    def repo_id(self) -> str:
        """What makes run ids differ between projects yet agree between clones: the root
        commit of the history, plus where the DVC project sits in the repository."""
        if self.git is None:
            return f"path:{self.root}"
        roots = sorted(self.git.git.rev_list("--max-parents=0", self.rev).split())
        return f"git:{roots[0] if roots else ''}:{self.prefix}"

    def git_url(self) -> str | None:
        from cmfq.ingest.gitinfo import strip_credentials

        if self.git is None:
            return None
        for remote in self.git.remotes:
            try:
                return strip_credentials(next(remote.urls))
            except (StopIteration, ValueError):
                continue
        return None

    def uncommitted_locks(self) -> list[str]:
        """Notes for lock files whose working copy differs from HEAD's: runs not imported."""
        if self.git is None or self.rev != "HEAD":
            return []
        head = self._commit("HEAD")
        notes = []
        for lockfile in self._lockfiles_at(None):
            committed = self.read_bytes(lockfile, head.sha or "HEAD")
            if committed != (self.root / lockfile).read_bytes():
                notes.append(f"{lockfile} has changes not committed to git: commit it (git add {lockfile} && "
                             "git commit) and import again to record those runs.")
        return notes

    # -- runs ------------------------------------------------------------------------------------

    def current_keys(self) -> set[str]:
        """Keys of the runs recorded at ``rev`` (or in the working tree)."""
        commit = self._commit(self.rev) if self.git is not None else None
        return {run.key for run in self._runs_at(commit, self._lockfiles_at(commit))}

    def runs(self, wanted: set[str] | None, report: ImportReport, progress: Progress | None) -> list[_Run]:
        """Runs, each with the oldest commit holding it. ``wanted``: stop once these are all
        found (None: the whole history)."""
        if self.git is None:
            found = list(self._runs_at(None, self._lockfiles_at(None)))
            report.commits = 0
            return found
        first: dict[str, _Run] = {}
        history = self._lock_history()
        for i, (sha, lockfiles) in enumerate(history):
            report.commits += 1
            commit = self._commit(sha)
            for run in self._runs_at(commit, lockfiles):
                first.setdefault(run.key, run)
            if progress is not None:
                progress(i + 1, len(history))
            if wanted is not None and wanted <= first.keys():
                break
        if wanted is not None:
            missing = wanted - first.keys()
            if missing:  # a lock file git does not see change (e.g. a fresh clone, shallow history)
                commit = self._commit(self.rev)
                for run in self._runs_at(commit, self._lockfiles_at(commit)):
                    first.setdefault(run.key, run)
            return [r for k, r in first.items() if k in wanted]
        return list(first.values())

    def _lock_history(self) -> list[tuple[str, list[str]]]:
        """(commit, lock files it changed), oldest first, over the history of ``rev``."""
        specs = [f"{self.prefix}{LOCKFILE}", f"{self.prefix}*/{LOCKFILE}"]
        out = self.git.git.log("--reverse", "--topo-order", "--format=%x00%H", "--name-only", self.rev,
                               "--", *specs)
        history = []
        for block in out.split("\0")[1:]:
            sha, *names = [line.strip() for line in block.strip().splitlines() if line.strip()]
            locks = [n[len(self.prefix):] for n in names if posixpath.basename(n) == LOCKFILE]
            history.append((sha, locks))
        return history

    def _lockfiles_at(self, commit: _Commit | None) -> list[str]:
        if commit is None or commit.sha is None:
            return [p.relative_to(self.root).as_posix() for p in find_metafiles(self.root, lockfiles_only=True)]
        # ls-tree takes no globs: list the project's tree, keep the lock files
        names = self.git.git.ls_tree("-r", "-z", "--name-only", commit.sha, "--", self.prefix or ".").split("\0")
        return [n[len(self.prefix):] for n in names if posixpath.basename(n) == LOCKFILE]

    def _runs_at(self, commit: _Commit | None, lockfiles: list[str]) -> Iterator[_Run]:
        when = commit or self._worktree_commit(lockfiles)
        for lockfile in lockfiles:
            text = self.read(lockfile, when)
            if text is None:
                continue  # deleted in this commit
            pipeline_text = self.read(posixpath.join(posixpath.dirname(lockfile), PIPELINE_FILE), when)
            pipeline = self._yaml(pipeline_text, PIPELINE_FILE) if pipeline_text is not None else None
            for stage, entry in parse_lockfile(text, lockfile).items():
                yield _Run(lockfile, stage, entry, when, pipeline if isinstance(pipeline, dict) else None)

    def _worktree_commit(self, lockfiles: list[str]) -> _Commit:
        mtimes = [(self.root / f).stat().st_mtime_ns // 1000 for f in lockfiles if (self.root / f).exists()]
        return _Commit(None, max(mtimes, default=0), None, "")

    def _commit(self, sha: str) -> _Commit:
        c = self.git.commit(sha)
        return _Commit(c.hexsha, int(c.committed_date) * 1_000_000, c.author.name,
                       str(c.message).strip().splitlines()[0] if str(c.message).strip() else "")

    def read(self, rel: str, commit: _Commit) -> str | None:
        """A file of the project at ``commit`` (the working tree when it has no sha)."""
        if commit.sha is None:
            p = self.root / rel
            return p.read_text("utf-8") if p.is_file() else None
        data = self.read_bytes(rel, commit.sha)
        return None if data is None else data.decode("utf-8")

    def read_bytes(self, rel: str, sha: str) -> bytes | None:
        try:
            blob = self.git.commit(sha).tree / f"{self.prefix}{rel}"
        except KeyError:
            return None
        return bytes(blob.data_stream.read())

    def _yaml(self, text: str, what: str) -> Any:
        if text not in self._yaml_cache:  # dvc.yaml rarely changes: parse each version once
            self._yaml_cache[text] = load_yaml(text, what)
        return self._yaml_cache[text]


# -- turning runs into facts ----------------------------------------------------------------------------

def _write(layout: Layout, source: _Source, pipeline: str, runs: list[_Run], report: ImportReport) -> None:
    from cmfq.warehouse.writer import write_rows

    site = str(layout.settings().get("site") or _site())
    repo_id, git_url = source.repo_id(), source.git_url()
    known = _known_executions(layout, pipeline)
    tables: dict[str, list[dict[str, Any]]] = {"executions": [], "artifacts": [], "events": [], "metrics": []}
    artifacts: dict[str, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: (r.commit.at_us, r.lockfile, r.stage)):
        exec_id = run_id(repo_id, run.lockfile, run.stage, run.entry)
        if exec_id in known:
            continue
        known.add(exec_id)
        facts = _facts(source, run, exec_id, pipeline, site, git_url, report)
        tables["executions"].append(facts["execution"])
        tables["events"].extend(facts["events"])
        tables["metrics"].extend(facts["metrics"])
        for art, produced in facts["artifacts"]:
            # One row per content: the producing stage's sighting, else the first one.
            if art["hash"] not in artifacts or (produced and art["at"] <= artifacts[art["hash"]]["at"]):
                artifacts[art["hash"]] = art
    tables["artifacts"] = sorted(artifacts.values(), key=lambda a: (a["at"], a["hash"]))
    report.executions = len(tables["executions"])
    report.artifacts = len(tables["artifacts"])
    report.metrics = len(tables["metrics"])
    for table, rows in tables.items():
        if rows:
            write_rows(layout, table, pipeline, rows)
            report.partitions += 1


def _facts(source: _Source, run: _Run, exec_id: str, pipeline: str, site: str, git_url: str | None,
           report: ImportReport) -> dict[str, Any]:
    folder = posixpath.dirname(run.lockfile)
    base = posixpath.join(folder, stage_wdirs(run.pipeline_yaml).get(stage_base(run.stage), ""))
    deps = lock_entries(run.entry, "deps", base, run.lockfile, run.stage)
    outs = lock_entries(run.entry, "outs", base, run.lockfile, run.stage)
    metric_paths = _metric_paths(run.pipeline_yaml, run.stage, base, folder)
    at, sha = run.commit.at_us, run.commit.sha
    name = run.stage if not folder else f"{folder}/{PIPELINE_FILE}:{run.stage}"
    cmd = run.entry.get("cmd")
    properties = {"dvc": {"lock": run.lockfile, "stage": run.stage}, "author": run.commit.author,
                  "message": run.commit.message}
    execution = {
        "id": exec_id, "parent_id": None, "pipeline": pipeline, "stage": name, "type": "dvc", "project": None,
        "site": site, "host": None, "user": run.commit.author, "started_at": at, "ended_at": at,
        "status": "completed", "error": None, "cmd": " && ".join(cmd) if isinstance(cmd, list) else cmd,
        "git_repo": git_url, "git_commit": sha, "git_branch": None, "git_dirty": False if sha else None,
        "env_hash": None, "params": _dumps(_params(run.entry.get("params"))), "properties": _dumps(properties),
        "at": at,
    }
    artifacts: list[tuple[dict[str, Any], bool]] = []
    events: list[dict[str, Any]] = []
    for direction, entries in (("in", deps), ("out", outs)):
        for out in entries:
            if out.md5 is None:
                continue  # a dependency hashed otherwise (etag of a cloud URL): no content id
            kind = "metrics" if out.path in metric_paths else _kind(out.path)
            props: dict[str, Any] = {"dvc": {"path": out.path, "file": run.lockfile, "commit": sha}}
            if direction == "out":
                props["dvc"]["stage"] = run.stage
            if out.legacy:
                props["dvc"]["hash"] = out.hash_name
            if out.nfiles is not None:
                props["nfiles"] = out.nfiles
            artifacts.append(({"hash": out.md5, "kind": kind, "name": out.path, "uri": None, "size": out.size,
                               "properties": _dumps(props), "site": site, "at": at}, direction == "out"))
            events.append({"execution_id": exec_id, "artifact_hash": out.md5, "direction": direction,
                           "role": None, "name": out.path, "at": at})
    metrics: list[dict[str, Any]] = []
    for out in outs:
        if out.path in metric_paths:
            values = _metric_values(source, out, run)
            if values is None:
                report.notes.append(f"{run.stage} @ {(sha or 'working tree')[:12]}: metrics file {out.path} "
                                    "is neither in git nor in the DVC cache; its values were not imported.")
                continue
            metrics.extend({"execution_id": exec_id, "name": k, "step": None, "value": v, "at": at}
                           for k, v in sorted(values.items()))
    # Two metrics files naming the same metric keep the last; the key allows one value.
    unique = {m["name"]: m for m in metrics}
    return {"execution": execution, "artifacts": artifacts, "events": events, "metrics": list(unique.values())}


def _metric_paths(pipeline: dict[str, Any] | None, stage: str, base: str, folder: str) -> set[str]:
    """Paths (relative to the DVC root) of the metrics files a stage declares, and of the
    top-level ``metrics:`` list (any stage that outputs one of them)."""
    if not pipeline:
        return set()
    stages = pipeline.get("stages") or {}
    spec = stages.get(stage_base(stage)) if isinstance(stages, dict) else None
    body = spec.get("do") if isinstance(spec, dict) and isinstance(spec.get("do"), dict) else spec
    entries = list((body or {}).get("metrics") or []) if isinstance(body, dict) else []
    paths = {posixpath.normpath(posixpath.join(base, p)) for p in _names(entries)}
    top = pipeline.get("metrics") or []
    paths |= {posixpath.normpath(posixpath.join(folder, p)) for p in _names(top if isinstance(top, list) else [])}
    return paths


def _names(entries: list[Any]) -> Iterator[str]:
    for e in entries:
        if isinstance(e, str) and "${" not in e:
            yield e
        elif isinstance(e, dict):
            yield from (k for k in e if isinstance(k, str) and "${" not in k)


def _metric_values(source: _Source, out: DvcOut, run: _Run) -> dict[str, float] | None:
    """The numbers in a metrics file, in the version the lock records: from git at the run's
    commit when the bytes match, else from the DVC cache, else the working tree's copy."""
    data = None
    if run.commit.sha is not None:
        data = source.read_bytes(out.path, run.commit.sha)
    if data is None or (out.md5 and hashlib.md5(data).hexdigest() != out.md5):
        data = _from_cache(source.root, out.md5) or _from_worktree(source.root, out)
    if data is None:
        return None
    try:
        if out.path.endswith(".toml"):
            import tomllib

            parsed = tomllib.loads(data.decode("utf-8"))
        else:
            parsed = load_yaml(data, out.path)  # YAML reads JSON too
    except (DvcError, ValueError, UnicodeDecodeError):
        return None
    return dict(_flatten(parsed))


def _from_cache(root: Path, md5: str | None) -> bytes | None:
    if md5 is None or md5.endswith(".dir"):
        return None
    path = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    return path.read_bytes() if path.is_file() else None


def _from_worktree(root: Path, out: DvcOut) -> bytes | None:
    path = root / out.path
    if not path.is_file():
        return None
    data = path.read_bytes()
    return data if out.md5 is None or hashlib.md5(data).hexdigest() == out.md5 else None


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}{k}." if prefix or k else prefix)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and prefix:
        yield prefix[:-1], float(value)


def _params(params: Any) -> dict[str, Any]:
    """Lock params ``{file: {key: value}}`` -> ``{key: value}`` for params.yaml, and
    ``{"file:key": value}`` for other files."""
    flat: dict[str, Any] = {}
    for file, values in (params or {}).items() if isinstance(params, dict) else ():
        for key, value in (values or {}).items() if isinstance(values, dict) else ():
            flat[key if posixpath.basename(str(file)) == PARAMS_FILE else f"{file}:{key}"] = value
    return flat


def _kind(path: str) -> str:
    lower = path.lower()
    return "model" if lower.endswith(_MODEL_SUFFIXES) or "model" in posixpath.basename(lower) else "dataset"


def _entry_key(lockfile: str, stage: str, entry: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()
    return f"{lockfile}\n{stage}\n{digest}"


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _known_executions(layout: Layout, pipeline: str) -> set[str]:
    """Ids of this pipeline's executions already in the warehouse (none if it is new)."""
    if not layout.exists() or not any(layout.partitions(["executions"])):
        return set()
    from cmfq.warehouse.query import Warehouse

    with Warehouse(layout.root) as wh:
        return {r[0] for r in wh.sql("SELECT id FROM executions WHERE pipeline = ?", [pipeline]).iter_rows()}


def _git_prefix(repo: Any, root: Path) -> str:
    rel = Path(os.path.relpath(root, repo.working_tree_dir)).as_posix()
    return "" if rel == "." else rel + "/"


def _pipeline_folder(path: Path) -> Path:
    folder = Path(os.path.abspath(path))
    if (folder / LOCKFILE).is_file() or (folder / PIPELINE_FILE).is_file():
        return folder
    raise DvcError(f"{path} is not in a DVC project (no .dvc folder above it, no dvc.yaml or dvc.lock in it).",
                   hint="Give the folder of the DVC project: cmfq import dvc PATH.")


def _site() -> str:
    from cmfq.config import default_site

    return default_site()
