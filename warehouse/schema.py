"""The tables of the warehouse: columns, identity and how duplicate facts resolve.

This module is the single source of truth for the schema. Parquet partitions are written
with these Arrow schemas, the local DuckDB index creates its tables from them, and the
SQL views rely on the column names below.

Every row is a fact. A row's identity is its ``key`` (derived from content, never a local
autoincrement id). When two rows share a key, ``keep`` decides which one the views show:
``"first"`` keeps the earliest by ``at`` (artifacts: first sighting), ``"last"`` the
latest (execution status, metric values, annotations). Ties on ``at`` are broken by the
row's content, so every site resolves them the same way whatever the load order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

#: Version of the partition format. Stored in each Parquet file's key-value metadata.
FORMAT_VERSION = 1

TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    keep: Literal["first", "last"]
    json_columns: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)


def _schema(*fields: tuple[str, pa.DataType, bool]) -> pa.Schema:
    return pa.schema([pa.field(name, typ, nullable=nullable) for name, typ, nullable in fields])


EXECUTIONS = TableSpec(
    "executions",
    _schema(
        ("id", pa.string(), False),  # UUIDv7
        ("parent_id", pa.string(), True),  # enclosing execution, for nested tracking
        ("pipeline", pa.string(), False),
        ("stage", pa.string(), False),
        ("type", pa.string(), True),
        ("project", pa.string(), True),
        ("site", pa.string(), False),
        ("host", pa.string(), True),
        ("user", pa.string(), True),
        ("started_at", TS, False),
        ("ended_at", TS, True),
        ("status", pa.string(), False),  # running | completed | failed | interrupted
        ("error", pa.string(), True),
        ("cmd", pa.string(), True),
        ("git_repo", pa.string(), True),
        ("git_commit", pa.string(), True),
        ("git_branch", pa.string(), True),
        ("git_dirty", pa.bool_(), True),
        ("env_hash", pa.string(), True),
        ("params", pa.string(), False),  # JSON object
        ("properties", pa.string(), False),  # JSON object
        ("at", TS, False),  # when this version of the row was recorded
    ),
    key=("id",),
    keep="last",
    json_columns=("params", "properties"),
)

ARTIFACTS = TableSpec(
    "artifacts",
    _schema(
        ("hash", pa.string(), False),  # DVC-compatible md5, or "<md5>.dir" for a directory
        ("kind", pa.string(), False),
        ("name", pa.string(), False),
        ("uri", pa.string(), True),
        ("size", pa.int64(), True),
        ("properties", pa.string(), False),  # JSON object
        ("site", pa.string(), False),
        ("at", TS, False),  # first seen at this site
    ),
    key=("hash",),
    keep="first",
    json_columns=("properties",),
)

EVENTS = TableSpec(
    "events",
    _schema(
        ("execution_id", pa.string(), False),
        ("artifact_hash", pa.string(), False),
        ("direction", pa.string(), False),  # in | out
        ("role", pa.string(), True),
        ("name", pa.string(), True),  # the path or name the execution used for it
        ("at", TS, False),
    ),
    key=("execution_id", "artifact_hash", "direction"),
    keep="first",
)

METRICS = TableSpec(
    "metrics",
    _schema(
        ("execution_id", pa.string(), False),
        ("name", pa.string(), False),
        ("step", pa.int64(), True),  # NULL for a coarse (final) metric
        ("value", pa.float64(), False),
        ("at", TS, False),
    ),
    key=("execution_id", "name", "step"),
    keep="last",
)

ANNOTATIONS = TableSpec(
    "annotations",
    _schema(
        ("entity_kind", pa.string(), False),  # artifact | execution | pipeline | ...
        ("entity_id", pa.string(), False),
        ("key", pa.string(), False),
        ("value", pa.string(), True),  # NULL removes the annotation
        ("at", TS, False),
    ),
    key=("entity_kind", "entity_id", "key"),
    keep="last",
)

DEPLOYMENTS = TableSpec(
    "deployments",
    _schema(
        ("id", pa.string(), False),  # UUIDv7 of the deployment
        ("model_hash", pa.string(), False),
        ("project", pa.string(), True),
        ("environment", pa.string(), False),  # e.g. production, staging
        ("status", pa.string(), False),  # scheduled | active | archived | failed
        ("featureset_hash", pa.string(), True),  # the featureset it serves
        ("params", pa.string(), False),  # JSON: serving parameters
        ("properties", pa.string(), False),  # JSON
        ("site", pa.string(), False),
        ("at", TS, False),  # when the deployment entered this status
    ),
    # Every status change is kept (the timeline); views take the latest per id as current.
    key=("id", "at"),
    keep="first",
    json_columns=("params", "properties"),
)

SERVING_METRICS = TableSpec(
    "serving_metrics",
    _schema(
        ("deployment_id", pa.string(), False),
        ("name", pa.string(), False),
        ("period_start", TS, False),
        ("period_end", TS, True),
        ("value", pa.float64(), False),
        ("at", TS, False),
    ),
    key=("deployment_id", "name", "period_start"),
    keep="last",
)

DATASET_STATS = TableSpec(
    "dataset_stats",
    _schema(
        ("artifact_hash", pa.string(), False),
        ("column", pa.string(), False),
        ("dtype", pa.string(), False),
        ("count", pa.int64(), False),  # rows
        ("nulls", pa.int64(), False),
        ("mean", pa.float64(), True),  # numeric columns only
        ("std", pa.float64(), True),
        ("min", pa.float64(), True),
        ("max", pa.float64(), True),
        ("quantiles", pa.list_(pa.float64()), True),  # 0%, 10%, ... 100%
        ("distinct", pa.int64(), True),
        ("top", pa.string(), False),  # JSON: [[value, count], ...] most frequent first
        ("at", TS, False),
    ),
    key=("artifact_hash", "column"),
    keep="last",
    json_columns=("top",),
)

TABLES: dict[str, TableSpec] = {
    t.name: t for t in (EXECUTIONS, ARTIFACTS, EVENTS, METRICS, ANNOTATIONS, DEPLOYMENTS, SERVING_METRICS,
                        DATASET_STATS)
}


def table(name: str) -> TableSpec:
    """The spec of table ``name``; KeyError for an unknown table."""
    return TABLES[name]
