"""``cmfq import mlflow``: an MLflow tracking store (``sqlite:///mlflow.db`` or an ``mlruns/`` folder).

Mapping (read by :mod:`cmfq.ingest.mlflow_store`, without mlflow installed):

- an experiment is a pipeline (its name); a run is an execution whose id is the run id as a
  UUID (``cmfq show <run id prefix>`` finds it);
- stage: a nested run's stage is its run name (the parent run is its ``parent_id``); a
  top-level run's stage is the script it came from (``train`` for ``mlflow.source.name =
  train.py``), else ``run``;
- params as MLflow stored them (text); every metric point with its step and timestamp (two
  points of one metric at the same step: the later one is kept, and counted in the summary);
- user tags become annotations of the execution; all tags, the run name, artifact URI and
  lifecycle are kept in ``properties.mlflow``; git commit/repo/branch come from
  ``mlflow.source.git.*``;
- dataset inputs are input artifacts, identified by their MLflow digest (their content
  hash) or, without one, by ``md5("mlflow:dataset/<name>/<source>")``; the input's
  ``mlflow.data.context`` is the event's role;
- logged models (MLflow 3, and the ``mlflow.log-model.history`` of MLflow 2) are output
  artifacts of the run that logged them, and inputs of runs that used them, identified by
  ``md5("mlflow:model/<model id>")``.

Deleted runs and experiments are left out; traces and the model registry are counted in the
summary as not imported.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import PurePath
from typing import Any

from cmfq.config import warehouse_path
from cmfq.ingest.facts_sink import FactSink, ImportReport, ImportSourceError, Progress, Row, dumps
from cmfq.ingest.mlflow_store import Model, Run, dataset_uri, open_store
from cmfq.ingest.stable_ids import identity_hash, ms_to_us, uuid_or_derived
from cmfq.warehouse.layout import Layout

#: Runs read, mapped and written per partition batch.
CHUNK = 2000
STATUS = {"FINISHED": "completed", "FAILED": "failed", "KILLED": "interrupted", "RUNNING": "running",
          "SCHEDULED": "running"}


def import_mlflow(source: str | os.PathLike[str], warehouse: str | os.PathLike[str] | None = None, *,
                  experiment: str | None = None, progress: Progress | None = None) -> ImportReport:
    """Import the MLflow store ``source`` (only experiment ``experiment`` when given)."""
    label = str(source)
    report = ImportReport("mlflow", label)
    store = open_store(label)
    try:
        experiments = store.experiments()
        wanted = {i for i, (name, stage) in experiments.items() if stage != "deleted"
                  and (experiment is None or name == experiment)}
        if experiment is not None and not wanted:
            raise ImportSourceError(label, f"has no experiment named {experiment!r}",
                                    hint=f"Its experiments are {sorted(n for n, _ in experiments.values())}.")
        report.skip("deleted experiments", sum(1 for _, s in experiments.values() if s == "deleted"))
        for what, count in store.skipped.items():
            report.skip(what, count)
        sink = FactSink(Layout(warehouse_path(warehouse)), report)
        total, done = store.count(wanted), 0
        for runs in store.runs(CHUNK, wanted):
            mapped = [_map(run, label, report) for run in runs if run.lifecycle != "deleted"]
            report.skip("deleted runs", sum(1 for run in runs if run.lifecycle == "deleted"))
            for rows in mapped:
                rows.write(sink)
            sink.flush()
            done += len(runs)
            if progress is not None:
                progress(done, total)
        return report
    finally:
        store.close()


class _Mapped:
    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.execution: Row = {}
        self.artifacts: list[Row] = []
        self.events: list[Row] = []
        self.metrics: list[Row] = []
        self.annotations: list[Row] = []

    def write(self, sink: FactSink) -> None:
        sink.execution(self.execution)
        for table, rows in (("artifact", self.artifacts), ("event", self.events), ("metric", self.metrics),
                            ("annotation", self.annotations)):
            add = getattr(sink, table)
            for row in rows:
                add(self.pipeline, row)


def _map(run: Run, label: str, report: ImportReport) -> _Mapped:
    if run.start_ms is None:
        raise ImportSourceError(label, "has no start time", record=f"run {run.run_id}")
    exec_id = uuid_or_derived(run.run_id, "mlflow")
    tags = run.tags
    parent = tags.get("mlflow.parentRunId")
    start_us = ms_to_us(run.start_ms) or 0
    end_us = ms_to_us(run.end_ms)
    out = _Mapped(run.experiment)
    out.execution = {
        "id": exec_id, "parent_id": uuid_or_derived(parent, "mlflow") if parent else None,
        "pipeline": run.experiment, "stage": stage_of(run), "type": run.name or tags.get("mlflow.runName"),
        "user": run.user or tags.get("mlflow.user"), "started_at": start_us, "ended_at": end_us,
        "status": STATUS.get(run.status.upper(), "completed"),
        "cmd": tags.get("mlflow.source.name") or run.source_name or None,
        "git_repo": tags.get("mlflow.source.git.repoURL"),
        "git_commit": tags.get("mlflow.source.git.commit") or run.source_version or None,
        "git_branch": tags.get("mlflow.source.git.branch"),
        "params": dumps(run.params), "at": end_us or start_us,
        "properties": dumps({"mlflow": {"run_id": run.run_id, "run_name": run.name, "experiment_id": run.experiment_id,
                                        "artifact_uri": run.artifact_uri, "lifecycle_stage": run.lifecycle,
                                        "source_type": run.source_type, "status": run.status, "tags": tags}}),
    }
    for key, value in sorted(tags.items()):
        if not key.startswith("mlflow."):
            out.annotations.append({"entity_kind": "execution", "entity_id": exec_id, "key": key,
                                    "value": value, "at": start_us})
    out.metrics = _metrics(run, exec_id, report)
    for ds in run.datasets:
        digest = (ds.digest or "").strip().lower()
        identity = f"dataset/{ds.name}/{ds.source or ''}"
        digest = digest or identity_hash("mlflow", identity)
        name = ds.name or dataset_uri(ds.source) or digest
        out.artifacts.append({"hash": digest, "kind": "dataset", "name": name, "uri": dataset_uri(ds.source),
                              "at": start_us, "properties": dumps({"mlflow": {
                                  "name": ds.name, "digest": ds.digest, "source_type": ds.source_type,
                                  "source": _json_or_text(ds.source), "schema": _json_or_text(ds.schema),
                                  "profile": _json_or_text(ds.profile), "identity": identity}})})
        out.events.append({"execution_id": exec_id, "artifact_hash": digest, "direction": "in",
                           "role": ds.context, "name": name, "at": start_us})
    for models, direction in ((run.models_out, "out"), (run.models_in, "in")):
        for model in models:
            digest = _model_artifact(model, start_us, out)
            out.events.append({"execution_id": exec_id, "artifact_hash": digest, "direction": direction,
                               "role": None, "name": model.name,
                               "at": (ms_to_us(model.created_ms) or start_us) if direction == "out" else start_us})
    for legacy in _legacy_models(tags.get("mlflow.log-model.history"), run, label):
        digest = _model_artifact(legacy, start_us, out)
        out.events.append({"execution_id": exec_id, "artifact_hash": digest, "direction": "out", "role": None,
                           "name": legacy.name, "at": ms_to_us(legacy.created_ms) or start_us})
    return out


def stage_of(run: Run) -> str:
    """A nested run's name, else the stem of the script the run came from, else ``run``."""
    if run.tags.get("mlflow.parentRunId"):
        return run.name or run.tags.get("mlflow.runName") or "run"
    source = run.tags.get("mlflow.source.name") or run.source_name or ""
    stem = PurePath(source.replace("\\", "/")).stem if source else ""
    return stem if stem and stem not in ("-c", "<stdin>", "ipykernel_launcher") else "run"


def _metrics(run: Run, exec_id: str, report: ImportReport) -> list[Row]:
    latest: dict[tuple[str, int], tuple[int, float]] = {}
    collapsed = 0
    for key, value, ts, step in run.metrics:
        held = latest.get((key, step))
        if held is not None:
            if held == (ts, value):
                continue
            collapsed += 1
            if (ts, _order(value)) <= (held[0], _order(held[1])):
                continue
        latest[(key, step)] = (ts, value)
    report.skip("metric points at a step that another point of the same metric also had (the later kept)",
                collapsed)
    return [{"execution_id": exec_id, "name": key, "step": step, "value": value, "at": ts * 1000}
            for (key, step), (ts, value) in sorted(latest.items())]


def _order(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def _model_artifact(model: Model, default_us: int, out: _Mapped) -> str:
    digest = identity_hash("mlflow", f"model/{model.model_id}")
    out.artifacts.append({"hash": digest, "kind": "model", "name": model.name, "uri": model.artifact_location,
                          "at": ms_to_us(model.created_ms) or default_us,
                          "properties": dumps({"mlflow": {"model_id": model.model_id, "model_type": model.model_type,
                                                          "status": model.status, "params": model.params,
                                                          "tags": model.tags,
                                                          "identity": f"model/{model.model_id}"}})})
    return digest


def _legacy_models(history: str | None, run: Run, label: str) -> list[Model]:
    """Models logged by MLflow 2 (the ``mlflow.log-model.history`` tag)."""
    if not history:
        return []
    try:
        entries = json.loads(history)
    except ValueError:
        raise ImportSourceError(label, "tag mlflow.log-model.history is not JSON", record=f"run {run.run_id}") from None
    models = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        model_id = str(entry.get("model_uuid") or f"{run.run_id}/{entry.get('artifact_path')}")
        if any(m.model_id == model_id for m in run.models_out):
            continue
        models.append(Model(model_id, str(entry.get("artifact_path") or "model"),
                            f"{run.artifact_uri}/{entry.get('artifact_path')}" if run.artifact_uri else None,
                            None, None, None, {}, {"flavors": json.dumps(entry.get("flavors", {}), sort_keys=True)}))
    return models


def _json_or_text(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value
