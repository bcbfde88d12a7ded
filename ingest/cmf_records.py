"""CMF's conventions, mapped to cmfq's facts (shared by the MLMD and CMF-JSON importers).

cmflib keeps a pipeline as an MLMD context of type ``Parent_Context``, each stage as a child
context of type ``Pipeline_Stage`` named ``<pipeline>/<stage>``, and each execution inside
one stage context with its user parameters as custom properties and CMF's own fields
(``Execution_uuid``, ``Git_Start_Commit``, ``Execution`` = the command...) as properties.
Artifacts are named ``<path>:<md5>`` (models ``<path>:<md5>:<execution id>``) with the DVC
md5 as their URI; metrics logged with ``log_execution_metrics`` have a uuid as URI and their
values as custom properties.

Both importers present one execution at a time as a :class:`CmfRecord` in the shape of CMF's
JSON export (``cmf metadata export``); :class:`CmfMapper` checks it and adds its rows.

Mapping: execution id = CMF's ``Execution_uuid`` (the same on every copy of a store and in
its JSON export, so both imports of one pipeline agree); params = custom properties; the
``Environment`` input becomes the execution's ``env_hash`` (not a lineage edge, as in cmfq's
own logging); an artifact's id is its DVC md5, or ``md5("cmf:<uri>")`` when it has none;
every original field is kept under ``properties.cmf``. CMF records no execution state:
such executions are imported as completed.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmfq.ingest.facts_sink import FactSink, ImportReport, ImportSourceError, Row, dumps
from cmfq.ingest.stable_ids import (
    content_hash_or_none,
    execution_id,
    identity_hash,
    ms_to_us,
    uuid_or_derived,
)

#: CMF artifact type -> cmfq kind, and back.
KIND_OF_TYPE = {"Dataset": "dataset", "Model": "model", "Metrics": "metrics", "Step_Metrics": "step_metrics",
                "Dataslice": "dataslice", "Label": "label", "Environment": "env"}
TYPE_OF_KIND = {v: k for k, v in KIND_OF_TYPE.items()}
#: MLMD Event.Type numbers.
EVENT_TYPES = {"UNKNOWN": 0, "DECLARED_OUTPUT": 1, "DECLARED_INPUT": 2, "INPUT": 3, "OUTPUT": 4,
               "INTERNAL_INPUT": 5, "INTERNAL_OUTPUT": 6, "PENDING_OUTPUT": 7}
INPUTS = {2, 3, 5}
OUTPUTS = {1, 4, 6, 7}
#: MLMD Execution.State numbers -> cmfq status (None: CMF never sets it).
STATES = {1: "running", 2: "running", 3: "completed", 4: "failed", 5: "completed", 6: "interrupted"}
#: Custom properties CMF adds itself; they are kept in properties, not as params.
CMF_OWN_CUSTOM = ("Python_Env", "original_create_time_since_epoch")

#: Reads the points of a Step_Metrics artifact (path in the CMF project) or returns None.
StepMetricsReader = Callable[[str], list[tuple[int, dict[str, float]]] | None]


def stable_int(text: str) -> int:
    """The integer standing for a pipeline or stage name where CMF has integer ids."""
    return zlib.crc32(text.encode()) & 0x7FFFFFFF


def kind_of(cmf_type: str) -> str:
    return KIND_OF_TYPE.get(cmf_type, cmf_type.lower() or "artifact")


def type_of(kind: str) -> str:
    return TYPE_OF_KIND.get(kind, kind[:1].upper() + kind[1:])


@dataclass
class CmfRecord:
    """One execution with its context, in the shape of CMF's JSON export."""

    pipeline: str
    stage: str  # the stage context's full name, "<pipeline>/<stage>"
    execution: dict[str, Any]
    events: list[dict[str, Any]]
    where: str  # names the record in error messages
    pipeline_context: dict[str, Any] | None = None
    stage_context: dict[str, Any] | None = None


class CmfMapper:
    """Turns :class:`CmfRecord` values into rows in a :class:`FactSink`."""

    def __init__(self, sink: FactSink, report: ImportReport, source: str, *,
                 step_metrics: StepMetricsReader | None = None) -> None:
        self.sink, self.report, self.source = sink, report, source
        self.step_metrics = step_metrics
        self._contexts: set[tuple[str, str]] = set()

    def map(self, record: CmfRecord) -> MappedRecord:
        """Check ``record`` completely and map it; raises :class:`ImportSourceError` naming it.
        Nothing is written yet (so a batch can be checked before any of it is)."""
        return self._rows(record)

    def add(self, rows: MappedRecord) -> None:
        """Add the rows of a mapped record to the sink."""
        pipeline = rows.execution["pipeline"]
        self.sink.execution(rows.execution)
        for artifact in rows.artifacts:
            self.sink.artifact(pipeline, artifact)
        for event in rows.events:
            self.sink.event(pipeline, event)
        for metric in rows.metrics:
            self.sink.metric(pipeline, metric)
        for kind, entity, notes in rows.contexts:
            if (kind, entity) not in self._contexts:
                self._contexts.add((kind, entity))
                for note in notes:
                    self.sink.annotation(pipeline, note)
        for what in rows.notes:
            self.report.note(what)
        for what in rows.skipped:
            self.report.skip(what)

    # -- checking and mapping one record ------------------------------------------------------

    def _rows(self, rec: CmfRecord) -> MappedRecord:
        ex = rec.execution
        if not isinstance(ex, dict):
            raise self._bad(rec, f"an execution must be an object, got {type(ex).__name__}")
        props = _mapping(ex.get("properties"), rec, "properties", self)
        custom = _mapping(ex.get("custom_properties"), rec, "custom_properties", self)
        created = _ms(ex.get("create_time_since_epoch"), rec, "create_time_since_epoch", self)
        updated = _ms(ex.get("last_update_time_since_epoch"), rec, "last_update_time_since_epoch", self) or created
        if created is None:
            raise self._bad(rec, "the execution has no create_time_since_epoch")
        uuids = str(props.get("Execution_uuid") or "").split(",")[0].strip()
        ex_type = str(ex.get("type") or "")
        ex_name = str(ex.get("name") or "")
        exec_id = (uuid_or_derived(uuids, "cmf") if uuids
                   else execution_id("mlmd", f"{created}:{ex_type}:{ex_name}:{ex.get('id')}"))
        stage = rec.stage[len(rec.pipeline) + 1:] if rec.stage.startswith(rec.pipeline + "/") else rec.stage
        notes: list[str] = []
        state = ex.get("last_known_state")
        status = STATES.get(state) if isinstance(state, int) else None
        if status is None:
            status = "completed"
            notes.append("executions without a state (CMF records none): imported as completed")
        start_us = ms_to_us(created)
        end_us = ms_to_us(updated)
        rows = MappedRecord()
        rows.notes = notes
        env_hash = None
        events = rec.events if isinstance(rec.events, list) else None
        if events is None:
            raise self._bad(rec, "'events' must be a list")
        for i, event in enumerate(events):
            mapped = self._event(rec, i, event, exec_id, start_us, rows)
            if mapped is None:
                continue
            artifact, direction, event_row, metrics = mapped
            rows.artifacts.append(artifact)
            rows.metrics.extend(metrics)
            if artifact["kind"] == "env" and direction == "in":
                env_hash = artifact["hash"]
            else:
                rows.events.append(event_row)
        params = {k: v for k, v in custom.items() if k not in CMF_OWN_CUSTOM}
        rows.execution = {
            "id": exec_id, "pipeline": rec.pipeline, "stage": stage or "default", "type": ex_name or ex_type or None,
            "started_at": start_us, "ended_at": end_us, "status": status, "cmd": _text(props.get("Execution")),
            "git_repo": _text(props.get("Git_Repo")), "git_commit": _text(props.get("Git_Start_Commit")),
            "env_hash": env_hash, "params": dumps(params), "at": end_us,
            "properties": dumps({"cmf": {"execution": {"id": ex.get("id"), "type": ex_type, "name": ex_name,
                                                        "properties": props, "custom_properties": custom},
                                          "stage": rec.stage, "source": self.report.kind}}),
        }
        rows.contexts = self._context_notes(rec, stage)
        return rows

    def _event(self, rec: CmfRecord, i: int, event: Any, exec_id: str, default_us: int | None,
               rows: MappedRecord) -> tuple[Row, str, Row, list[Row]] | None:
        where = f"event {i}"
        if not isinstance(event, dict) or not isinstance(event.get("artifact"), dict):
            raise self._bad(rec, f"{where} has no 'artifact' object")
        etype = event.get("type")
        if isinstance(etype, str):
            etype = EVENT_TYPES.get(etype.upper())
        if etype in INPUTS:
            direction = "in"
        elif etype in OUTPUTS:
            direction = "out"
        else:
            raise self._bad(rec, f"{where} has event type {event.get('type')!r}, not one of MLMD's input or "
                            "output types")
        art = event["artifact"]
        cmf_type = str(art.get("type") or "")
        uri = str(art.get("uri") or "")
        full_name = str(art.get("name") or "")
        if not uri and not full_name:
            raise self._bad(rec, f"{where}: the artifact has neither a name nor a uri")
        props = _mapping(art.get("properties"), rec, f"{where} artifact properties", self)
        custom = _mapping(art.get("custom_properties"), rec, f"{where} artifact custom_properties", self)
        created = _ms(art.get("create_time_since_epoch"), rec, f"{where} artifact create_time_since_epoch", self)
        digest = (content_hash_or_none(uri) or content_hash_or_none(props.get("Commit"))
                  or identity_hash("cmf", uri or f"{cmf_type}:{full_name}"))
        name = path_of(full_name, uri) or uri
        kind = kind_of(cmf_type)
        at_us = ms_to_us(created) or default_us or 0
        artifact: Row = {"hash": digest, "kind": kind, "name": name, "at": at_us,
                         "properties": dumps({**{k: v for k, v in custom.items()
                                                  if k != "original_create_time_since_epoch"},
                                               "cmf": {"type": cmf_type, "id": art.get("id"), "uri": uri,
                                                       "name": full_name, "properties": props}})}
        event_at = ms_to_us(event.get("milliseconds_since_epoch")) if isinstance(
            event.get("milliseconds_since_epoch"), int) else None
        role = None if etype in (3, 4) else next(k.lower() for k, v in EVENT_TYPES.items() if v == etype)
        event_row: Row = {"execution_id": exec_id, "artifact_hash": digest, "direction": direction,
                          "role": role, "name": name, "at": event_at or at_us}
        metrics: list[Row] = []
        if kind == "metrics" and direction == "out":
            for key, value in sorted(custom.items()):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    metrics.append({"execution_id": exec_id, "name": key, "step": None, "value": float(value),
                                    "at": at_us})
        elif kind == "step_metrics" and direction == "out":
            metrics.extend(self._step_points(name, exec_id, at_us, rows))
        return artifact, direction, event_row, metrics

    def _step_points(self, path: str, exec_id: str, at_us: int, rows: MappedRecord) -> list[Row]:
        points = self.step_metrics(path) if self.step_metrics is not None else None
        if points is None:
            rows.skipped.append("step-metric files not found next to the store (their points are not imported)")
            return []
        group = Path(path).name
        return [{"execution_id": exec_id, "name": f"{group}/{key}", "step": step, "value": value, "at": at_us}
                for step, values in points for key, value in sorted(values.items())]

    def _context_notes(self, rec: CmfRecord, stage: str) -> list[tuple[str, str, list[Row]]]:
        out = []
        for kind, entity, ctx in (("pipeline", rec.pipeline, rec.pipeline_context),
                                  ("stage", f"{rec.pipeline}/{stage}", rec.stage_context)):
            if not isinstance(ctx, dict):
                continue
            custom = ctx.get("custom_properties")
            custom = custom if isinstance(custom, dict) else {}
            created = ctx.get("create_time_since_epoch")
            at = ms_to_us(created) if isinstance(created, int) else 0
            out.append((kind, entity, [{"entity_kind": kind, "entity_id": entity, "key": key, "value": str(value),
                                        "at": at} for key, value in sorted(custom.items())
                                       if key != "original_create_time_since_epoch"]))
        return out

    def _bad(self, rec: CmfRecord, problem: str) -> ImportSourceError:
        return ImportSourceError(self.source, problem, record=rec.where)


class MappedRecord:
    """The rows of one checked record, and what to tell about it."""

    def __init__(self) -> None:
        self.execution: Row = {}
        self.artifacts: list[Row] = []
        self.events: list[Row] = []
        self.metrics: list[Row] = []
        self.contexts: list[tuple[str, str, list[Row]]] = []
        self.notes: list[str] = []
        self.skipped: list[str] = []


def path_of(cmf_name: str, uri: str) -> str:
    """The path in a CMF artifact name: ``data/x.csv`` of ``data/x.csv:<md5>[:<execution>...]``,
    ``metrics`` of ``metrics:<uuid>:<execution>``."""
    if uri and f":{uri}" in cmf_name:
        return cmf_name.split(f":{uri}", 1)[0]
    match = re.match(r"^(.*?):[0-9a-f]{32}(?::.*)?$", cmf_name)
    return match.group(1) if match else cmf_name


def _mapping(value: Any, rec: CmfRecord, what: str, mapper: CmfMapper) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise mapper._bad(rec, f"{what} must be an object, got {type(value).__name__}")
    return value


def _ms(value: Any, rec: CmfRecord, what: str, mapper: CmfMapper) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise mapper._bad(rec, f"{what} must be milliseconds since the epoch, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise mapper._bad(rec, f"{what} must be milliseconds since the epoch, got {value!r}") from None


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
