"""Facts written outside any pipeline's journal: from the CLI, one durable partition per call.

Annotations (tags, labels, notes, taint, model parameters), deployments and their status
changes, serving metrics. Loggers inside a pipeline use :class:`cmfq.Tracker`'s methods,
which build the same rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from cmfq.errors import InvalidInputError
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.partition import PartitionName
from cmfq.warehouse.writer import write_rows

DEPLOYMENT_STATUSES = ("scheduled", "active", "archived", "failed")
TAINT = "taint"
MODEL_PARAMS = "model_params"


def now_us() -> int:
    return time.time_ns() // 1000


def annotation(entity_kind: str, entity_id: str, key: str, value: str | None) -> dict[str, Any]:
    for what, v in (("entity kind", entity_kind), ("entity id", entity_id), ("key", key)):
        if not isinstance(v, str) or not v.strip():
            raise InvalidInputError(f"The {what} of an annotation must be a non-empty string, got {v!r}.")
    return {"entity_kind": entity_kind, "entity_id": entity_id, "key": key,
            "value": None if value is None else str(value), "at": now_us()}


def artifact(digest: str, kind: str, name: str, *, size: int | None = None, uri: str | None = None,
             site: str | None = None, properties: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"hash": digest, "kind": kind, "name": name, "uri": uri, "size": size,
            "properties": json.dumps(dict(properties or {}), sort_keys=True, default=str),
            "site": site or "local", "at": now_us()}


def deployment(deployment_id: str, model_hash: str, environment: str, status: str, *, site: str,
               project: str | None = None, featureset_hash: str | None = None,
               params: Mapping[str, Any] | None = None, properties: Mapping[str, Any] | None = None,
               at: int | None = None) -> dict[str, Any]:
    if status not in DEPLOYMENT_STATUSES:
        raise InvalidInputError(f"Unknown deployment status {status!r}.",
                                hint=f"Use one of {', '.join(DEPLOYMENT_STATUSES)}.")
    if not environment or not isinstance(environment, str):
        raise InvalidInputError("A deployment needs an environment name, e.g. production.")
    return {"id": deployment_id, "model_hash": model_hash, "project": project, "environment": environment,
            "status": status, "featureset_hash": featureset_hash,
            "params": json.dumps(dict(params or {}), sort_keys=True, default=str),
            "properties": json.dumps(dict(properties or {}), sort_keys=True, default=str),
            "site": site, "at": at if at is not None else now_us()}


def serving_metric(deployment_id: str, name: str, value: float, period_start: int,
                   period_end: int | None = None) -> dict[str, Any]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"Serving metric {name!r} must be a number, got {value!r}.") from None
    return {"deployment_id": deployment_id, "name": name, "period_start": period_start,
            "period_end": period_end, "value": number, "at": now_us()}


def write(layout: Layout, table: str, rows: list[dict[str, Any]], pipeline: str | None = None) -> PartitionName:
    """One durable partition with ``rows``, written now."""
    return write_rows(layout, table, pipeline, rows)
