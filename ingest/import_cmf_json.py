"""``cmfq import cmf-json``: the JSON that ``cmf metadata export`` (CmfQuery.dumptojson) writes.

Accepted shapes: ``{"Pipeline": [<pipeline>, ...]}`` (the export file) or one ``<pipeline>``
object (what cmflib's merger reads). A pipeline has ``name``, ``custom_properties`` and
``stages``; a stage has ``name`` (``<pipeline>/<stage>``) and ``executions``; an execution
has ``properties``, ``custom_properties`` and ``events``, each with its ``artifact``. The
facts are mapped exactly as for an MLMD store (:mod:`cmfq.ingest.cmf_records`), so importing
a store and its export gives the same executions and artifacts.

The whole file is parsed and every record checked before anything is written: a truncated
or malformed file imports nothing, and the error names the record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cmfq.config import warehouse_path
from cmfq.ingest.cmf_records import CmfMapper, CmfRecord
from cmfq.ingest.facts_sink import FactSink, ImportReport, ImportSourceError, Progress
from cmfq.ingest.import_mlmd import CHUNK, _step_metrics_reader
from cmfq.warehouse.layout import Layout


def import_cmf_json(source: str | os.PathLike[str], warehouse: str | os.PathLike[str] | None = None, *,
                    pipeline: str | None = None, progress: Progress | None = None) -> ImportReport:
    """Import a CMF JSON export (only pipeline ``pipeline`` when given) into ``warehouse``."""
    path = Path(source)
    label = str(source)
    report = ImportReport("cmf-json", label)
    records = read_records(path, label)
    if pipeline is not None:
        names = sorted({r.pipeline for r in records})
        records = [r for r in records if r.pipeline == pipeline]
        if not records:
            raise ImportSourceError(label, f"has no pipeline named {pipeline!r}", hint=f"It has {names or 'none'}.")
    sink = FactSink(Layout(warehouse_path(warehouse)), report)
    mapper = CmfMapper(sink, report, label, step_metrics=_step_metrics_reader(path.resolve().parent))
    # Check every record first: a bad one anywhere in the file imports nothing.
    sink.write_checked([mapper.map(r) for r in records], mapper.add, CHUNK, progress)
    return report


def read_records(path: Path, label: str) -> list[CmfRecord]:
    """Parse the file into one record per execution; errors name the file and the record."""
    if not path.is_file():
        raise ImportSourceError(label, "no such file", hint="Give the JSON file `cmf metadata export` wrote.")
    try:
        data = json.loads(path.read_text("utf-8"))
    except UnicodeDecodeError as exc:
        raise ImportSourceError(label, f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ImportSourceError(label, f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                                hint="The file may be truncated; export it again with `cmf metadata export`."
                                ) from None
    if isinstance(data, dict) and "Pipeline" in data:
        pipelines, prefix = data["Pipeline"], "Pipeline"
    elif isinstance(data, dict) and "stages" in data:
        pipelines, prefix = [data], "pipeline"
    else:
        raise ImportSourceError(label, "is not a CMF export: expected {\"Pipeline\": [...]} or a pipeline object "
                                "with \"stages\"")
    if not isinstance(pipelines, list):
        raise ImportSourceError(label, "\"Pipeline\" must be a list", record=prefix)
    records: list[CmfRecord] = []
    for p, pipe in enumerate(pipelines):
        where = f"{prefix}[{p}]"
        pipe_name = _field(pipe, "name", str, label, where)
        where = f"{where} {pipe_name!r}"
        for s, stage in enumerate(_field(pipe, "stages", list, label, where)):
            stage_where = f"{where} › stages[{s}]"
            stage_name = _field(stage, "name", str, label, stage_where)
            stage_where = f"{stage_where} {stage_name!r}"
            for e, execution in enumerate(_field(stage, "executions", list, label, stage_where)):
                ex_where = f"{stage_where} › executions[{e}]"
                if not isinstance(execution, dict):
                    raise ImportSourceError(label, "an execution must be an object", record=ex_where)
                events = execution.get("events", [])
                ex = {k: v for k, v in execution.items() if k != "events"}
                records.append(CmfRecord(pipe_name, stage_name, ex, events, ex_where, pipe, stage))
    return records


def _field(obj: Any, key: str, typ: type, label: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise ImportSourceError(label, f"must be an object, got {type(obj).__name__}", record=where)
    value = obj.get(key)
    if not isinstance(value, typ):
        raise ImportSourceError(label, f"'{key}' must be a {typ.__name__}, got {type(value).__name__}",
                                record=where)
    return value
