"""Runs inside mlflow's own virtualenv: ``write URI`` logs a small history with real mlflow calls,
``read URI`` prints (as JSON) what mlflow reads back: every run with params, tags, metric
histories, dataset inputs and logged models."""

from __future__ import annotations

import json
import sys
import warnings

warnings.filterwarnings("ignore")


def write(uri: str) -> None:
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("churn")
    frame = pd.DataFrame({"tenure": [1, 5, 9, 12], "churned": [1, 0, 0, 1]})
    with mlflow.start_run(run_name="pipeline") as parent:
        mlflow.set_tags({"team": "growth", "purpose": "interop test"})
        with mlflow.start_run(run_name="prepare", nested=True):
            mlflow.log_params({"split": 0.25, "seed": 7})
            mlflow.log_input(mlflow.data.from_pandas(frame, source="data/churn.csv", name="churn"), context="training")
        with mlflow.start_run(run_name="train", nested=True):
            mlflow.log_params({"lr": 0.05, "epochs": 20, "optimizer": "adam"})
            for step in range(20):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
                mlflow.log_metric("val_auc", 0.5 + step / 50, step=step)
            mlflow.log_metric("final_auc", 0.88)
            mlflow.log_metric("nan_metric", float("nan"))
            mlflow.log_input(mlflow.data.from_pandas(frame, source="data/churn.csv", name="churn"), context="training")
            from sklearn.linear_model import LogisticRegression

            model = LogisticRegression().fit(frame[["tenure"]], frame["churned"])
            mlflow.sklearn.log_model(model, name="churn-model")
        mlflow.log_metric("pipeline_seconds", 42.0)
    mlflow.set_experiment("second")
    with mlflow.start_run(run_name="failed-run"):
        mlflow.log_param("alpha", "0.1")
        mlflow.log_metric("loss", 3.0, step=0)
        mlflow.end_run(status="FAILED")
    print(parent.info.run_id)


def read(uri: str) -> None:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    runs = {}
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            history = {key: [[m.step, m.value if m.value == m.value else "nan", m.timestamp]
                             for m in client.get_metric_history(run.info.run_id, key)]
                       for key in run.data.metrics}
            runs[run.info.run_id] = {
                "experiment": exp.name, "name": run.info.run_name, "status": run.info.status,
                "start": run.info.start_time, "end": run.info.end_time, "params": run.data.params,
                "tags": run.data.tags, "metrics": history,
                "datasets": [[d.dataset.name, d.dataset.digest, {t.key: t.value for t in d.tags}]
                             for d in run.inputs.dataset_inputs],
                "models": [m.model_id for m in client.search_logged_models([exp.experiment_id])
                           if m.source_run_id == run.info.run_id]}
    print(json.dumps(runs, sort_keys=True))


if __name__ == "__main__":
    {"write": write, "read": read}[sys.argv[1]](sys.argv[2])
