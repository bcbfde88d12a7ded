"""``cmfq export openlineage``: every execution as OpenLineage RunEvents, one JSON object a line.

Each execution gives a ``START`` event at its start (with its inputs) and, unless it is still
running, a ``COMPLETE``, ``FAIL`` or ``ABORT`` event at its end (inputs and outputs). Params,
metrics and the rest of the execution ride in cmfq's custom facets, the content hash in the
standard ``version`` dataset facet (see :mod:`cmfq.ingest.openlineage_spec`), so that
``cmfq import openlineage`` rebuilds the same lineage, and any OpenLineage consumer
(Marquez, a data catalog) sees jobs, runs and datasets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from cmfq.ingest.openlineage_spec import FINAL_EVENT, RUN_EVENT_SCHEMA, dataset_name, facet, producer
from cmfq.ingest.stable_ids import us_to_iso

if TYPE_CHECKING:
    from cmfq.warehouse.query import Warehouse

#: Executions whose events and metrics are fetched per query.
BATCH = 1000
_EXECUTIONS = """
SELECT id, pipeline, stage, type, status, epoch_us(started_at), epoch_us(ended_at), error, params::VARCHAR, properties::VARCHAR,
       git_repo, git_commit, git_branch, git_dirty, site, host, "user", cmd, env_hash, parent_id
FROM executions WHERE ($1::VARCHAR IS NULL OR pipeline = $1) ORDER BY started_at, id"""
_EVENTS = """
SELECT e.execution_id, e.direction, e.artifact_hash, coalesce(e.name, a.name, e.artifact_hash), a.kind, a.uri,
       a.size, a.name, a.properties::VARCHAR
FROM events e LEFT JOIN artifacts a ON a.hash = e.artifact_hash
WHERE list_contains($1, e.execution_id) ORDER BY e.execution_id, e.direction, e.artifact_hash"""
_METRICS = """
SELECT execution_id, name, step, value, epoch_us("at") FROM metrics WHERE list_contains($1, execution_id)
ORDER BY execution_id, name, step NULLS LAST, "at" """


def export_openlineage(wh: Warehouse, out: IO[str], *, pipeline: str | None = None) -> int:
    """Write the RunEvents of every execution (of ``pipeline``) to ``out``; returns how many."""
    count = 0
    for event in run_events(wh, pipeline=pipeline):
        out.write(json.dumps(event, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n")
        count += 1
    return count


def run_events(wh: Warehouse, *, pipeline: str | None = None) -> Iterator[dict[str, Any]]:
    """The RunEvents of every execution (of ``pipeline``), oldest execution first."""
    executions = wh.relation(_EXECUTIONS, [pipeline]).fetchall()
    stages = {r[0]: (r[1], r[2]) for r in wh.relation("SELECT id, pipeline, stage FROM executions").fetchall()}
    for start in range(0, len(executions), BATCH):
        batch = executions[start:start + BATCH]
        ids = [r[0] for r in batch]
        events: dict[str, list[tuple[Any, ...]]] = {}
        for row in wh.relation(_EVENTS, [ids]).fetchall():
            events.setdefault(row[0], []).append(row)
        metrics: dict[str, list[dict[str, Any]]] = {}
        for ex_id, name, step, value, at in wh.relation(_METRICS, [ids]).fetchall():
            metrics.setdefault(ex_id, []).append({"name": name, "step": step, "value": _number(value),
                                                  "at": _iso(at)})
        for row in batch:
            yield from _events_of(row, events.get(row[0], []), metrics.get(row[0], []), stages)


def _events_of(row: tuple[Any, ...], used: list[tuple[Any, ...]], points: list[dict[str, Any]],
               stages: dict[str, tuple[str, str]]) -> Iterator[dict[str, Any]]:
    (ex_id, pipeline, stage, ex_type, status, started, ended, error, params, properties, git_repo, git_commit,
     git_branch, git_dirty, site, host, user, cmd, env_hash, parent_id) = row
    job_facets: dict[str, Any] = {"jobType": facet("jobType", processingType="BATCH", integration="CMFQ",
                                                   jobType="STAGE")}
    if git_repo:
        job_facets["sourceCodeLocation"] = facet("sourceCodeLocation", type="git", url=git_repo, repoUrl=git_repo,
                                                 **({"version": git_commit} if git_commit else {}),
                                                 **({"branch": git_branch} if git_branch else {}))
    job = {"namespace": pipeline, "name": stage, "facets": job_facets}
    run_facets: dict[str, Any] = {
        "cmfq_execution": facet("cmfq_execution", pipeline=pipeline, stage=stage, status=status, type=ex_type,
                                site=site, host=host, user=user, cmd=cmd, env_hash=env_hash, parent_id=parent_id,
                                error=error, git={"repo": git_repo, "commit": git_commit, "branch": git_branch,
                                                  "dirty": git_dirty},
                                properties=json.loads(properties or "{}")),
        "cmfq_params": facet("cmfq_params", params=json.loads(params or "{}")),
    }
    if parent_id and parent_id in stages:
        parent_pipeline, parent_stage = stages[parent_id]
        run_facets["parent"] = facet("parent", run={"runId": parent_id},
                                     job={"namespace": parent_pipeline, "name": parent_stage})
    inputs = [_dataset(u) for u in used if u[1] == "in"]
    outputs = [_dataset(u) for u in used if u[1] == "out"]
    start = {"eventType": "START", "eventTime": _iso(started), "producer": producer(), "schemaURL": RUN_EVENT_SCHEMA,
             "run": {"runId": ex_id, "facets": run_facets}, "job": job, "inputs": inputs, "outputs": []}
    yield start
    final = FINAL_EVENT.get(status)
    if final is None:
        return
    end_facets = {**run_facets, "cmfq_metrics": facet("cmfq_metrics", metrics=points)}
    if status == "failed" and error:
        end_facets["errorMessage"] = facet("errorMessage", message=error, programmingLanguage="python")
    yield {**start, "eventType": final, "eventTime": _iso(ended or started),
           "run": {"runId": ex_id, "facets": end_facets}, "outputs": outputs}


def _dataset(used: tuple[Any, ...]) -> dict[str, Any]:
    _, _, digest, shown, kind, uri, size, artifact_name, properties = used
    namespace, name = dataset_name(uri, shown)
    return {"namespace": namespace, "name": name, "facets": {
        "version": facet("version", datasetVersion=digest),
        "cmfq_artifact": facet("cmfq_artifact", hash=digest, kind=kind or "dataset", name=artifact_name or shown,
                               uri=uri, size=size, properties=json.loads(properties or "{}")),
    }}


def _iso(us: int) -> str:
    return us_to_iso(us)


def _number(value: float) -> float | str:
    # JSON has no NaN or infinity; they travel as text.
    return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
