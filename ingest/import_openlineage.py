"""``cmfq import openlineage``: OpenLineage RunEvents from JSON lines, JSON files, or a folder of them.

All events of one run (same ``runId``) make one execution: started at its ``START`` event (or
its first event), ended and given a status by its last ``COMPLETE`` / ``FAIL`` / ``ABORT``,
with the union of the datasets its events name. The run id is the execution id.

Where a run goes: ``--pipeline`` when given; else cmfq's ``cmfq_execution`` facet; else, when
the run has a ``parent`` facet whose job name prefixes the job's (Airflow's ``dag.task`` under
``dag``, dbt's ``project.model`` under ``project``), that parent job is the pipeline and the
rest of the name the stage; else the job namespace is the pipeline and the job name the stage.

A dataset is identified by cmfq's ``cmfq_artifact`` facet, else by the standard ``version``
facet when it holds a DVC md5, else by ``md5("openlineage:<namespace>/<name>[@<version>]")``;
its facets are kept in the artifact's properties, the run and job facets in the execution's.
Params and metrics come from cmfq's custom facets.

Every event is parsed and checked before anything is written: a truncated line, an event
without ``run.runId`` or a date that is not ISO 8601 fails the import, naming file and line.
Events without a run (dataset or job events) are counted as not imported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmfq.config import warehouse_path
from cmfq.ingest.facts_sink import FactSink, ImportReport, ImportSourceError, Progress, Row, dumps
from cmfq.ingest.openlineage_spec import CUSTOM_FACETS, STATUS_OF_EVENT, dataset_uri
from cmfq.ingest.stable_ids import content_hash_or_none, identity_hash, iso_to_us, uuid_or_derived
from cmfq.warehouse.layout import Layout

#: Runs written per partition batch.
CHUNK = 5000
SUFFIXES = (".json", ".jsonl", ".ndjson")


@dataclass
class _Event:
    where: str
    at: int
    kind: str | None
    data: dict[str, Any]


@dataclass
class _Run:
    run_id: str
    events: list[_Event] = field(default_factory=list)


def import_openlineage(source: str | os.PathLike[str], warehouse: str | os.PathLike[str] | None = None, *,
                       pipeline: str | None = None, progress: Progress | None = None) -> ImportReport:
    """Import the RunEvents in ``source`` (a file or a folder) into ``warehouse``; with
    ``pipeline``, every run goes into that pipeline."""
    label = str(source)
    report = ImportReport("openlineage", label)
    runs: dict[str, _Run] = {}
    for where, data in read_events(Path(source), label):
        run_id = _check(data, where, label, report)
        if run_id is None:
            continue
        kind = data.get("eventType")
        event = _Event(where, iso_to_us(data["eventTime"]), kind, data)
        runs.setdefault(run_id, _Run(run_id)).events.append(event)
    mapped = [_map(run, pipeline, label) for _, run in sorted(runs.items())]
    sink = FactSink(Layout(warehouse_path(warehouse)), report)
    sink.write_checked(mapped, lambda rows: rows.write(sink), CHUNK, progress)
    return report


def read_events(path: Path, label: str) -> Iterator[tuple[str, Any]]:
    """(where, parsed JSON) for every event in a file or a folder of files, in file order."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise ImportSourceError(label, "has no .json or .jsonl files",
                                    hint="Give a JSON-lines file of RunEvents or a folder of .json/.jsonl files.")
    elif path.is_file():
        files = [path]
    else:
        raise ImportSourceError(label, "no such file or folder",
                                hint="Give a JSON-lines file of RunEvents or a folder of .json/.jsonl files.")
    for file in files:
        shown = "" if file == path else file.relative_to(path).as_posix()
        try:
            text = file.read_text("utf-8")
        except UnicodeDecodeError as exc:
            raise ImportSourceError(label, f"is not UTF-8 text ({exc.reason} at byte {exc.start})",
                                    record=shown or None) from None
        stripped = text.lstrip()
        if file.suffix.lower() == ".json" and stripped.startswith(("[", "{")) and _whole_json(stripped):
            data = json.loads(stripped)
            items = data if isinstance(data, list) else [data]
            for i, item in enumerate(items):
                yield (f"{shown or 'event'}[{i}]" if isinstance(data, list) else shown or "event"), item
            continue
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield f"{shown} line {n}".lstrip(), json.loads(line)
            except json.JSONDecodeError as exc:
                raise ImportSourceError(label, f"is not a JSON object ({exc.msg} at column {exc.colno}); the line "
                                        "may be truncated", record=f"{shown} line {n}".lstrip(),
                                        hint="Fix or remove that line and import again; nothing was imported."
                                        ) from None


def _whole_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _check(data: Any, where: str, label: str, report: ImportReport) -> str | None:
    """The run id of a valid RunEvent, None for an event without a run; raises for a bad one."""
    def bad(problem: str) -> ImportSourceError:
        return ImportSourceError(label, problem, record=where,
                                 hint="Fix or remove that event and import again; nothing was imported.")

    if not isinstance(data, dict):
        raise bad(f"is a JSON {type(data).__name__}, not an OpenLineage event object")
    if "run" not in data:
        if "dataset" in data or "job" in data:
            report.skip("dataset or job events without a run")
            return None
        raise bad("has no 'run': not an OpenLineage RunEvent")
    run, job = data.get("run"), data.get("job")
    if not isinstance(run, dict) or not isinstance(run.get("runId"), str) or not run["runId"]:
        raise bad("has no run.runId")
    if not isinstance(job, dict) or not isinstance(job.get("namespace"), str) or not isinstance(job.get("name"), str):
        raise bad("has no job.namespace and job.name")
    if not isinstance(data.get("eventTime"), str):
        raise bad("has no eventTime")
    try:
        iso_to_us(data["eventTime"])
    except ValueError:
        raise bad(f"has eventTime {data['eventTime']!r}, not an ISO 8601 date-time") from None
    kind = data.get("eventType")
    if kind is not None and kind not in STATUS_OF_EVENT:
        raise bad(f"has eventType {kind!r}, not one of {sorted(STATUS_OF_EVENT)}")
    for side in ("inputs", "outputs"):
        datasets = data.get(side) or []
        if not isinstance(datasets, list):
            raise bad(f"'{side}' is not a list")
        for i, ds in enumerate(datasets):
            if not isinstance(ds, dict) or not isinstance(ds.get("namespace"), str) or \
                    not isinstance(ds.get("name"), str):
                raise bad(f"{side}[{i}] has no namespace and name")
    for key in ("facets",):
        if not isinstance(run.get(key, {}), dict) or not isinstance(job.get(key, {}), dict):
            raise bad("run or job facets are not an object")
    return str(run["runId"])


class _Mapped:
    def __init__(self) -> None:
        self.pipeline = ""
        self.execution: Row = {}
        self.artifacts: list[Row] = []
        self.events: list[Row] = []
        self.metrics: list[Row] = []

    def write(self, sink: FactSink) -> None:
        sink.execution(self.execution)
        for row in self.artifacts:
            sink.artifact(self.pipeline, row)
        for row in self.events:
            sink.event(self.pipeline, row)
        for row in self.metrics:
            sink.metric(self.pipeline, row)


def _map(run: _Run, pipeline: str | None, label: str) -> _Mapped:
    events = sorted(run.events, key=lambda e: (e.at, e.where))
    exec_id = uuid_or_derived(run.run_id, "openlineage")
    run_facets: dict[str, Any] = {}
    job_facets: dict[str, Any] = {}
    job: dict[str, Any] = {}
    for e in events:
        run_facets.update(e.data["run"].get("facets") or {})
        job_facets.update(e.data["job"].get("facets") or {})
        job = e.data["job"]
    started = next((e.at for e in events if e.kind == "START"), events[0].at)
    finals = [e for e in events if e.kind in ("COMPLETE", "FAIL", "ABORT")]
    status = (STATUS_OF_EVENT.get(str(finals[-1].kind)) or "completed") if finals else "running"
    ended = finals[-1].at if finals else None
    ours = _facet_fields(run_facets.get("cmfq_execution"))
    params = _facet_fields(run_facets.get("cmfq_params")).get("params") or {}
    parent = _obj(run_facets.get("parent"))
    the_pipeline, stage = _place(pipeline, ours, job, parent)
    git = _obj(ours.get("git"))
    source = _obj(job_facets.get("sourceCodeLocation"))
    error = ours.get("error") or _obj(run_facets.get("errorMessage")).get("message")
    parent_run = _obj(parent.get("run")).get("runId")
    out = _Mapped()
    out.pipeline = the_pipeline
    properties = dict(_obj(ours.get("properties")))
    properties["openlineage"] = {
        "job": {"namespace": job.get("namespace"), "name": job.get("name"),
                "facets": {k: v for k, v in job_facets.items() if k not in ("jobType",)}},
        "run_facets": {k: v for k, v in run_facets.items() if k not in CUSTOM_FACETS},
        "producer": events[-1].data.get("producer")}
    out.execution = {
        "id": exec_id, "pipeline": the_pipeline, "stage": stage,
        "parent_id": uuid_or_derived(str(parent_run), "openlineage") if parent_run else None,
        "type": ours.get("type"), "site": ours.get("site") or None, "host": ours.get("host"),
        "user": ours.get("user"), "cmd": ours.get("cmd"), "env_hash": ours.get("env_hash"),
        "started_at": started, "ended_at": ended, "status": status, "error": error,
        "git_repo": git.get("repo") or source.get("repoUrl") or source.get("url"),
        "git_commit": git.get("commit") or source.get("version"),
        "git_branch": git.get("branch") or source.get("branch"), "git_dirty": git.get("dirty"),
        "params": dumps(params if isinstance(params, dict) else {}), "properties": dumps(properties),
        "at": ended or events[-1].at,
    }
    if out.execution["site"] is None:
        del out.execution["site"]
    seen: set[tuple[str, str]] = set()
    for e in events:
        for side, direction in (("inputs", "in"), ("outputs", "out")):
            for ds in e.data.get(side) or []:
                row = _artifact(ds, e.at)
                if (row["hash"], direction) in seen:
                    continue
                seen.add((row["hash"], direction))
                out.artifacts.append(row)
                out.events.append({"execution_id": exec_id, "artifact_hash": row["hash"], "direction": direction,
                                   "role": None, "name": row["name"], "at": e.at})
    points = _facet_fields(run_facets.get("cmfq_metrics")).get("metrics") or []
    for i, point in enumerate(points if isinstance(points, list) else []):
        try:
            value = float(point["value"])
            step = point.get("step")
            at = iso_to_us(point["at"]) if isinstance(point.get("at"), str) else (ended or started)
            name = str(point["name"])
        except (KeyError, TypeError, ValueError):
            raise ImportSourceError(label, f"metric {i} of facet cmfq_metrics is malformed: {point!r}"[:300],
                                    record=f"run {run.run_id} ({events[-1].where})") from None
        out.metrics.append({"execution_id": exec_id, "name": name,
                            "step": int(step) if isinstance(step, int) and not isinstance(step, bool) else None,
                            "value": value, "at": at})
    return out


def _place(pipeline: str | None, ours: dict[str, Any], job: dict[str, Any], parent: dict[str, Any]
           ) -> tuple[str, str]:
    name, namespace = str(job["name"]), str(job["namespace"])
    if pipeline is not None:
        return pipeline, name
    if isinstance(ours.get("pipeline"), str) and isinstance(ours.get("stage"), str):
        return ours["pipeline"], ours["stage"]
    parent_job = _obj(parent.get("job"))
    parent_name = parent_job.get("name")
    if isinstance(parent_name, str) and parent_name and name.startswith(parent_name + "."):
        return parent_name, name[len(parent_name) + 1:]
    return namespace, name


def _artifact(ds: dict[str, Any], at: int) -> Row:
    facets = _obj(ds.get("facets"))
    ours = _facet_fields(facets.get("cmfq_artifact"))
    namespace, name = str(ds["namespace"]), str(ds["name"])
    version = _facet_fields(facets.get("version")).get("datasetVersion")
    identity = f"{namespace}/{name}" + (f"@{version}" if version not in (None, "") else "")
    digest = (content_hash_or_none(ours.get("hash")) or (str(ours["hash"]) if ours.get("hash") else None)
              or content_hash_or_none(version) or identity_hash("openlineage", identity))
    properties = dict(_obj(ours.get("properties")))
    if not ours:
        properties["openlineage"] = {"namespace": namespace, "name": name, "identity": identity,
                                     "facets": {k: v for k, v in facets.items() if k not in CUSTOM_FACETS}}
    size = ours.get("size")
    return {"hash": digest, "kind": str(ours.get("kind") or "dataset"), "name": str(ours.get("name") or name),
            "uri": ours.get("uri") if ours else dataset_uri(namespace, name),
            "size": size if isinstance(size, int) and not isinstance(size, bool) else None,
            "properties": dumps(properties), "at": at}


def _facet_fields(value: Any) -> dict[str, Any]:
    return {k: v for k, v in _obj(value).items() if not k.startswith("_")}


def _obj(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}
