"""What the cmflib-compatible reader returns: pandas frames with CMF's columns, MLMD-like objects.

cmflib builds its frames from MLMD protos: an execution's row holds ``id``, ``name``, CMF's
properties (``Context_Type``, ``Execution``, ``Execution_uuid``, ``Git_Repo``,
``Git_Start_Commit``, ``Git_End_Commit``, ``Pipeline_Type``, ``Pipeline_id``...) and each
custom property as ``custom_properties_<key>``; an artifact's row holds ``id``, ``type``,
``uri``, ``name`` (``<path>:<md5>``), its creation times and properties. Columns come sorted
by name, as ``pd.concat(..., sort=True)`` leaves them in cmflib.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cmfq.ingest.cmf_records import stable_int, type_of

#: Artifact properties that cmflib keeps as properties (plain columns), not custom ones.
ARTIFACT_PROPERTIES = ("Commit", "url", "git_repo", "model_framework", "model_type", "model_name", "metrics_name")


class CmfFrame(pd.DataFrame):
    """A pandas DataFrame that also accepts ``drop(columns=..., axis=1)``.

    cmflib's own examples call it that way; pandas 3 made it an error, so the frames this
    layer returns let the redundant ``axis`` pass.
    """

    @property
    def _constructor(self) -> type[CmfFrame]:
        return CmfFrame

    def drop(self, labels: Any = None, *, axis: Any = 0, index: Any = None, columns: Any = None,
             **kwargs: Any) -> Any:
        if labels is None and (index is not None or columns is not None):
            return super().drop(index=index, columns=columns, **kwargs)
        return super().drop(labels, axis=axis, index=index, columns=columns, **kwargs)


def frame(rows: Iterable[Mapping[str, Any]]) -> CmfFrame:
    """Rows as a frame with sorted columns (an empty frame has no columns, as in cmflib)."""
    rows = list(rows)
    if not rows:
        return CmfFrame()
    df = CmfFrame([dict(r) for r in rows])
    return CmfFrame(df.reindex(sorted(df.columns), axis=1))


@dataclass
class Value:
    """An MLMD property value: read ``.string_value``, ``.int_value`` or ``.double_value``."""

    string_value: str = ""
    int_value: int = 0
    double_value: float = 0.0

    @classmethod
    def of(cls, value: Any) -> Value:
        if isinstance(value, bool):
            return cls(string_value=str(value))
        if isinstance(value, int):
            return cls(int_value=value)
        if isinstance(value, float):
            return cls(double_value=value)
        return cls(string_value=value if isinstance(value, str) else json.dumps(value, sort_keys=True))


@dataclass
class CmfNode:
    """What cmflib returns as an MLMD Execution, Context or Artifact: ``id``, ``name``, ``type``,
    ``properties`` and ``custom_properties`` (mappings of :class:`Value`). Ids are cmfq's (an
    execution's UUID, an artifact's hash), not MLMD integers."""

    id: Any
    name: str
    type: str
    properties: dict[str, Value] = field(default_factory=dict)
    custom_properties: dict[str, Value] = field(default_factory=dict)
    uri: str = ""
    create_time_since_epoch: int = 0
    last_update_time_since_epoch: int = 0


def execution_fields(row: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str]:
    """CMF's properties, custom properties and name of an execution row of the warehouse
    (original values for executions imported from CMF)."""
    stage = f"{row['pipeline']}/{row['stage']}"
    props: dict[str, Any] = {"Context_ID": stable_int(stage), "Context_Type": stage, "Execution": row["cmd"] or "",
                             "Execution_type_name": stage, "Execution_uuid": row["id"], "Git_End_Commit": "",
                             "Git_Repo": row["git_repo"] or "", "Git_Start_Commit": row["git_commit"] or "",
                             "Pipeline_Type": row["pipeline"], "Pipeline_id": stable_int(row["pipeline"])}
    original = (json.loads(row["properties"] or "{}").get("cmf") or {}).get("execution") or {}
    props.update(original.get("properties") or {})
    custom = original.get("custom_properties") or _flat(json.loads(row["params"] or "{}"))
    name = original.get("name") or original.get("type") or row["type"] or row["stage"]
    return props, custom, str(name)


def execution_columns(row: Mapping[str, Any]) -> dict[str, Any]:
    """One execution as a row of cmflib's execution frames."""
    props, custom, name = execution_fields(row)
    out: dict[str, Any] = {"id": row["id"], "name": name, **props}
    for key, value in custom.items():
        out[_free(out, f"custom_properties_{key}")] = value
    return out


def execution_node(row: Mapping[str, Any]) -> CmfNode:
    props, custom, name = execution_fields(row)
    return CmfNode(row["id"], name, name, {k: Value.of(v) for k, v in props.items()},
                   {k: Value.of(v) for k, v in custom.items()}, "", row["created_ms"], row["updated_ms"])


def artifact_columns(row: Mapping[str, Any]) -> dict[str, Any]:
    """One artifact as a row of cmflib's artifact frames."""
    props = json.loads(row["properties"] or "{}")
    original = props.pop("cmf", None) if isinstance(props, dict) else None
    if isinstance(original, dict) and original.get("name"):
        out: dict[str, Any] = {"id": row["hash"], "type": original.get("type") or type_of(row["kind"]),
                               "uri": original.get("uri") or row["hash"], "name": original["name"]}
        out.update(original.get("properties") or {})
    else:
        out = {"id": row["hash"], "type": type_of(row["kind"]), "uri": row["hash"],
               "name": f"{row['name']}:{row['hash']}", "Commit": row["hash"], "url": row["uri"] or ""}
        for key in ARTIFACT_PROPERTIES:
            if key in props:
                out[key] = props.pop(key)
    out["create_time_since_epoch"] = row["created_ms"]
    out["last_update_time_since_epoch"] = row["created_ms"]
    for key, value in _flat(props).items():
        out[_free(out, f"custom_properties_{key}")] = value
    return out


def _flat(values: Mapping[str, Any]) -> dict[str, Any]:
    """Property values as MLMD holds them: numbers and text; anything else as JSON text."""
    return {k: v if isinstance(v, (int, float, str)) and not isinstance(v, bool) else json.dumps(v, sort_keys=True)
            for k, v in values.items()}


def _free(row: Mapping[str, Any], key: str) -> str:
    base, n = key, 0
    while key in row:
        n += 1
        key = f"{base}_{n}"
    return key
