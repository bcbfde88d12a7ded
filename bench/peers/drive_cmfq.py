"""cmfq: ``Tracker`` for logging, ``Warehouse`` (the query API) for q1-q5. Runs in cmfq's venv."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import workload

import cmfq


class Logger:
    STORE = [".cmfq"]

    def open(self, root: Path) -> None:
        self.tracker = cmfq.Tracker("bench", warehouse=root / ".cmfq")

    def log(self, step: workload.Step) -> dict[str, Any]:
        with self.tracker.execution(step.stage, params=step.params) as ex:
            inputs = [ex.log_input(p) for p in step.inputs]
            for s, value in enumerate(step.losses):
                ex.log_metric("loss", value, step=s)
            for name, value in step.finals.items():
                ex.log_metric(name, value)
            outputs = [ex.log_output(p) for p in step.outputs]
        return {"execution": ex.id, "inputs": inputs, "outputs": outputs}

    def close(self) -> None:
        self.tracker.close()


#: q2 through lineage: evaluate <- model <- train <- features <- featurize.
TOP_MODELS = """
WITH top AS (SELECT execution_id, value FROM final_metrics WHERE name = 'roc_auc' ORDER BY value DESC LIMIT ?)
SELECT DISTINCT top.value AS roc_auc, tr.params::VARCHAR AS train, fz.params::VARCHAR AS featurize
FROM top
JOIN events ei ON ei.execution_id = top.execution_id AND ei.direction = 'in'
JOIN events eo ON eo.artifact_hash = ei.artifact_hash AND eo.direction = 'out'
JOIN executions tr ON tr.id = eo.execution_id AND tr.stage = 'train'
JOIN events ti ON ti.execution_id = tr.id AND ti.direction = 'in'
JOIN events fo ON fo.artifact_hash = ti.artifact_hash AND fo.direction = 'out'
JOIN executions fz ON fz.id = fo.execution_id AND fz.stage = 'featurize'
ORDER BY roc_auc DESC"""


class Queries:
    def open(self, root: Path) -> None:
        self.wh = cmfq.Warehouse(root / ".cmfq")

    def q1(self, h: dict[str, Any]) -> list[list[Any]]:
        rows = self.wh.executions(stage="train")["params"].to_list()
        return [[p["seed"], p["n_est"], p["min_split"]] for p in map(json.loads, rows)]

    def q2(self, h: dict[str, Any]) -> list[list[Any]]:
        return [[auc, json.loads(train)["n_est"], json.loads(feat)["max_features"]]
                for auc, train, feat in self.wh.sql(TOP_MODELS, [workload.TOP]).rows()]

    def q3(self, h: dict[str, Any]) -> dict[str, list[str]]:
        nodes = self.wh.lineage(h["q3_model"], "up").nodes
        upstream = nodes.filter((nodes["type"] == "artifact") & (nodes["id"] != h["q3_model"]))
        return {"artifacts": sorted(upstream["label"].to_list()),
                "executions": sorted(nodes.filter(nodes["type"] == "execution")["label"].to_list())}

    def q4(self, h: dict[str, Any]) -> list[str]:
        return sorted(self.wh.descendants(h["q4_raw"])["name"].to_list())

    def q5(self, h: dict[str, Any]) -> list[float]:
        return self.wh.metric_history(h["q5_train"], "loss")["value"].to_list()


if __name__ == "__main__":
    workload.main(Logger(), Queries(), {"cmfq": version("cmfq"), "duckdb": version("duckdb")})
