"""Reading an MLflow tracking store without mlflow: its SQLite database or its ``mlruns/`` folder.

Both readers yield :class:`Run` records a chunk at a time, in a fixed order (experiment, start
time, run id), with everything the importer maps: params, tags, every metric point, dataset
inputs and logged models. The SQL reader follows the schema of MLflow 2.x/3.x databases
(``experiments``, ``runs``, ``params``, ``tags``, ``metrics``, ``datasets``, ``inputs``,
``input_tags``, ``logged_models``); the folder reader follows the file store layout
(``<experiment>/meta.yaml``, ``<experiment>/<run>/{meta.yaml,params,tags,metrics,inputs,outputs}``,
``<experiment>/{datasets,models}/<id>/meta.yaml``).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmfq.ingest.facts_sink import ImportSourceError

#: File-store run status and source type numbers.
STATUS_NAMES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
SOURCE_TYPES = {1: "NOTEBOOK", 2: "JOB", 3: "PROJECT", 4: "LOCAL", 1000: "UNKNOWN"}
SQL_TABLES = ("experiments", "runs", "params", "tags", "metrics")


@dataclass
class Dataset:
    name: str
    digest: str | None
    source_type: str | None
    source: str | None
    schema: str | None
    profile: str | None
    context: str | None  # the input's mlflow.data.context tag (training, evaluation...)


@dataclass
class Model:
    model_id: str
    name: str
    artifact_location: str | None
    created_ms: int | None
    status: Any
    model_type: str | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    run_id: str
    experiment_id: str
    experiment: str
    name: str | None
    status: str
    start_ms: int | None
    end_ms: int | None
    user: str | None
    lifecycle: str
    artifact_uri: str | None
    source_type: str | None
    source_name: str | None
    source_version: str | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, value, ms, step
    datasets: list[Dataset] = field(default_factory=list)
    models_out: list[Model] = field(default_factory=list)
    models_in: list[Model] = field(default_factory=list)


class Store:
    """The common face of both readers."""

    label: str
    skipped: dict[str, int]

    def experiments(self) -> dict[str, tuple[str, str]]:  # id -> (name, lifecycle)
        raise NotImplementedError

    def count(self, experiment_ids: set[str]) -> int:
        raise NotImplementedError

    def runs(self, chunk: int, experiment_ids: set[str]) -> Iterator[list[Run]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


def open_store(source: str) -> Store:
    """The store a URI or path names: ``sqlite:///x.db``, ``file:///…/mlruns``, a folder, a file."""
    text = str(source)
    if text.startswith("sqlite:"):
        if not text.startswith("sqlite:///"):
            raise ImportSourceError(text, "is not a SQLite URI cmfq can read",
                                    hint="Write sqlite:///relative/path.db or sqlite:////absolute/path.db.")
        return SqlStore(Path(text[len("sqlite:///"):]), text)
    if "://" in text and not text.startswith("file://"):
        scheme = text.split("://", 1)[0]
        raise ImportSourceError(text, f"is a {scheme}:// tracking URI; cmfq reads MLflow stores directly, not "
                                "through a server or another database",
                                hint="Give the store itself: a sqlite:/// URI or an mlruns/ folder (for a "
                                "tracking server, the --backend-store-uri it was started with).")
    path = Path(text.removeprefix("file://"))
    if path.is_dir():
        return FileStore(path, text)
    if path.is_file():
        return SqlStore(path, text)
    raise ImportSourceError(text, "no such file or folder",
                            hint="Give an MLflow tracking store: sqlite:///mlflow.db or a mlruns/ folder.")


class SqlStore(Store):
    def __init__(self, path: Path, label: str) -> None:
        self.label = label
        self.skipped = {}
        if not path.is_file():
            raise ImportSourceError(label, f"no such file {str(path)!r}",
                                    hint="Check the path of the sqlite:/// URI (three slashes, then the path).")
        try:
            self.con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            tables = {r[0] for r in self.con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise ImportSourceError(label, f"is not a SQLite database ({exc})",
                                    hint="Give an MLflow tracking store: sqlite:///mlflow.db or a mlruns/ folder."
                                    ) from None
        missing = [t for t in SQL_TABLES if t not in tables]
        if missing:
            self.con.close()
            raise ImportSourceError(label, f"is not an MLflow tracking database: it has no {', '.join(missing)} "
                                    "table(s)", hint="Give the database an MLflow tracking server or client wrote.")
        self.tables = tables
        for table, what in (("trace_info", "traces (GenAI tracing is not imported)"),
                            ("registered_models", "registered models (the registry is not imported)")):
            if table in tables:
                count = self.con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                if count:
                    self.skipped[what] = count

    def experiments(self) -> dict[str, tuple[str, str]]:
        return {str(i): (n, s or "active") for i, n, s in
                self.con.execute("SELECT experiment_id, name, lifecycle_stage FROM experiments")}

    def count(self, experiment_ids: set[str]) -> int:
        ids = sorted(experiment_ids)
        return int(self.con.execute(f"SELECT count(*) FROM runs WHERE CAST(experiment_id AS TEXT) IN "
                                    f"({','.join('?' * len(ids))})", ids).fetchone()[0])

    def runs(self, chunk: int, experiment_ids: set[str]) -> Iterator[list[Run]]:
        names = self.experiments()
        rows = self.con.execute(
            "SELECT run_uuid, experiment_id, name, status, start_time, end_time, user_id, lifecycle_stage, "
            "artifact_uri, source_type, source_name, source_version FROM runs "
            "ORDER BY experiment_id, start_time, run_uuid").fetchall()
        for start in range(0, len(rows), chunk):
            part = [r for r in rows[start:start + chunk] if str(r[1]) in experiment_ids]
            runs: dict[str, Run] = {}
            for r in part:
                exp = names.get(str(r[1]))
                if exp is None:
                    raise ImportSourceError(self.label, f"belongs to experiment {r[1]}, which does not exist",
                                            record=f"run {r[0]}")
                runs[r[0]] = Run(r[0], str(r[1]), exp[0], r[2], r[3] or "FINISHED", r[4], r[5], r[6],
                                 r[7] or "active", r[8], r[9], r[10], r[11])
            if runs:
                self._fill(runs)
            yield list(runs.values())

    def _fill(self, runs: dict[str, Run]) -> None:
        ids = list(runs)
        marks = ",".join("?" * len(ids))
        for key, value, run in self.con.execute(f"SELECT key, value, run_uuid FROM params WHERE run_uuid IN ({marks})",
                                                ids):
            runs[run].params[key] = value
        for key, value, run in self.con.execute(f"SELECT key, value, run_uuid FROM tags WHERE run_uuid IN ({marks})",
                                                ids):
            runs[run].tags[key] = value
        for key, value, ts, run, step, is_nan in self.con.execute(
                f"SELECT key, value, timestamp, run_uuid, step, is_nan FROM metrics WHERE run_uuid IN ({marks}) "
                "ORDER BY run_uuid, key, step, timestamp, value", ids):
            runs[run].metrics.append((key, math.nan if is_nan else float(value), int(ts), int(step or 0)))
        if {"inputs", "datasets"} <= self.tables:
            self._datasets(runs, ids, marks)
        if "logged_models" in self.tables:
            self._models(runs, ids, marks)

    def _datasets(self, runs: dict[str, Run], ids: list[str], marks: str) -> None:
        contexts: dict[str, str] = {}
        if "input_tags" in self.tables:
            contexts = {i: v for i, v in self.con.execute(
                "SELECT t.input_uuid, t.value FROM input_tags t JOIN inputs i ON i.input_uuid = t.input_uuid "
                f"WHERE t.name = 'mlflow.data.context' AND i.destination_id IN ({marks})", ids)}
        for input_id, run, dataset_id, *d in self.con.execute(
                "SELECT i.input_uuid, i.destination_id, i.source_id, d.name, d.digest, d.dataset_source_type, "
                "d.dataset_source, d.dataset_schema, d.dataset_profile FROM inputs i "
                "LEFT JOIN datasets d ON d.dataset_uuid = i.source_id "
                f"WHERE i.destination_type = 'RUN' AND i.source_type = 'DATASET' AND i.destination_id IN ({marks}) "
                "ORDER BY i.destination_id, i.input_uuid", ids):
            if d[0] is None:
                raise ImportSourceError(self.label, f"has input {input_id} of dataset {dataset_id}, which does "
                                        "not exist", record=f"run {run}")
            runs[run].datasets.append(Dataset(d[0], d[1], d[2], d[3], d[4], d[5], contexts.get(input_id)))

    def _models(self, runs: dict[str, Run], ids: list[str], marks: str) -> None:
        models: dict[str, Model] = {}
        wanted = (f"SELECT model_id FROM logged_models WHERE source_run_id IN ({marks}) UNION "
                  f"SELECT source_id FROM inputs WHERE source_type = 'MODEL_INPUT' AND destination_id IN ({marks})")
        for mid, name, loc, created, status, mtype in self.con.execute(
                "SELECT model_id, name, artifact_location, creation_timestamp_ms, status, model_type "
                f"FROM logged_models WHERE model_id IN ({wanted}) ORDER BY model_id", ids + ids):
            models[mid] = Model(mid, name, loc, created, status, mtype)
        if models:
            mids = list(models)
            mmarks = ",".join("?" * len(mids))
            for mid, key, value in self.con.execute(
                    f"SELECT model_id, param_key, param_value FROM logged_model_params WHERE model_id IN ({mmarks})",
                    mids):
                models[mid].params[key] = value
            for mid, key, value in self.con.execute(
                    f"SELECT model_id, tag_key, tag_value FROM logged_model_tags WHERE model_id IN ({mmarks})", mids):
                models[mid].tags[key] = value
        for mid, run in self.con.execute(
                f"SELECT model_id, source_run_id FROM logged_models WHERE source_run_id IN ({marks}) ORDER BY 1", ids):
            runs[run].models_out.append(models[mid])
        for mid, run in self.con.execute(
                "SELECT source_id, destination_id FROM inputs WHERE source_type = 'MODEL_INPUT' "
                f"AND destination_id IN ({marks}) ORDER BY 1", ids):
            if mid not in models:
                raise ImportSourceError(self.label, f"uses model {mid}, which is not among the logged models",
                                        record=f"run {run}")
            runs[run].models_in.append(models[mid])

    def close(self) -> None:
        self.con.close()


class FileStore(Store):
    """An ``mlruns/`` folder (MLflow's file store)."""

    def __init__(self, root: Path, label: str) -> None:
        self.root = root
        self.label = label
        self.skipped = {}
        self._experiments: dict[str, tuple[str, str]] = {}
        for meta_path in sorted(root.glob("*/meta.yaml")):
            if meta_path.parent.name.startswith("."):
                continue
            meta = self._yaml(meta_path)
            self._experiments[str(meta.get("experiment_id", meta_path.parent.name))] = (
                str(meta.get("name")), str(meta.get("lifecycle_stage") or "active"))
        if not self._experiments:
            raise ImportSourceError(label, "is a folder but not an MLflow file store: it has no "
                                    "<experiment>/meta.yaml", hint="Give the mlruns/ folder itself.")
        trash = root / ".trash"
        if trash.is_dir():
            count = sum(1 for p in trash.iterdir() if p.is_dir())
            if count:
                self.skipped["deleted experiments or runs in .trash"] = count

    def experiments(self) -> dict[str, tuple[str, str]]:
        return dict(self._experiments)

    def _run_dirs(self, experiment_ids: set[str] | None = None) -> list[Path]:
        dirs = []
        for exp_id in sorted(self._experiments):
            if experiment_ids is not None and exp_id not in experiment_ids:
                continue
            for meta in (self.root / exp_id).glob("*/meta.yaml"):
                if meta.parent.name not in ("datasets", "models", "traces"):
                    dirs.append(meta.parent)
        return dirs

    def count(self, experiment_ids: set[str]) -> int:
        return len(self._run_dirs(experiment_ids))

    def runs(self, chunk: int, experiment_ids: set[str]) -> Iterator[list[Run]]:
        loaded = [self._run(d) for d in self._run_dirs(experiment_ids)]
        loaded.sort(key=lambda r: (r.experiment_id, r.start_ms or 0, r.run_id))
        for start in range(0, len(loaded), chunk):
            yield loaded[start:start + chunk]

    def _run(self, run_dir: Path) -> Run:
        meta = self._yaml(run_dir / "meta.yaml")
        run_id = str(meta.get("run_id") or meta.get("run_uuid") or run_dir.name)
        exp_id = str(meta.get("experiment_id", run_dir.parent.name))
        status = meta.get("status")
        source = meta.get("source_type")
        run = Run(run_id, exp_id, self._experiments[exp_id][0], meta.get("run_name") or meta.get("name"),
                  STATUS_NAMES.get(status, str(status)) if isinstance(status, int) else str(status or "FINISHED"),
                  _int(meta.get("start_time")), _int(meta.get("end_time")), meta.get("user_id"),
                  str(meta.get("lifecycle_stage") or "active"), meta.get("artifact_uri"),
                  SOURCE_TYPES.get(source, str(source)) if isinstance(source, int) else source,
                  meta.get("source_name"), meta.get("source_version"))
        run.params = _key_files(run_dir / "params")
        run.tags = _key_files(run_dir / "tags")
        for key, path in sorted(_key_paths(run_dir / "metrics").items()):
            for n, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                parts = line.split()
                try:
                    ts, value = int(parts[0]), float(parts[1])
                    step = int(parts[2]) if len(parts) > 2 else 0
                except (IndexError, ValueError):
                    raise ImportSourceError(self.label, f"line {n} of metric {key!r} is {line[:80]!r}, not "
                                            "'<timestamp> <value> [<step>]'", record=f"run {run_id}") from None
                run.metrics.append((key, value, ts, step))
        run.metrics.sort(key=lambda m: (m[0], m[3], m[2], m[1]))
        exp_dir = self.root / exp_id
        for meta_path in sorted((run_dir / "inputs").glob("*/meta.yaml")):
            link = self._yaml(meta_path)
            if link.get("source_type") != "DATASET":
                continue
            ds_meta = exp_dir / "datasets" / str(link.get("source_id")) / "meta.yaml"
            if not ds_meta.is_file():
                raise ImportSourceError(self.label, f"has input of dataset {link.get('source_id')}, which does not "
                                        "exist", record=f"run {run_id}")
            ds = self._yaml(ds_meta)
            tags = link.get("tags") or {}
            run.datasets.append(Dataset(str(ds.get("name")), ds.get("digest"), ds.get("source_type"), ds.get("source"),
                                        ds.get("schema"), ds.get("profile"), tags.get("mlflow.data.context")))
        for meta_path in sorted((run_dir / "outputs").glob("*/meta.yaml")):
            link = self._yaml(meta_path)
            model = self._model(exp_dir, str(link.get("destination_id") or meta_path.parent.name), run_id)
            if model is not None:
                run.models_out.append(model)
        return run

    def _model(self, exp_dir: Path, model_id: str, run_id: str) -> Model | None:
        model_dir = exp_dir / "models" / model_id
        if not (model_dir / "meta.yaml").is_file():
            raise ImportSourceError(self.label, f"logged model {model_id}, which does not exist",
                                    record=f"run {run_id}")
        meta = self._yaml(model_dir / "meta.yaml")
        return Model(model_id, str(meta.get("name")), meta.get("artifact_location"),
                     _int(meta.get("creation_timestamp")), meta.get("status"), meta.get("model_type"),
                     _key_files(model_dir / "params"), _key_files(model_dir / "tags"))

    def _yaml(self, path: Path) -> dict[str, Any]:
        import yaml

        try:
            data = yaml.safe_load(path.read_text("utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ImportSourceError(self.label, f"cannot be read ({exc})".replace("\n", " "),
                                    record=os.path.relpath(path, self.root)) from None
        if not isinstance(data, dict):
            raise ImportSourceError(self.label, "is not a YAML mapping", record=os.path.relpath(path, self.root))
        return data


def _key_paths(folder: Path) -> dict[str, Path]:
    """Files under ``folder`` by key (keys with ``/`` are nested folders)."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}


def _key_files(folder: Path) -> dict[str, str]:
    return {k: p.read_text("utf-8") for k, p in sorted(_key_paths(folder).items())}


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def dataset_uri(source: str | None) -> str | None:
    """The URI in an MLflow dataset source (JSON with ``uri``, ``url`` or ``path``), if any."""
    if not source:
        return None
    try:
        data = json.loads(source)
    except ValueError:
        return source
    if isinstance(data, dict):
        for key in ("uri", "url", "path"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return None
