"""MLflow 3.17.2 with a SQLite tracking store, the way its users log a pipeline: a parent run
per iteration, a nested run per stage with ``log_params``, the stage's files as ``log_input``
datasets (context ``input`` / ``output``: MLflow records no outputs but models), train's loss
as 100 ``log_metric(step=)`` calls (or, with ``BENCH_MLFLOW_BATCH=1``, one ``log_batch``) and
an external logged model, evaluate's metrics with ``log_metrics``. Queries: ``search_runs``
and ``get_metric_history``; MLflow has no lineage API, so q3/q4 load the runs' dataset inputs
and walk them. Runs in mlflow's venv.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import workload

warnings.filterwarnings("ignore")

import mlflow  # noqa: E402
from mlflow.data.dataset_source_registry import resolve_dataset_source  # noqa: E402
from mlflow.data.meta_dataset import MetaDataset  # noqa: E402
from mlflow.entities import Metric  # noqa: E402

DB = "mlflow.db"
CONTEXT = "mlflow.data.context"


def connect(root: Path) -> str:
    mlflow.set_tracking_uri(f"sqlite:///{root / DB}")
    if mlflow.get_experiment_by_name("bench") is None:
        mlflow.create_experiment("bench", artifact_location=(root / "mlartifacts").as_uri())
    return mlflow.set_experiment("bench").experiment_id


class Logger:
    STORE = [DB, "mlartifacts"]
    batch = os.environ.get("BENCH_MLFLOW_BATCH") == "1"

    def open(self, root: Path) -> None:
        connect(root)
        self.client = mlflow.MlflowClient()

    def _dataset(self, path: str) -> MetaDataset:
        digest = hashlib.md5(Path(path).read_bytes()).hexdigest()
        return MetaDataset(resolve_dataset_source(str(Path(path).resolve())), name=path, digest=digest[:8])

    def log(self, step: workload.Step) -> dict[str, Any]:
        if step.stage == workload.STAGES[0]:
            if mlflow.active_run():
                mlflow.end_run()
            mlflow.start_run(run_name=f"iteration-{step.iteration}")
        with mlflow.start_run(run_name=step.stage, nested=True) as run:
            mlflow.log_params(step.params)
            for path in step.inputs:
                mlflow.log_input(self._dataset(path), context="input")
            if self.batch and step.losses:
                now = int(time.time() * 1000)
                self.client.log_batch(run.info.run_id, metrics=[Metric("loss", v, now, s)
                                                                for s, v in enumerate(step.losses)])
            else:
                for s, value in enumerate(step.losses):
                    mlflow.log_metric("loss", value, step=s)
            if step.finals:
                mlflow.log_metrics(step.finals)
            for path in step.outputs:
                mlflow.log_input(self._dataset(path), context="output")
            if step.stage == "train":
                mlflow.create_external_model(name=f"model-{step.iteration}", source_run_id=run.info.run_id,
                                             params={k: str(v) for k, v in step.params.items()})
        return {"execution": run.info.run_id, "inputs": step.inputs, "outputs": step.outputs}

    def close(self) -> None:
        mlflow.end_run()


class Queries:
    def open(self, root: Path) -> None:
        self.experiment = connect(root)
        self.client = mlflow.MlflowClient()

    def _stage(self, stage: str, **kw: Any) -> Any:
        return mlflow.search_runs([self.experiment], filter_string=f"attributes.run_name = '{stage}'", **kw)

    def q1(self, h: dict[str, Any]) -> list[list[Any]]:
        runs = self._stage("train")
        return runs[["params.seed", "params.n_est", "params.min_split"]].values.tolist()

    def q2(self, h: dict[str, Any]) -> list[list[Any]]:
        out = []
        for _, ev in self._stage("evaluate", order_by=["metrics.roc_auc DESC"], max_results=workload.TOP).iterrows():
            siblings = mlflow.search_runs([self.experiment],
                                          filter_string=f"tags.mlflow.parentRunId = '{ev['tags.mlflow.parentRunId']}'")
            by_stage = {r["tags.mlflow.runName"]: r for _, r in siblings.iterrows()}
            out.append([ev["metrics.roc_auc"], int(by_stage["train"]["params.n_est"]),
                        int(by_stage["featurize"]["params.max_features"])])
        return out

    def _graph(self) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, str]]:
        """Every stage run's input and output dataset names, and its stage."""
        inputs: dict[str, list[str]] = {}
        outputs: dict[str, list[str]] = {}
        stage: dict[str, str] = {}
        token = None
        while True:
            page = self.client.search_runs([self.experiment], max_results=5000, page_token=token)
            for run in page:
                stage[run.info.run_id] = run.info.run_name
                for d in run.inputs.dataset_inputs:
                    ctx = next((t.value for t in d.tags if t.key == CONTEXT), "input")
                    (outputs if ctx == "output" else inputs).setdefault(run.info.run_id, []).append(d.dataset.name)
            token = page.token
            if not token:
                return inputs, outputs, stage

    def _walk(self, start: str, up: bool) -> tuple[set[str], list[str]]:
        """The dataset names up or downstream of ``start``, and the stages of the runs between."""
        inputs, outputs, stage = self._graph()
        towards, away = (outputs, inputs) if up else (inputs, outputs)
        users: dict[str, list[str]] = {}
        for run, names in towards.items():
            for name in names:
                users.setdefault(name, []).append(run)
        arts: set[str] = set()
        runs: set[str] = set()
        frontier = {start}
        while frontier:
            hop = {r for name in frontier for r in users.get(name, [])} - runs
            runs |= hop
            frontier = {name for r in hop for name in away.get(r, [])} - arts
            arts |= frontier
        return arts, sorted(stage[r] for r in runs)

    def q3(self, h: dict[str, Any]) -> dict[str, list[str]]:
        arts, stages = self._walk(h["q3_model"], up=True)
        return {"artifacts": sorted(arts), "executions": stages}

    def q4(self, h: dict[str, Any]) -> list[str]:
        return sorted(self._walk(h["q4_raw"], up=False)[0])

    def q5(self, h: dict[str, Any]) -> list[float]:
        return [m.value for m in sorted(self.client.get_metric_history(h["q5_train"], "loss"), key=lambda m: m.step)]


if __name__ == "__main__":
    workload.main(Logger(), Queries(), {"mlflow": version("mlflow")})
