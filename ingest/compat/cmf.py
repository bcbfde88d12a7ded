"""``Cmf``: cmflib's logging API, writing into a cmfq warehouse.

    from cmfq.compat.cmf import Cmf                # instead of: from cmflib.cmf import Cmf
    metawriter = Cmf(filepath="mlmd", pipeline_name="Test-env")
    _ = metawriter.create_context(pipeline_stage="Train")
    _ = metawriter.create_execution(execution_type="Train-execution", custom_properties=params)
    _ = metawriter.log_dataset("artifacts/features/train.pkl", "input")
    _ = metawriter.log_model(path="artifacts/model/model.pkl", event="output", model_framework="SKlearn")
    metawriter.finalize()

Facts go to the warehouse of :func:`~cmfq.ingest.compat.store.warehouse_for` through a
:class:`cmfq.Tracker`: the stage is the context, an execution's custom properties are its
params, datasets/models/labels/environments are artifacts identified by their DVC md5,
``log_execution_metrics`` values are final metrics (and a ``metrics`` artifact, the node that
CMF's lineage shows), ``log_metric`` values are step metrics named ``<metrics_name>/<key>``.

As in cmflib, an execution stays current until the next ``create_execution``, so logging
after ``finalize()`` still attaches to it. It is closed as completed when the next one starts
or the process ends, and as failed when the process ends with an uncaught exception.
Differences from cmflib are listed in ``cmfq.compat``'s documentation.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import sys
import threading
import warnings
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from cmfq.errors import InvalidInputError
from cmfq.ingest.cmf_records import TYPE_OF_KIND, stable_int
from cmfq.ingest.compat.store import warehouse_for

if TYPE_CHECKING:
    from cmfq.ingest.compat.frames import CmfNode
    from cmfq.ingest.tracker import Execution, Tracker

__all__ = ["Cmf"]

#: cmflib methods this layer does not provide, with what to do instead.
UNSUPPORTED = {
    "update_context": "stages have no properties of their own in cmfq; annotate them with Tracker.annotate",
    "log_dvc_lock": "import dvc.lock with `cmfq import dvc`",
    "update_dataset_url": "artifact URLs are recorded when logged",
    "update_model_url": "artifact URLs are recorded when logged",
    "update_existing_artifact": "log the artifact again with its properties",
    "log_validation_output": "log the validation result with log_dataset or log_execution_metrics",
    "link_artifacts": "lineage links come from executions' inputs and outputs",
    "read_dataslice": "a data slice's members are in its artifact's properties (`cmfq show <slice>`)",
    "update_dataslice": "commit a new data slice instead",
    "merge_created_context": "import CMF JSON with `cmfq import cmf-json`",
    "merge_created_execution": "import CMF JSON with `cmfq import cmf-json`",
}

_failure: list[str] = []
_hook_lock = threading.Lock()
_hooked = False


class Cmf:
    """cmflib's ``Cmf`` over cmfq (``graph`` is accepted and ignored: lineage is built in)."""

    ARTIFACTS_PATH = "cmf_artifacts"
    DATASLICE_PATH = "dataslice"
    METRICS_PATH = "metrics"

    def __init__(self, filepath: str = "mlmd", pipeline_name: str = "", custom_properties: dict[str, Any] | None = None,
                 graph: bool = False, is_server: bool = False) -> None:
        from cmfq.ingest.compat.frames import CmfNode
        from cmfq.ingest.tracker import Tracker

        if is_server:
            raise InvalidInputError("Cmf(is_server=True) writes into CMF's server database; cmfq has no server.",
                                    hint="Log locally and share with `cmfq push`.")
        if graph:
            warnings.warn("cmfq: Cmf(graph=True) is ignored; lineage is in the warehouse (`cmfq lineage`).",
                          stacklevel=2)
        self.filepath = filepath
        self.pipeline_name = pipeline_name or os.path.basename(os.getcwd())
        self.graph = False
        self.tracker: Tracker = Tracker(self.pipeline_name, warehouse_for(filepath))
        for key, value in (custom_properties or {}).items():
            self.tracker.annotate("pipeline", self.pipeline_name, str(key), str(value))
        self.parent_context = CmfNode(stable_int(self.pipeline_name), self.pipeline_name, "Parent_Context")
        self.child_context: CmfNode | None = None
        self.execution: CmfNode | None = None
        self.execution_name = ""
        self.metrics: dict[str, dict[int, dict[str, Any]]] = {}
        self._stage: str | None = None
        self._ex: Execution | None = None
        _hook_exceptions()
        # Registered after the tracker's own handler, so it runs first (atexit is last-in, first-out).
        atexit.register(self._at_exit)

    # -- contexts and executions ----------------------------------------------------------------

    def create_context(self, pipeline_stage: str, custom_properties: dict[str, Any] | None = None) -> CmfNode:
        """Make ``pipeline_stage`` the stage of the executions created next."""
        from cmfq.ingest.compat.frames import CmfNode, Value

        self._stage = pipeline_stage
        full = f"{self.pipeline_name}/{pipeline_stage}"
        for key, value in (custom_properties or {}).items():
            self.tracker.annotate("stage", full, str(key), str(value))
        self.child_context = CmfNode(stable_int(full), full, "Pipeline_Stage", {"Pipeline_Stage": Value(full)},
                                     {k: Value.of(v) for k, v in (custom_properties or {}).items()})
        return self.child_context

    def create_execution(self, execution_type: str, custom_properties: dict[str, Any] | None = None,
                         cmd: str | None = None, create_new_execution: bool = True) -> CmfNode:
        """Start an execution of the current stage (the previous one is closed as completed);
        ``custom_properties`` are its params."""
        if self._stage is None:
            self.create_context(_script_name())
        self._end("completed")
        properties = {"cmf": {"execution_type": execution_type, **({"cmd": cmd} if cmd else {})}}
        self._ex = self.tracker.execution(str(self._stage), dict(custom_properties or {}), type=execution_type,
                                          properties=properties)
        self.execution_name = f"{self._ex.id},{execution_type}"
        self._refresh(execution_type)
        assert self.execution is not None
        return self.execution

    def update_execution(self, execution_id: Any, custom_properties: dict[str, Any] | None = None) -> CmfNode:
        """Add ``custom_properties`` to the params of the current execution."""
        ex = self._current()
        if str(execution_id) != ex.id:
            raise InvalidInputError(f"Execution {execution_id} is not the current execution of this Cmf ({ex.id}).",
                                    hint="cmfq can only update the execution it is logging.")
        ex.log_params(dict(custom_properties or {}))
        self._refresh(self.execution.name if self.execution else str(ex.id))
        assert self.execution is not None
        return self.execution

    def finalize(self) -> None:
        """Make everything logged so far durable. The execution stays current (cmflib commits to
        git here; cmfq never touches git), so later calls still attach to it."""
        self.tracker.flush()

    def close(self) -> None:
        """Close the current execution as completed and the tracker (done at exit otherwise)."""
        atexit.unregister(self._at_exit)
        self._end("completed")
        self.tracker.close()

    def __enter__(self) -> Cmf:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            self._end("failed", f"{exc_type.__name__ if exc_type else 'Error'}: {exc}")
        self.close()

    # -- artifacts ----------------------------------------------------------------------------------

    def log_dataset(self, url: str, event: str, custom_properties: dict[str, Any] | None = None,
                    label: str | None = None, label_properties: dict[str, Any] | None = None,
                    external: bool = False) -> CmfNode:
        """Log a dataset (file or folder) read (``event="input"``) or written (``"output"``)."""
        node = self._log(url, event, "dataset", dict(custom_properties or {}), external=external)
        if label:
            self.log_label(label, url, label_properties)
        return node

    def log_model(self, path: str, event: str, model_framework: str = "Default", model_type: str = "Default",
                  model_name: str = "Default", custom_properties: dict[str, Any] | None = None) -> CmfNode:
        """Log a model file read or written by the current execution."""
        props = {"model_framework": str(model_framework), "model_type": str(model_type),
                 "model_name": str(model_name), **(custom_properties or {})}
        return self._log(path, event, "model", props)

    def log_label(self, url: str, dataset_name: str, custom_properties: dict[str, Any] | None = None) -> CmfNode:
        """Log a label file of ``dataset_name`` as an input; the dataset is annotated with it."""
        ex = self._current()
        dataset_hash = self._hash(dataset_name)
        digest = ex.log_input(url, kind="label", properties={**(custom_properties or {}), "dataset_uri": dataset_hash})
        self.tracker.annotate("artifact", dataset_hash, "labels_uri", f"{url}:{digest}")
        return self._node(digest, url, "label", custom_properties or {})

    def log_python_env(self, url: str) -> CmfNode:
        """Log a file describing the Python environment as an input (cmfq also records the running
        environment of every execution by itself)."""
        return self._log(url, "input", "env", {})

    def log_execution_metrics(self, metrics_name: str, custom_properties: dict[str, Any] | None = None) -> CmfNode:
        """Log final metrics: numbers become the execution's metrics, and a ``metrics`` artifact
        named ``metrics_name`` carries them all as an output."""
        ex = self._current()
        values = dict(custom_properties or {})
        ex.log_metrics({k: float(v) for k, v in values.items() if _number(v)})
        digest = _content_id({"execution": ex.id, "name": metrics_name, "values": values})
        ex.log_output(hash=digest, name=metrics_name, kind="metrics", properties=values)
        return self._node(digest, metrics_name, "metrics", values)

    def log_metric(self, metrics_name: str, custom_properties: dict[str, Any] | None = None) -> None:
        """Log one step of ``metrics_name`` (steps count from 1): each number is recorded at once as
        the step metric ``<metrics_name>/<key>``."""
        ex = self._current()
        points = self.metrics.setdefault(metrics_name, {})
        step = max(points, default=0) + 1
        values = dict(custom_properties or {})
        points[step] = values
        for key, value in values.items():
            if _number(value):
                ex.log_metric(f"{metrics_name}/{key}", float(value), step=step)

    def commit_metrics(self, metrics_name: str) -> CmfNode:
        """Log the step metrics of ``metrics_name`` as a ``step_metrics`` output artifact."""
        ex = self._current()
        if metrics_name not in self.metrics:
            raise InvalidInputError(f"No metrics named {metrics_name!r} were logged with log_metric.",
                                    hint=f"Logged so far: {sorted(self.metrics) or 'none'}.")
        points = self.metrics[metrics_name]
        keys = sorted({k for values in points.values() for k in values})
        digest = _content_id({"execution": ex.id, "name": metrics_name, "points": points})
        props = {"metrics_name": metrics_name, "steps": len(points), "keys": keys}
        ex.log_output(hash=digest, name=metrics_name, kind="step_metrics", properties=props)
        return self._node(digest, metrics_name, "step_metrics", props)

    def create_dataslice(self, name: str) -> DataSlice:
        """A named subset of data files; ``add_data`` them, then ``commit``."""
        return DataSlice(name, self)

    # -- internals ----------------------------------------------------------------------------------

    def _current(self) -> Execution:
        if self._ex is None:
            self.create_execution(_script_name())
        assert self._ex is not None
        return self._ex

    def _log(self, path: str, event: str, kind: str, props: dict[str, Any], *, external: bool = False) -> CmfNode:
        ex = self._current()
        direction = str(event).lower()
        if direction not in ("input", "output"):
            raise InvalidInputError(f"event must be 'input' or 'output', not {event!r}.")
        log = ex.log_input if direction == "input" else ex.log_output
        if external or not os.path.exists(path):
            if not external:
                raise InvalidInputError(f"{path!r} does not exist.", hint="Log it after it is written; for data "
                                        "that is not local, pass external=True.")
            from cmfq.ingest.stable_ids import identity_hash

            digest = log(hash=identity_hash("cmf-external", path), name=path, uri=path, kind=kind, properties=props)
        else:
            digest = log(path, kind=kind, properties=props)
        return self._node(digest, path, kind, props)

    def _hash(self, path: str) -> str:
        return self.tracker._hashes.directory(Path(path))[0] if os.path.isdir(path) else \
            self.tracker._hashes.file(path)[0]

    def _node(self, digest: str, name: str, kind: str, props: dict[str, Any]) -> CmfNode:
        from cmfq.ingest.compat.frames import CmfNode, Value

        return CmfNode(digest, f"{name}:{digest}", TYPE_OF_KIND.get(kind, kind), {"Commit": Value(digest)},
                       {k: Value.of(v) for k, v in props.items()}, uri=digest)

    def _refresh(self, execution_type: str) -> None:
        from cmfq.ingest.compat.frames import CmfNode, Value

        ex = self._ex
        assert ex is not None
        full = f"{self.pipeline_name}/{self._stage}"
        props = {"Context_Type": full, "Execution_type_name": full, "Execution_uuid": ex.id,
                 "Pipeline_Type": self.pipeline_name, "Context_ID": stable_int(full),
                 "Pipeline_id": stable_int(self.pipeline_name), "Git_Repo": self.tracker.git.repo or "",
                 "Git_Start_Commit": self.tracker.git.commit or "", "Git_End_Commit": "",
                 "Execution": str(ex._row.get("cmd") or "")}
        self.execution = CmfNode(ex.id, execution_type, execution_type, {k: Value.of(v) for k, v in props.items()},
                                 {k: Value.of(v) for k, v in ex._params.items()})

    def _end(self, status: str, error: str | None = None) -> None:
        if self._ex is not None:
            self._ex.end("failed" if status == "failed" else "completed", error=error)
            self._ex = None

    def _at_exit(self) -> None:
        try:
            if _failure:
                self._end("failed", _failure[-1])
            self.close()
        except Exception as exc:  # at exit there is no one left to raise to
            print(f"cmfq: could not close the execution of {self.pipeline_name!r}: {exc}", file=sys.stderr)

    def __getattr__(self, name: str) -> Any:
        if name in UNSUPPORTED:
            raise InvalidInputError(f"Cmf.{name}() is not supported by cmfq's cmflib compatibility layer.",
                                    hint=UNSUPPORTED[name][:1].upper() + UNSUPPORTED[name][1:] + ".")
        raise AttributeError(f"'Cmf' object has no attribute {name!r}")


class DataSlice:
    """A named set of data files (and per-file properties), committed as one artifact."""

    def __init__(self, name: str, writer: Cmf) -> None:
        self.name = name
        self.writer = writer
        self.props: dict[str, dict[str, Any]] = {}

    def add_data(self, path: str, custom_properties: dict[str, Any] | None = None) -> None:
        """Add a file (or folder) to the slice, with its content hash."""
        if not os.path.exists(path):
            raise InvalidInputError(f"{path!r} does not exist.", hint="Add files that exist to a data slice.")
        self.props[path] = {"hash": self.writer._hash(path), **(custom_properties or {})}

    def commit(self, custom_properties: dict[str, Any] | None = None) -> CmfNode:
        """Log the slice as an output ``dataslice`` artifact, identified by the md5 of its
        members and their hashes; the members are in its properties."""
        ex = self.writer._current()
        members = {path: self.props[path] for path in sorted(self.props)}
        digest = _content_id({path: m["hash"] for path, m in members.items()})
        props = {**(custom_properties or {}), "members": members}
        ex.log_output(hash=digest, name=self.name, kind="dataslice", properties=props)
        return self.writer._node(digest, self.name, "dataslice", props)


def _content_id(value: Any) -> str:
    """md5 of the canonical JSON of ``value``: the id of a logged record that is not a file."""
    return hashlib.md5(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _script_name() -> str:
    """cmflib's default stage and execution name: the running script's name without extension."""
    return Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "default"


def _hook_exceptions() -> None:
    """Remember an uncaught exception, so that executions still open at exit close as failed."""
    global _hooked
    with _hook_lock:
        if _hooked:
            return
        _hooked = True
        previous = sys.excepthook

        def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
            _failure.append(f"{kind.__name__}: {exc}"[:2000])
            previous(kind, exc, tb)

        sys.excepthook = hook
