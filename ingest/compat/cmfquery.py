"""``CmfQuery`` over a cmfq warehouse: cmflib's reader API, answers from cmfq's query layer.

    from cmfq.compat.cmfquery import CmfQuery      # instead of: from cmflib.cmfquery import CmfQuery
    query = CmfQuery("mlmd")
    query.get_pipeline_stages("Test-env")          # ['Test-env/Prepare', 'Test-env/Featurize', ...]
    query.get_all_executions_in_stage("Test-env/Train")   # pandas, CMF's columns

The warehouse is ``$CMFQ_WAREHOUSE``, else the ``.cmfq`` folder next to ``filepath`` (where
:class:`cmfq.compat.cmf.Cmf` logs). Methods return what cmflib returns: pandas frames with
CMF's column names (empty frames when nothing matches), lists of names, or MLMD-like objects
with ``id``/``name``/``properties``. Stage names are CMF's ``<pipeline>/<stage>``; artifact
names are CMF's ``<path>:<md5>`` (a bare path or hash works too). Ids are cmfq's: an
execution's UUID, an artifact's hash.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from cmfq.errors import NotFoundError, WarehouseError
from cmfq.ingest.cmf_records import stable_int
from cmfq.ingest.compat.frames import (
    CmfFrame,
    CmfNode,
    artifact_columns,
    execution_columns,
    execution_node,
    frame,
)
from cmfq.ingest.compat.store import warehouse_for
from cmfq.ingest.stable_ids import content_hash_or_none

if TYPE_CHECKING:
    from cmfq.warehouse.query import Warehouse

__all__ = ["CmfQuery"]

_EXECUTION_SQL = """
SELECT id, pipeline, stage, type, cmd, git_repo, git_commit, params::VARCHAR AS params,
       properties::VARCHAR AS properties, epoch_ms(started_at) AS created_ms,
       epoch_ms(coalesce(ended_at, updated_at)) AS updated_ms
FROM executions WHERE {where} ORDER BY started_at, id"""
_ARTIFACT_SQL = """
SELECT hash, kind, name, uri, size, properties::VARCHAR AS properties, epoch_ms(first_seen_at) AS created_ms
FROM artifacts WHERE list_contains($1, hash) ORDER BY first_seen_at, hash"""


class CmfQuery:
    """cmflib's ``CmfQuery`` API over a cmfq warehouse."""

    def __init__(self, filepath: str = "mlmd", is_server: bool = False) -> None:
        from cmfq.warehouse.query import Warehouse

        if is_server:
            raise WarehouseError("CmfQuery(is_server=True) reads CMF's server database; cmfq has no server.",
                                 hint="Pull the warehouse (`cmfq pull`) and query it locally.")
        self.filepath = filepath
        root = warehouse_for(filepath)
        try:
            self._wh: Warehouse = Warehouse(root)
        except WarehouseError:
            hint = (f"{filepath} looks like a cmflib store: import it with `cmfq import mlmd {filepath} -w {root}`."
                    if os.path.isfile(filepath) else "Log with cmfq.compat.cmf.Cmf first, or set CMFQ_WAREHOUSE.")
            raise WarehouseError(f"No cmfq warehouse at {root} (for {filepath!r}).", hint=hint) from None

    def close(self) -> None:
        self._wh.close()

    # -- pipelines and stages -------------------------------------------------------------------

    def get_pipeline_names(self) -> list[str]:
        """Names of all pipelines."""
        return [r[0] for r in self._rows("SELECT name FROM pipelines ORDER BY first_run, name")]

    def get_pipeline_id(self, pipeline_name: str) -> int:
        """An integer id for the pipeline (-1 when it does not exist)."""
        return stable_int(pipeline_name) if pipeline_name in self.get_pipeline_names() else -1

    def get_pipeline_stages(self, pipeline_name: str) -> list[str]:
        """The pipeline's stages as ``<pipeline>/<stage>``, in the order they first ran."""
        rows = self._rows("SELECT stage FROM executions WHERE pipeline = ? GROUP BY stage "
                          "ORDER BY min(started_at), stage", [pipeline_name])
        return [f"{pipeline_name}/{stage}" for (stage,) in rows]

    # -- executions -------------------------------------------------------------------------------

    def get_all_executions_in_stage(self, stage_name: str) -> pd.DataFrame:
        """The executions of a stage (``<pipeline>/<stage>``), one row each."""
        return frame(execution_columns(r) for r in self._executions_in_stage(stage_name))

    def get_all_exe_in_stage(self, stage_name: str) -> list[CmfNode]:
        """The executions of a stage as objects with ``id``, ``name`` and ``properties``."""
        return [execution_node(r) for r in self._executions_in_stage(stage_name)]

    def get_all_executions_in_pipeline(self, pipeline_name: str) -> pd.DataFrame:
        """Every execution of the pipeline, one row each."""
        return frame(execution_columns(r) for r in self._executions("pipeline = ?", [pipeline_name]))

    def get_all_executions_by_ids_list(self, exe_ids: list[Any]) -> pd.DataFrame:
        return frame(execution_columns(r) for r in self._executions("list_contains(?, id)", [[str(i) for i in exe_ids]]))

    def get_executions_with_execution_ids(self, exe_ids: list[Any]) -> pd.DataFrame:
        df = self.get_all_executions_by_ids_list(exe_ids)
        return df if df.empty else df[["id", "Execution_type_name", "Execution_uuid"]]

    def find_producer_execution(self, artifact_name: str) -> CmfNode | None:
        """The (first) execution that produced the artifact, or None."""
        digest = self._artifact(artifact_name)
        if digest is None:
            return None
        rows = self._executions("id IN (SELECT execution_id FROM events WHERE artifact_hash = ? AND direction = 'out')",
                                [digest])
        return execution_node(rows[0]) if rows else None

    get_producer_execution = find_producer_execution

    def get_all_executions_for_artifact(self, artifact_name: str) -> pd.DataFrame:
        """The executions that consumed (INPUT) or produced (OUTPUT) the artifact."""
        digest = self._artifact(artifact_name)
        if digest is None:
            return CmfFrame()
        rows = self._dicts(
            "SELECT e.direction, x.id, x.type, x.stage, x.pipeline FROM events e JOIN executions x "
            "ON x.id = e.execution_id WHERE e.artifact_hash = ? ORDER BY x.started_at, x.id, e.direction", [digest])
        return frame({"Type": "INPUT" if r["direction"] == "in" else "OUTPUT", "execution_id": r["id"],
                      "execution_name": r["type"] or "", "execution_type_name": f"{r['pipeline']}/{r['stage']}",
                      "stage": f"{r['pipeline']}/{r['stage']}", "pipeline": r["pipeline"]} for r in rows)

    def get_all_parent_executions(self, artifact_name: str) -> pd.DataFrame:
        """The executions that produced the artifact's ancestors."""
        parents = self._hashes_of(self.get_all_parent_artifacts(artifact_name))
        return frame(execution_columns(r) for r in self._executions(
            "id IN (SELECT execution_id FROM events WHERE direction = 'out' AND list_contains(?, artifact_hash))",
            [parents]))

    # -- artifacts --------------------------------------------------------------------------------

    def get_all_artifacts(self) -> list[str]:
        """CMF names (``<path>:<md5>``) of every artifact."""
        return [str(r["name"]) for r in self._artifact_rows(self._all_hashes())]

    get_artifact_names = get_all_artifacts

    def get_artifact(self, name: str) -> pd.DataFrame | None:
        digest = self._artifact(name)
        return frame(self._artifact_rows([digest])) if digest else None

    def get_all_artifact_types(self) -> list[str]:
        return sorted({str(r["type"]) for r in self._artifact_rows(self._all_hashes())})

    def get_all_artifacts_for_execution(self, execution_id: Any) -> pd.DataFrame:
        """The execution's input and output artifacts, with ``event`` INPUT or OUTPUT."""
        rows = self._rows("SELECT artifact_hash, direction FROM events WHERE execution_id = ? "
                          "ORDER BY direction, \"at\", artifact_hash", [str(execution_id)])
        info = {r["id"]: r for r in self._artifact_rows([h for h, _ in rows])}
        return frame({**info[h], "event": "INPUT" if d == "in" else "OUTPUT"} for h, d in rows if h in info)

    def get_all_artifacts_for_executions(self, execution_ids: list[Any]) -> pd.DataFrame:
        rows = self._rows("SELECT DISTINCT artifact_hash FROM events WHERE list_contains(?, execution_id)",
                          [[str(i) for i in execution_ids]])
        return frame(self._artifact_rows([h for (h,) in rows]))

    def get_all_artifacts_by_context(self, pipeline_name: str) -> pd.DataFrame:
        rows = self._rows("SELECT DISTINCT e.artifact_hash FROM events e JOIN executions x ON x.id = e.execution_id "
                          "WHERE x.pipeline = ?", [pipeline_name])
        return frame(self._artifact_rows([h for (h,) in rows]))

    def get_one_hop_parent_artifacts(self, artifact_name: str) -> pd.DataFrame:
        """The inputs of the executions that produced the artifact."""
        return self._lineage(artifact_name, "parents")

    def get_all_parent_artifacts(self, artifact_name: str) -> pd.DataFrame:
        """Every artifact upstream of this one."""
        return self._lineage(artifact_name, "ancestors")

    def get_one_hop_child_artifacts(self, artifact_name: str, pipeline_id: int | None = None) -> pd.DataFrame:
        """The outputs of the executions that consumed the artifact."""
        return self._lineage(artifact_name, "children")

    def get_all_child_artifacts(self, artifact_name: str) -> pd.DataFrame:
        """Every artifact downstream of this one."""
        return self._lineage(artifact_name, "descendants")

    def get_metrics(self, metrics_name: str) -> pd.DataFrame | None:
        """The step metrics committed as ``metrics_name`` (``commit_metrics``), one row per step
        (index ``SequenceNumber``), or None."""
        digest = self._artifact(metrics_name)
        if digest is None:
            return None
        rows = self._dicts("SELECT a.name, e.execution_id FROM artifacts a JOIN events e ON e.artifact_hash = a.hash "
                           "AND e.direction = 'out' WHERE a.hash = ? AND a.kind = 'step_metrics'", [digest])
        if not rows:
            return None
        group = str(rows[0]["name"]).rsplit("/", 1)[-1]
        points = self._rows("SELECT name, step, value FROM metrics WHERE execution_id = ? AND starts_with(name, ?) "
                            "AND step IS NOT NULL ORDER BY step", [rows[0]["execution_id"], group + "/"])
        table: dict[int, dict[str, float]] = {}
        for name, step, value in points:
            table.setdefault(int(step), {})[str(name)[len(group) + 1:]] = value
        df = CmfFrame.from_dict(table, orient="index")
        df.index.name = "SequenceNumber"
        return CmfFrame(df)

    def dumptojson(self, pipeline_name: str, exec_uuid: str | None = None) -> str | None:
        """The pipeline in the shape of CMF's JSON export (optionally one execution's stage only)."""
        from cmfq.ingest.export_cmf_json import cmf_pipelines

        pipelines = cmf_pipelines(self._wh, pipeline=pipeline_name)
        if exec_uuid is not None:
            for p in pipelines:
                for stage in p["stages"]:
                    stage["executions"] = [x for x in stage["executions"]
                                           if exec_uuid in str(x["properties"].get("Execution_uuid", "")).split(",")]
        return json.dumps({"Pipeline": pipelines})

    # -- internals ----------------------------------------------------------------------------------

    def _rows(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self._wh.relation(sql, params or []).fetchall()

    def _dicts(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self._wh.relation(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _executions(self, where: str, params: list[Any]) -> list[dict[str, Any]]:
        return self._dicts(_EXECUTION_SQL.format(where=where), params)

    def _executions_in_stage(self, stage_name: str) -> list[dict[str, Any]]:
        for pipeline in sorted(self.get_pipeline_names(), key=len, reverse=True):
            if stage_name.startswith(pipeline + "/"):
                return self._executions("pipeline = ? AND stage = ?", [pipeline, stage_name[len(pipeline) + 1:]])
        return self._executions("stage = ?", [stage_name])

    def _artifact_rows(self, hashes: Iterable[str]) -> list[dict[str, Any]]:
        return [artifact_columns(r) for r in self._dicts(_ARTIFACT_SQL, [list(hashes)])]

    def _all_hashes(self) -> list[str]:
        return [h for (h,) in self._rows("SELECT hash FROM artifacts")]

    def _artifact(self, name: str) -> str | None:
        """The hash of an artifact named as cmflib names it, by path, or by hash; None if unknown."""
        name = str(name).strip()
        found = self._rows("SELECT hash FROM artifacts WHERE json_extract_string(properties, '$.cmf.name') = ? "
                           "LIMIT 1", [name])
        if found:
            return str(found[0][0])
        for part in name.split(":")[1:]:
            digest = content_hash_or_none(part)
            if digest and self._rows("SELECT 1 FROM artifacts WHERE hash = ?", [digest]):
                return digest
        try:
            return self._wh.resolve_artifact(name)
        except NotFoundError:
            return None

    def _lineage(self, artifact_name: str, how: str) -> pd.DataFrame:
        digest = self._artifact(artifact_name)
        if digest is None:
            return CmfFrame()
        walk = getattr(self._wh, how)
        return frame(self._artifact_rows(walk(digest)["hash"].to_list()))

    @staticmethod
    def _hashes_of(df: pd.DataFrame) -> list[str]:
        return [] if df.empty else [str(h) for h in df["id"].to_list()]
