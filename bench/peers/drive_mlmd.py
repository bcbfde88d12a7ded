"""ML Metadata 1.15.0 used directly on a SQLite file: the store under cmflib, without cmflib.

One ``put_execution`` per execution (the execution, its 4 artifacts with their events, its
pipeline and stage contexts), the bare-store floor. MLMD has no metrics: train's loss history
is a JSON string custom property, evaluate's final metrics double properties. Queries use
``get_executions_by_type`` and walk events (``get_events_by_execution_ids`` /
``get_events_by_artifact_ids``). Runs in cmflib's venv (which pins ml-metadata 1.15.0).
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import workload
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

DB = "mlmd.sqlite"


def connect(root: Path) -> Any:
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(root / DB)
    config.sqlite.connection_mode = 3  # READWRITE_OPENCREATE
    return metadata_store.MetadataStore(config)


def _set(props: Any, key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        props[key].string_value = str(value)
    elif isinstance(value, int):
        props[key].int_value = value
    else:
        props[key].double_value = value


def _value(prop: Any) -> Any:
    return getattr(prop, prop.WhichOneof("value"))


class Logger:
    STORE = [DB]

    def open(self, root: Path) -> None:
        self.store = connect(root)
        self.dataset = self.store.put_artifact_type(pb.ArtifactType(name="Dataset"))
        self.types = {s: self.store.put_execution_type(pb.ExecutionType(name=s)) for s in workload.STAGES}
        pipeline_type = self.store.put_context_type(pb.ContextType(name="Pipeline"))
        stage_type = self.store.put_context_type(pb.ContextType(name="Stage"))
        ids = self.store.put_contexts([pb.Context(type_id=pipeline_type, name="bench")] +
                                      [pb.Context(type_id=stage_type, name=s) for s in workload.STAGES])
        pipeline, *stages = self.store.get_contexts_by_id(ids)
        self.contexts = {s: [pipeline, c] for s, c in zip(workload.STAGES, stages, strict=True)}
        self.known: dict[str, Any] = {}  # path -> artifact, as a stage script holding its inputs would

    def log(self, step: workload.Step) -> dict[str, Any]:
        ex = pb.Execution(type_id=self.types[step.stage], name=f"{step.stage}-{step.iteration}",
                          last_known_state=pb.Execution.COMPLETE)
        for key, value in {**step.params, **step.finals}.items():
            _set(ex.custom_properties, key, value)
        if step.losses:
            ex.custom_properties["loss"].string_value = json.dumps(step.losses)
        pairs = []
        for path, kind in [(p, pb.Event.INPUT) for p in step.inputs] + [(p, pb.Event.OUTPUT) for p in step.outputs]:
            art = self.known.get(path)
            if art is None:
                art = pb.Artifact(type_id=self.dataset, uri=path, name=path, state=pb.Artifact.LIVE)
                art.custom_properties["md5"].string_value = hashlib.md5(Path(path).read_bytes()).hexdigest()
            pairs.append((art, pb.Event(type=kind)))
        exec_id, art_ids, _ = self.store.put_execution(ex, pairs, self.contexts[step.stage],
                                                       reuse_context_if_already_exist=True)
        for (art, _), art_id, path in zip(pairs, art_ids, step.inputs + step.outputs, strict=True):
            art.id = art_id
            self.known[path] = art
        return {"execution": exec_id, "inputs": art_ids[:2], "outputs": art_ids[2:]}

    def close(self) -> None:
        del self.store


class Queries:
    def open(self, root: Path) -> None:
        self.store = connect(root)
        self.stage_of = {t.id: t.name for t in self.store.get_execution_types()}

    def _hop(self, ids: set[int], by_artifact: bool, kind: int) -> set[int]:
        """Executions with a ``kind`` event on the artifacts ``ids`` (``by_artifact``), or the
        artifacts with one on the executions ``ids``."""
        if by_artifact:
            return {e.execution_id for e in self.store.get_events_by_artifact_ids(list(ids)) if e.type == kind}
        return {e.artifact_id for e in self.store.get_events_by_execution_ids(list(ids)) if e.type == kind}

    def _walk(self, start: int, up: bool) -> tuple[set[int], set[int]]:
        """Artifacts and executions up (producers, their inputs) or down (consumers, their outputs)."""
        arts: set[int] = set()
        execs: set[int] = set()
        frontier = {start}
        while frontier:
            hop = self._hop(frontier, True, pb.Event.OUTPUT if up else pb.Event.INPUT) - execs
            execs |= hop
            frontier = (self._hop(hop, False, pb.Event.INPUT if up else pb.Event.OUTPUT) - arts) if hop else set()
            arts |= frontier
        return arts, execs

    def _names(self, arts: set[int]) -> list[str]:
        return sorted(a.name for a in self.store.get_artifacts_by_id(list(arts)))

    def q1(self, h: dict[str, Any]) -> list[list[Any]]:
        return [[_value(e.custom_properties[k]) for k in ("seed", "n_est", "min_split")]
                for e in self.store.get_executions_by_type("train")]

    def q2(self, h: dict[str, Any]) -> list[list[Any]]:
        evals = sorted(self.store.get_executions_by_type("evaluate"),
                       key=lambda e: e.custom_properties["roc_auc"].double_value, reverse=True)[:workload.TOP]
        out = []
        for ev in evals:
            train = self._producer(ev.id, "train")
            featurize = self._producer(train.id, "featurize")
            out.append([ev.custom_properties["roc_auc"].double_value, train.custom_properties["n_est"].int_value,
                        featurize.custom_properties["max_features"].int_value])
        return out

    def _producer(self, exec_id: int, stage: str) -> Any:
        """The ``stage`` execution that wrote an input of ``exec_id``."""
        producers = self._hop(self._hop({exec_id}, False, pb.Event.INPUT), True, pb.Event.OUTPUT)
        return next(e for e in self.store.get_executions_by_id(list(producers)) if self.stage_of[e.type_id] == stage)

    def q3(self, h: dict[str, Any]) -> dict[str, list[str]]:
        arts, execs = self._walk(h["q3_model"], up=True)
        return {"artifacts": self._names(arts),
                "executions": sorted(self.stage_of[e.type_id] for e in self.store.get_executions_by_id(list(execs)))}

    def q4(self, h: dict[str, Any]) -> list[str]:
        return self._names(self._walk(h["q4_raw"], up=False)[0])

    def q5(self, h: dict[str, Any]) -> list[float]:
        [ex] = self.store.get_executions_by_id([h["q5_train"]])
        return list(json.loads(ex.custom_properties["loss"].string_value))


if __name__ == "__main__":
    workload.main(Logger(), Queries(), {"ml-metadata": version("ml-metadata")})
