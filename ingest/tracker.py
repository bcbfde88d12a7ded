"""The logging library: ``cmfq.Tracker`` and the executions it records.

    import cmfq
    t = cmfq.Tracker(pipeline="example-get-started", warehouse=".cmfq")
    with t.execution(stage="train", params={"n_est": 100}) as ex:
        ex.log_input("artifacts/features/train.pkl", kind="dataset")
        for step, loss in enumerate(losses):
            ex.log_metric("loss", loss, step=step)
        ex.log_output("artifacts/model/model.pkl", kind="model")
        ex.log_metrics({"roc_auc": 0.91})

Each call is journaled before it returns (a ``kill -9`` loses nothing that returned) and
costs microseconds; partitions are written in the background when an execution ends.
"""

from __future__ import annotations

import atexit
import contextvars
import datetime as dt
import getpass
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from cmfq.config import default_site, warehouse_path
from cmfq.errors import InvalidInputError
from cmfq.ingest import facts
from cmfq.ingest.dvc_repo import DvcContent, check_can_version
from cmfq.ingest.environment import Environment, current_environment
from cmfq.ingest.gitinfo import GitInfo, git_info
from cmfq.ingest.hashing import HashCache
from cmfq.ingest.ids import uuid7
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.writer import FactWriter, replay_journals

Status = Literal["completed", "failed"]

_current: contextvars.ContextVar[Execution | None] = contextvars.ContextVar("cmfq_execution", default=None)


def current_execution() -> Execution | None:
    """The execution whose ``with`` block is running in this context, if any (what a nested
    execution records as its parent; ``cmfq.track`` uses it to stay in the caller's tracker)."""
    return _current.get()


def _now_us() -> int:
    return time.time_ns() // 1000


def _us(when: dt.datetime | None) -> int | None:
    """Unix microseconds of ``when`` (naive times are taken as UTC)."""
    if when is None:
        return None
    return int((when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp() * 1_000_000)


def _json(value: Mapping[str, Any] | None, what: str) -> str:
    if value is None:
        return "{}"
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{what} must be a mapping of names to values, not {type(value).__name__}.")
    # Values that JSON cannot hold are kept by their text so that nothing is silently dropped.
    return json.dumps(dict(value), sort_keys=True, default=str)


def _merged(base: Mapping[str, Any], extra: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """``extra`` over ``base``; a non-mapping ``extra`` is passed on as is, for _json to refuse."""
    if not base or (extra is not None and not isinstance(extra, Mapping)):
        return extra
    return {**base, **(extra or {})}


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{what} must be a non-empty string, got {value!r}.")
    return value


class Tracker:
    """Logs the executions of one pipeline into a warehouse folder (created if missing).

    Git state (repo, commit, branch, dirty) and the Python environment are captured once,
    when the tracker is created; outside a git repository they are recorded as absent.
    With ``durable=True`` each execution end also fsyncs the journal, so its facts survive
    power loss, not only a crash of the process (costs about 0.2 ms per execution).

    Paths tracked by DVC are identified by the md5 of their ``.dvc`` file or ``dvc.lock``
    entry, without reading the data. ``dvc=True`` runs ``dvc add`` on outputs DVC does not
    track yet (or ``log_output(..., dvc=True)`` per call); ``git_commit=True`` also commits
    their ``.dvc`` files to git. Both are off by default.
    """

    def __init__(
        self,
        pipeline: str,
        warehouse: str | os.PathLike[str] | None = None,
        *,
        site: str | None = None,
        project: str | None = None,
        capture_git: bool = True,
        capture_env: bool = True,
        background: bool = True,
        durable: bool = False,
        dvc: bool = False,
        git_commit: bool = False,
    ) -> None:
        self.pipeline = _name(pipeline, "pipeline")
        if dvc or git_commit:  # fail now with a clear message, not at the first output
            check_can_version(Path.cwd(), add=dvc, commit=git_commit)
        self.layout = Layout(warehouse_path(warehouse))
        self.layout.init(site or default_site())
        self.site = site or str(self.layout.settings().get("site") or default_site())
        self.project = project
        self.durable = durable
        self._background = background
        replay_journals(self.layout)
        self.git = git_info(Path.cwd()) if capture_git else GitInfo()
        self.env: Environment | None = current_environment() if capture_env else None
        self._host = socket.gethostname()
        try:
            self._user: str | None = getpass.getuser()
        except (KeyError, OSError):
            self._user = None
        self._cmd = " ".join(sys.argv) if sys.argv and sys.argv[0] else None
        self._hashes = HashCache(self.layout.cache_dir / "hashes.sqlite")
        self.dvc, self.git_commit = dvc, git_commit
        self._dvc = DvcContent(self._hashes)
        self._seen: set[str] = set()
        self._open: dict[str, Execution] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._writer = self._new_writer()
        self._pid = os.getpid()
        atexit.register(self.close)

    def _new_writer(self) -> FactWriter:
        return FactWriter(self.layout, self.pipeline, uuid7().replace("-", ""),
                          background=self._background, on_rotate=self._rejournal_open)

    # -- public API -------------------------------------------------------------------------

    def execution(
        self,
        stage: str,
        params: Mapping[str, Any] | None = None,
        *,
        type: str | None = None,
        properties: Mapping[str, Any] | None = None,
        parent: Execution | str | None = None,
    ) -> Execution:
        """A new execution of ``stage``; use it as a context manager.

        Leaving the ``with`` block marks it completed; an exception marks it failed (with
        the error's text) and propagates. Inside another tracked execution, the outer one
        is recorded as its parent unless ``parent`` says otherwise.
        """
        self._check_open()
        if parent is None:
            outer = _current.get()
            parent_id = outer.id if outer is not None and outer.tracker.layout == self.layout else None
        else:
            parent_id = parent if isinstance(parent, str) else parent.id
        return Execution(self, _name(stage, "stage"), params, type, properties, parent_id)

    def annotate(self, entity_kind: str, entity_id: str, key: str, value: str | None) -> None:
        """Attach ``key = value`` to an artifact, execution or pipeline (latest wins;
        ``None`` removes it)."""
        self._check_open()
        self._add("annotations", {"entity_kind": _name(entity_kind, "entity kind"),
                                  "entity_id": _name(entity_id, "entity id"), "key": _name(key, "key"),
                                  "value": None if value is None else str(value), "at": _now_us()})
        self._writer.commit()

    def taint(self, artifact: str | os.PathLike[str], reason: str) -> str:
        """Mark an artifact as bad (corrupted, leaked, mislabelled...). Everything downstream of
        it counts as tainted in queries (``cmfq models --tainted``); returns its hash."""
        digest = self._hash_of(artifact)
        self.annotate("artifact", digest, facts.TAINT, _name(reason, "reason"))
        return digest

    def log_model_params(self, model: str | os.PathLike[str], params: Mapping[str, Any]) -> str:
        """The fitted or optimizer parameters of a model (distinct from the run's
        hyper-parameters); the latest call wins. Returns the model's hash."""
        digest = self._hash_of(model)
        self.annotate("artifact", digest, facts.MODEL_PARAMS, _json(params, "model params"))
        return digest

    def log_dataset_stats(self, path: str | os.PathLike[str], *, hash: str | None = None) -> str:
        """Compute per-column statistics of a CSV/TSV/Parquet dataset and record them for the
        artifact (count, nulls, mean, std, min, max, deciles, distinct and top values), so
        datasets can be compared and drift measured later. Returns the dataset's hash."""
        from cmfq.ingest.stats import column_stats, read_table

        self._check_open()
        # The statistics describe an artifact: make sure it is known (kind dataset) as well.
        digest, _ = self._artifact(None if hash else path, kind="dataset", name=None, hash=hash, size=None,
                                   uri=None, properties=None)
        at = _now_us()
        for row in column_stats(read_table(path)):
            self._add("dataset_stats", {"artifact_hash": digest, **row, "at": at})
        self._writer.commit()
        return digest

    def deploy(self, model: str | os.PathLike[str], environment: str, *, status: str = "active",
               featureset: str | os.PathLike[str] | None = None, params: Mapping[str, Any] | None = None,
               properties: Mapping[str, Any] | None = None, at: dt.datetime | None = None) -> Deployment:
        """Record that a model is deployed (or scheduled) in an environment, now or ``at`` a
        given time (for back-filled history); the returned :class:`Deployment` logs status
        changes and serving metrics."""
        self._check_open()
        row = facts.deployment(uuid7(), self._hash_of(model), environment, status, site=self.site,
                               project=self.project, params=params, properties=properties,
                               featureset_hash=self._hash_of(featureset) if featureset is not None else None,
                               at=_us(at))
        self._add("deployments", row)
        self._writer.commit()
        return Deployment(self, row)

    def flush(self) -> None:
        """Wait until everything logged so far is in durable partitions."""
        if not self._closed:
            self._writer.flush()

    def close(self) -> None:
        """Flush and release the journal. Called automatically at interpreter exit."""
        if self._closed or os.getpid() != self._pid:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self._writer.close()
        finally:
            self._hashes.close()
            self._dvc.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidInputError(f"The tracker of pipeline {self.pipeline!r} is closed.",
                                    hint="Create a new cmfq.Tracker to log more.")
        if os.getpid() != self._pid:
            self._after_fork()

    def _after_fork(self) -> None:
        # The parent's journal, lock and buffered rows are the parent's: start afresh.
        self._pid = os.getpid()
        self._writer = self._new_writer()
        self._open = {}
        self._seen = set()
        atexit.register(self.close)

    def _add(self, table: str, row: dict[str, Any]) -> None:
        self._writer.add(table, row)

    def _rejournal_open(self) -> None:
        # A partition flushed while an execution is still open must carry that execution's
        # row, and the new journal segment must too, so that replay can close it.
        for ex in list(self._open.values()):
            self._add("executions", ex._row | {"at": _now_us()})

    def _hash_of(self, ref: str | os.PathLike[str]) -> str:
        """The content hash of a path that exists, else ``ref`` taken as a hash."""
        p = Path(ref)
        if p.is_file():
            return self._hashes.file(p)[0]
        if p.is_dir():
            return self._hashes.directory(p)[0]
        return _name(str(ref), "artifact hash or path")

    def _artifact(self, path: str | os.PathLike[str] | None, *, kind: str, name: str | None,
                  hash: str | None, size: int | None, uri: str | None,
                  properties: Mapping[str, Any] | None, dvc_add: bool = False, dvc_commit: bool = False,
                  dvc_label: str = "") -> tuple[str, str]:
        """Resolve an artifact to (hash, name), journaling its row the first time it is seen."""
        _name(kind, "kind")
        if hash is None:
            if path is None:
                raise InvalidInputError("Give the artifact's path, or its hash= if there is no local file.")
            p = Path(path)
            if not p.is_dir() and not p.is_file():
                raise InvalidInputError(f"{str(path)!r} does not exist.",
                                        hint="Log it after it is written, or pass hash= to log it by hash.")
            # DVC's .dvc/dvc.lock hash when DVC tracks the path (nfiles, dvc facts), else hashed here.
            hash, size, found = self._dvc.describe(p, add=dvc_add, commit=dvc_commit, label=dvc_label)
            properties = _merged(found, properties)
            uri = uri or p.resolve().as_uri()
        hash = _name(hash, "hash")
        shown = name or (Path(path).as_posix() if path is not None else hash)
        if hash not in self._seen:
            self._seen.add(hash)
            self._add("artifacts", {"hash": hash, "kind": kind, "name": shown, "uri": uri, "size": size,
                                    "properties": _json(properties, "properties"), "site": self.site,
                                    "at": _now_us()})
        return hash, shown

    def _env_artifact(self) -> str | None:
        if self.env is None:
            return None
        if self.env.hash not in self._seen:
            self._seen.add(self.env.hash)
            props = {"python": self.env.python, "packages": list(self.env.packages)}
            self._add("artifacts", {"hash": self.env.hash, "kind": "env", "name": f"python-{self.env.python}",
                                    "uri": None, "size": len(self.env.text()), "site": self.site,
                                    "properties": json.dumps(props), "at": _now_us()})
        return self.env.hash


class Execution:
    """One run of a stage. Create it with :meth:`Tracker.execution`."""

    def __init__(self, tracker: Tracker, stage: str, params: Mapping[str, Any] | None, type: str | None,
                 properties: Mapping[str, Any] | None, parent_id: str | None) -> None:
        self.tracker = tracker
        self.id = uuid7()
        params_json = _json(params, "params")
        self._params = dict(params or {})
        now = _now_us()
        git = tracker.git
        self._row: dict[str, Any] = {
            "id": self.id, "parent_id": parent_id, "pipeline": tracker.pipeline, "stage": stage,
            "type": type, "project": tracker.project, "site": tracker.site, "host": tracker._host,
            "user": tracker._user, "started_at": now, "ended_at": None, "status": "running",
            "error": None, "cmd": tracker._cmd, "git_repo": git.repo, "git_commit": git.commit,
            "git_branch": git.branch, "git_dirty": git.dirty, "env_hash": tracker._env_artifact(),
            "params": params_json, "properties": _json(_merged(git.properties(), properties), "properties"),
            "at": now,
        }
        self._token: contextvars.Token[Execution | None] | None = None
        self._ended = False
        tracker._open[self.id] = self
        tracker._add("executions", dict(self._row))

    @property
    def status(self) -> str:
        return str(self._row["status"])

    def log_input(self, path: str | os.PathLike[str] | None = None, *, kind: str = "dataset",
                  name: str | None = None, hash: str | None = None, size: int | None = None,
                  uri: str | None = None, role: str | None = None,
                  properties: Mapping[str, Any] | None = None) -> str:
        """Record an artifact this execution read; returns its content hash."""
        return self._event("in", path, kind, name, hash, size, uri, role, properties)

    def log_output(self, path: str | os.PathLike[str] | None = None, *, kind: str = "dataset",
                   name: str | None = None, hash: str | None = None, size: int | None = None,
                   uri: str | None = None, role: str | None = None,
                   properties: Mapping[str, Any] | None = None, dvc: bool | None = None) -> str:
        """Record an artifact this execution wrote; returns its content hash.

        ``dvc=True`` runs ``dvc add`` on it unless DVC tracks it already (default: the
        tracker's ``dvc`` setting)."""
        return self._event("out", path, kind, name, hash, size, uri, role, properties,
                           self.tracker.dvc if dvc is None else dvc)

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        """One metric point: ``step=None`` for a final (coarse) metric, else a per-step value."""
        self._check_running()
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInputError(f"Metric {name!r} must be a number, got {value!r}.") from None
        if step is not None and (not isinstance(step, int) or isinstance(step, bool)):
            raise InvalidInputError(f"The step of metric {name!r} must be an integer, got {step!r}.")
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"A metric name must be a non-empty string, got {name!r}.")
        self.tracker._add("metrics", {"execution_id": self.id, "name": name, "step": step,
                                      "value": number, "at": _now_us()})

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        """Several metrics at once, e.g. ``{"roc_auc": 0.91, "avg_prec": 0.88}``."""
        for key, value in values.items():
            self.log_metric(key, value, step=step)

    def log_model_params(self, model: str | os.PathLike[str], params: Mapping[str, Any]) -> str:
        """See :meth:`Tracker.log_model_params`."""
        return self.tracker.log_model_params(model, params)

    def log_dataset_stats(self, path: str | os.PathLike[str], *, hash: str | None = None) -> str:
        """See :meth:`Tracker.log_dataset_stats`."""
        return self.tracker.log_dataset_stats(path, hash=hash)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Add parameters learnt during the run; they are recorded when the execution ends."""
        self._check_running()
        self._params.update(params)
        self._row["params"] = _json(self._params, "params")

    def end(self, status: Status = "completed", error: str | None = None) -> None:
        """Close the execution (done for you by the ``with`` block)."""
        if self._ended:
            return
        self._ended = True
        now = _now_us()
        self._row.update(status=status, error=error, ended_at=now, at=max(now, self._row["at"] + 1))
        t = self.tracker
        t._open.pop(self.id, None)
        t._add("executions", dict(self._row))
        if t.durable:
            t._writer.sync_journal()
        t._writer.commit()

    def __enter__(self) -> Execution:
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        if self._token is not None:
            _current.reset(self._token)
        if exc is None:
            self.end("completed")
        else:
            self.end("failed", error=f"{exc_type.__name__ if exc_type else 'Error'}: {exc}"[:2000])
        return False

    def _check_running(self) -> None:
        if self._ended:
            raise InvalidInputError(f"Execution {self.id} has ended; start a new one to log more.")

    def _event(self, direction: str, path: str | os.PathLike[str] | None, kind: str, name: str | None,
               hash: str | None, size: int | None, uri: str | None, role: str | None,
               properties: Mapping[str, Any] | None, dvc_add: bool = False) -> str:
        self._check_running()
        t = self.tracker
        digest, shown = t._artifact(path, kind=kind, name=name, hash=hash, size=size, uri=uri,
                                    properties=properties, dvc_add=dvc_add,
                                    dvc_commit=direction == "out" and t.git_commit,
                                    dvc_label=f"{t.pipeline}/{self._row['stage']}, execution {self.id}")
        self.tracker._add("events", {"execution_id": self.id, "artifact_hash": digest,
                                     "direction": direction, "role": role, "name": shown,
                                     "at": _now_us()})
        return digest



class Deployment:
    """A model deployed in an environment. Create it with :meth:`Tracker.deploy`."""

    def __init__(self, tracker: Tracker, row: dict[str, Any]) -> None:
        self.tracker = tracker
        self._row = row
        self.id: str = row["id"]

    @property
    def status(self) -> str:
        return str(self._row["status"])

    def set_status(self, status: str, *, at: dt.datetime | None = None) -> None:
        """Move to ``scheduled``, ``active``, ``archived`` or ``failed`` (now, or ``at`` a given
        time); the timeline keeps every step."""
        self._row = facts.deployment(self.id, self._row["model_hash"], self._row["environment"], status,
                                     site=self._row["site"], project=self._row["project"],
                                     featureset_hash=self._row["featureset_hash"],
                                     params=json.loads(self._row["params"]),
                                     properties=json.loads(self._row["properties"]),
                                     at=max(_us(at) or _now_us(), self._row["at"] + 1))
        self.tracker._add("deployments", dict(self._row))
        self.tracker._writer.commit()

    def log_serving_metric(self, name: str, value: float, *, period_start: int | None = None,
                           period_end: int | None = None) -> None:
        """A serving metric for a period (Unix µs; defaults to now)."""
        start = period_start if period_start is not None else _now_us()
        self.tracker._add("serving_metrics", facts.serving_metric(self.id, _name(name, "metric name"), value,
                                                                  start, period_end))
        self.tracker._writer.commit()
