"""``cmfq export cmf-json``: pipelines in the shape of CMF's JSON export (``cmf metadata export``).

``{"Pipeline": [{name, properties, custom_properties, stages: [{name: "<pipeline>/<stage>",
executions: [{properties, custom_properties, events: [{type, artifact}]}]}]}]}``, the shape
cmflib's ``CmfQuery.dumptojson`` writes and its merger reads back into an MLMD store.

Executions and artifacts that came from CMF keep their original CMF fields (names such as
``<path>:<md5>``, ``Execution_uuid``, git commits...); those logged with cmfq get them built:
``Execution_uuid`` = the execution id, custom properties = params, artifact name
``<name>:<hash>`` with the hash as URI, the environment as an ``Environment`` input, and the
final metrics as a ``Metrics`` output artifact whose custom properties are the values. CMF's
numeric ids are numbered in export order. Step metrics stay out: CMF keeps them in files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

from cmfq.ingest.cmf_records import TYPE_OF_KIND, stable_int, type_of
from cmfq.ingest.stable_ids import identity_hash

if TYPE_CHECKING:
    from cmfq.warehouse.query import Warehouse

_EXECUTIONS = """
SELECT id, pipeline, stage, type, epoch_ms(started_at), epoch_ms(coalesce(ended_at, updated_at)), params::VARCHAR,
       properties::VARCHAR, cmd, git_repo, git_commit, env_hash
FROM executions WHERE ($1::VARCHAR IS NULL OR pipeline = $1) ORDER BY pipeline, started_at, id"""
_EVENTS = """
SELECT e.execution_id, e.direction, e.artifact_hash, coalesce(e.name, a.name, e.artifact_hash), a.kind, a.uri,
       a.properties::VARCHAR, epoch_ms(coalesce(a.first_seen_at, e."at"))
FROM events e JOIN executions x ON x.id = e.execution_id LEFT JOIN artifacts a ON a.hash = e.artifact_hash
WHERE ($1::VARCHAR IS NULL OR x.pipeline = $1) ORDER BY e.execution_id, e."at", e.artifact_hash"""
_FINAL = """
SELECT m.execution_id, m.name, m.value, epoch_ms(m."at") FROM metrics m JOIN executions x ON x.id = m.execution_id
WHERE m.step IS NULL AND ($1::VARCHAR IS NULL OR x.pipeline = $1) ORDER BY 1, 2"""
_NOTES = "SELECT entity_kind, entity_id, key, value FROM annotations WHERE entity_kind IN ('pipeline', 'stage')"
_ENV = "SELECT hash, name, epoch_ms(first_seen_at) FROM artifacts WHERE kind = 'env'"


def export_cmf_json(wh: Warehouse, out: IO[str], *, pipeline: str | None = None) -> int:
    """Write ``{"Pipeline": [...]}`` for every pipeline (or one); returns how many pipelines."""
    pipelines = cmf_pipelines(wh, pipeline=pipeline)
    json.dump({"Pipeline": pipelines}, out, indent=2, ensure_ascii=False, default=str)
    out.write("\n")
    return len(pipelines)


def cmf_pipelines(wh: Warehouse, *, pipeline: str | None = None) -> list[dict[str, Any]]:
    """The pipelines as CMF's export shapes them."""
    builder = _Builder(wh, pipeline)
    return builder.pipelines()


class _Builder:
    def __init__(self, wh: Warehouse, pipeline: str | None) -> None:
        self.executions = wh.relation(_EXECUTIONS, [pipeline]).fetchall()
        self.events: dict[str, list[tuple[Any, ...]]] = {}
        for row in wh.relation(_EVENTS, [pipeline]).fetchall():
            self.events.setdefault(row[0], []).append(row)
        self.final: dict[str, list[tuple[Any, ...]]] = {}
        for row in wh.relation(_FINAL, [pipeline]).fetchall():
            self.final.setdefault(row[0], []).append(row)
        self.notes: dict[tuple[str, str], dict[str, str]] = {}
        for kind, entity, key, value in wh.relation(_NOTES).fetchall():
            self.notes.setdefault((kind, entity), {})[key] = value
        self.envs = {h: (n, t) for h, n, t in wh.relation(_ENV).fetchall()}
        self._ids: dict[str, int] = {}

    def _id(self, key: str) -> int:
        return self._ids.setdefault(key, len(self._ids) + 1)

    def pipelines(self) -> list[dict[str, Any]]:
        grouped: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
        for row in self.executions:
            grouped.setdefault(row[1], {}).setdefault(row[2], []).append(row)
        out = []
        for name, stages in grouped.items():
            rows = [r for s in stages.values() for r in s]
            created, updated = min(r[4] for r in rows), max(r[5] for r in rows)
            out.append({"id": self._id(f"pipeline:{name}"), "name": name, "type": "Parent_Context",
                        "properties": {"Pipeline": name},
                        "custom_properties": self.notes.get(("pipeline", name), {}),
                        "create_time_since_epoch": created, "last_update_time_since_epoch": updated,
                        "stages": [self._stage(name, stage, execs) for stage, execs in stages.items()]})
        return out

    def _stage(self, pipeline: str, stage: str, rows: list[tuple[Any, ...]]) -> dict[str, Any]:
        full = f"{pipeline}/{stage}"
        return {"id": self._id(f"stage:{full}"), "name": full, "type": "Pipeline_Stage",
                "properties": {"Pipeline_Stage": full}, "custom_properties": self.notes.get(("stage", full), {}),
                "create_time_since_epoch": min(r[4] for r in rows),
                "last_update_time_since_epoch": max(r[5] for r in rows),
                "executions": [self._execution(pipeline, full, r) for r in rows]}

    def _execution(self, pipeline: str, stage: str, row: tuple[Any, ...]) -> dict[str, Any]:
        (ex_id, _, _, ex_type, created, updated, params, properties, cmd, git_repo, git_commit, env_hash) = row
        original = (json.loads(properties or "{}").get("cmf") or {}).get("execution") or {}
        props = {"Context_ID": stable_int(stage), "Context_Type": stage, "Execution": cmd or "",
                 "Execution_type_name": stage, "Execution_uuid": ex_id, "Git_End_Commit": "",
                 "Git_Repo": git_repo or "", "Git_Start_Commit": git_commit or "", "Pipeline_Type": pipeline,
                 "Pipeline_id": stable_int(pipeline)}
        props.update(original.get("properties") or {})
        custom = original.get("custom_properties") or _scalars(json.loads(params or "{}"))
        events = [self._event(e, ex_id) for e in self.events.get(ex_id, [])]
        if env_hash and env_hash in self.envs and not any(e["artifact"]["type"] == "Environment" for e in events):
            name, at = self.envs[env_hash]
            events.insert(0, self._artifact_event(3, env_hash, name, "Environment", None, {}, at, ex_id))
        if self.final.get(ex_id) and not any(e["artifact"]["type"] == "Metrics" for e in events):
            values = {name: value for _, name, value, _ in self.final[ex_id]}
            uri = identity_hash("cmfq-metrics", ex_id)
            events.append({"type": 4, "artifact": {
                "id": self._id(f"artifact:{uri}"), "type": "Metrics", "uri": uri,
                "name": f"metrics:{uri}:{ex_id}", "properties": {"metrics_name": f"metrics:{uri}:{ex_id}"},
                "custom_properties": values, "create_time_since_epoch": max(r[3] for r in self.final[ex_id]),
                "last_update_time_since_epoch": max(r[3] for r in self.final[ex_id])}})
        return {"id": self._id(f"execution:{ex_id}"), "name": original.get("name", ""),
                "type": original.get("type") or ex_type or stage.rsplit("/", 1)[-1],
                "properties": props, "custom_properties": custom, "create_time_since_epoch": created,
                "last_update_time_since_epoch": updated, "events": events}

    def _event(self, row: tuple[Any, ...], ex_id: str) -> dict[str, Any]:
        _, direction, digest, shown, kind, uri, properties, at = row
        props = json.loads(properties or "{}")
        original = props.pop("cmf", None) if isinstance(props, dict) else None
        event_type = 3 if direction == "in" else 4
        if isinstance(original, dict) and original.get("name"):
            return {"type": event_type, "artifact": {
                "id": self._id(f"artifact:{digest}"), "type": original.get("type") or type_of(kind or "dataset"),
                "uri": original.get("uri") or digest, "name": original["name"],
                "properties": original.get("properties") or {}, "custom_properties": _scalars(props),
                "create_time_since_epoch": at, "last_update_time_since_epoch": at}}
        return self._artifact_event(event_type, digest, shown, type_of(kind or "dataset"), uri, props, at, ex_id)

    def _artifact_event(self, event_type: int, digest: str, name: str, cmf_type: str, uri: str | None,
                        props: dict[str, Any], at: int, ex_id: str) -> dict[str, Any]:
        if cmf_type == "Metrics":  # cmflib reads back "<name>:<uri>:<execution>"
            full = f"{name}:{digest}:{ex_id}"
            return {"type": event_type, "artifact": {
                "id": self._id(f"artifact:{digest}"), "type": cmf_type, "uri": digest, "name": full,
                "properties": {"metrics_name": full}, "custom_properties": _scalars(props),
                "create_time_since_epoch": at, "last_update_time_since_epoch": at}}
        properties: dict[str, Any] = {"Commit": digest, "url": uri or "", "git_repo": ""}
        for key in ("model_framework", "model_type", "model_name"):
            if cmf_type == TYPE_OF_KIND["model"]:
                properties[key] = str(props.get(key, "Default"))
        return {"type": event_type, "artifact": {
            "id": self._id(f"artifact:{digest}"), "type": cmf_type, "uri": digest, "name": f"{name}:{digest}",
            "properties": properties,
            "custom_properties": _scalars({k: v for k, v in props.items()
                                           if k not in ("model_framework", "model_type", "model_name")}),
            "create_time_since_epoch": at, "last_update_time_since_epoch": at}}


def _scalars(values: dict[str, Any] | Iterable[Any]) -> dict[str, Any]:
    """CMF properties hold text, integers and floats: other values go as JSON text."""
    if not isinstance(values, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, bool):
            out[key] = str(value)
        elif isinstance(value, (int, float, str)):
            out[key] = value
        elif value is not None:
            out[key] = json.dumps(value, sort_keys=True)
    return out
