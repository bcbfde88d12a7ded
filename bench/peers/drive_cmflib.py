"""cmflib 0.1.0 as CMF's example scripts use it: one ``Cmf`` writer, per execution
``create_context`` + ``create_execution`` (params as custom properties), ``log_dataset`` for
inputs and outputs (each a ``dvc add``), ``log_model`` for the model, ``log_metric`` +
``commit_metrics`` for train's loss, ``log_execution_metrics`` for evaluate's. Queries through
``CmfQuery``. Runs in cmflib's venv, in a git repo with a remote and a DVC default remote
(``prepare_repo``: both local and unreachable, nothing is contacted).
"""

from __future__ import annotations

import subprocess
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
import workload

warnings.filterwarnings("ignore")

from cmflib.cmf import Cmf  # noqa: E402
from cmflib.cmfquery import CmfQuery  # noqa: E402

SETUP = """set -e
git init -q . && git config user.email bench@example.invalid && git config user.name bench
git commit -q --allow-empty -m init
git remote add cmf_origin https://git.invalid/bench.git
dvc init -q && dvc remote add -d -q local ../dvc-remote
git add .dvc .dvcignore && git commit -q -m 'dvc init'
"""


def _workload(names: Any) -> list[str]:
    """The workload's files among artifact names ``path:md5[...]``, without what cmflib adds of
    its own (the Python environment, step-metrics files, execution metrics)."""
    paths = {n.split(":")[0] for n in names}
    return sorted(p for p in paths if not p.startswith("cmf_artifacts/") and p != "metrics")


class Logger:
    STORE = ["mlmd", "cmf_artifacts"]  # the store and the step-metrics parquet files

    def open(self, root: Path) -> None:
        subprocess.run(SETUP, shell=True, check=True, cwd=root)
        self.cmf = Cmf(filepath="mlmd", pipeline_name="bench", graph=False)

    def log(self, step: workload.Step) -> dict[str, Any]:
        self.cmf.create_context(pipeline_stage=step.stage)
        ex = self.cmf.create_execution(execution_type=step.stage, custom_properties=step.params)
        inputs = [self.cmf.log_dataset(p, "input").name for p in step.inputs]
        handle: dict[str, Any] = {"execution": ex.id, "inputs": inputs}
        for value in step.losses:
            self.cmf.log_metric("loss", {"loss": value})
        if step.losses:
            handle["execution"] = self.cmf.commit_metrics("loss").name  # q5 reads the loss by this name
        if step.finals:
            self.cmf.log_execution_metrics("metrics", step.finals)
        handle["outputs"] = [
            (self.cmf.log_model(p, "output", model_framework="sklearn", model_type="rf", model_name=p)
             if p.startswith("model/model-") else self.cmf.log_dataset(p, "output")).name for p in step.outputs]
        return handle

    def close(self) -> None:
        self.cmf.finalize()


class Queries:
    def open(self, root: Path) -> None:
        self.q = CmfQuery("mlmd")

    def q1(self, h: dict[str, Any]) -> list[list[Any]]:
        columns = [f"custom_properties_{k}" for k in ("seed", "n_est", "min_split")]
        return self.q.get_all_executions_in_stage("bench/train")[columns].values.tolist()

    def q2(self, h: dict[str, Any]) -> list[list[Any]]:
        scored = []
        for exec_id in self.q.get_all_executions_in_stage("bench/evaluate")["id"]:
            arts = self.q.get_all_artifacts_for_execution(int(exec_id))
            metrics = arts[arts["type"] == "Metrics"]
            model = arts[arts["type"] == "Model"]["name"].iloc[0]
            scored.append((float(metrics["custom_properties_roc_auc"].iloc[0]), model))
        out = []
        for auc, model in sorted(scored, reverse=True)[:workload.TOP]:
            train = self.q.find_producer_execution(model)
            parents = self.q.get_one_hop_parent_artifacts(model)
            features = parents[parents["type"] == "Dataset"]["name"].iloc[0]
            featurize = self.q.find_producer_execution(features)
            out.append([auc, train.custom_properties["n_est"].int_value,
                        featurize.custom_properties["max_features"].int_value])
        return out

    def q3(self, h: dict[str, Any]) -> dict[str, list[str]]:
        arts = self.q.get_all_parent_artifacts(h["q3_model"])
        # the executions upstream of its producer, which get_all_parent_executions leaves out
        producer = self.q.find_producer_execution(h["q3_model"])
        types = {*self.q.get_all_parent_executions(h["q3_model"])["Context_Type"],
                 producer.properties["Context_Type"].string_value}
        return {"artifacts": _workload(arts["name"]), "executions": sorted({t.split("/")[-1] for t in types})}

    def q4(self, h: dict[str, Any]) -> list[str]:
        return _workload(self.q.get_all_child_artifacts(h["q4_raw"])["name"])

    def q5(self, h: dict[str, Any]) -> list[float]:
        # CmfQuery.get_metrics finds the artifact but reads its path from a "Name" property that
        # cmflib 0.1.0's own commit_metrics no longer writes (it returns None): read the file
        # the artifact names, as a cmflib user has to.
        [metrics] = [a for a in self.q.store.get_artifacts_by_type("Step_Metrics") if a.name == h["q5_train"]]
        return pd.read_parquet(metrics.name.split(":")[0])["loss"].tolist()


if __name__ == "__main__":
    workload.main(Logger(), Queries(), {"cmflib": version("cmflib"), "dvc": version("dvc")})
