"""A small warehouse whose answers are known: ties, runs never scored, a failed run, two raw
datasets, a dataset shared by two pipelines, featuresets with and without a feature."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import cmfq


def h(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@dataclass
class Zoo:
    root: Path
    runs: dict[str, str] = field(default_factory=dict)  # label -> execution id

    @property
    def wh(self) -> cmfq.Warehouse:
        return cmfq.Warehouse(self.root)


def _train(t: cmfq.Tracker, zoo: Zoo, label: str, features: str, n_est: int, model: str | None,
           roc: float | None, *, fail: bool = False, own_roc: bool = False) -> None:
    try:
        with t.execution("train", params={"n_est": n_est, "model": "gbm"}) as ex:
            zoo.runs[label] = ex.id
            ex.log_input(hash=h(features), name=features, kind="featureset")
            ex.log_metric("loss", 1.0 / (n_est + 1), step=1)
            if fail:
                raise RuntimeError("diverged")
            if model:
                ex.log_output(hash=h(model), name=model, kind="model", properties={"model_type": "GBM"})
            if own_roc and roc is not None:
                ex.log_metrics({"roc_auc": roc})
    except RuntimeError:
        return
    if model and roc is not None and not own_roc:
        with t.execution("evaluate") as ev:
            zoo.runs["eval-" + label] = ev.id
            ev.log_input(hash=h(model), name=model, kind="model")
            ev.log_metrics({"roc_auc": roc})


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    z = Zoo(tmp_path_factory.mktemp("zoo") / "wh")
    with cmfq.Tracker("p1", warehouse=z.root, project="tumors", capture_git=False, capture_env=False) as t:
        with t.execution("prepare", params={"split": 0.2}) as ex:
            z.runs["prepare1"] = ex.id
            ex.log_input(hash=h("R1"), name="raw/r1.csv")
            ex.log_output(hash=h("S1"), name="split/s1.csv")
        for fs, cols in (("F_a", ["x", "y"]), ("F_b", ["x", "y", "z"])):
            with t.execution("featurize", params={"features": fs}) as ex:
                z.runs["featurize-" + fs] = ex.id
                ex.log_input(hash=h("S1"), name="split/s1.csv")
                ex.log_output(hash=h(fs), name=fs, kind="featureset",
                              properties={"features": cols, "transformation": "select"})
        _train(t, z, "T1", "F_a", 10, "M1", 0.8)
        _train(t, z, "T2", "F_b", 100, "M2", 0.9)
        _train(t, z, "T3", "F_b", 200, "M3", 0.9)  # ties T2
        _train(t, z, "T4", "F_b", 0, None, None, fail=True)
        _train(t, z, "T5", "F_a", 20, "M5", None)  # never evaluated
    with cmfq.Tracker("p2", warehouse=z.root, project="wines", capture_git=False, capture_env=False) as t:
        with t.execution("prepare") as ex:
            z.runs["prepare2"] = ex.id
            ex.log_input(hash=h("R2"), name="raw/r2.csv")
            ex.log_output(hash=h("S2"), name="split/s2.csv")
        with t.execution("train", params={"n_est": 50, "model": "linear"}) as ex:
            z.runs["T6"] = ex.id
            ex.log_input(hash=h("S2"), name="split/s2.csv")
            ex.log_output(hash=h("M6"), name="M6", kind="model", properties={"model_type": "Linear"})
        with t.execution("evaluate") as ev:
            z.runs["eval-T6"] = ev.id
            ev.log_input(hash=h("M6"), name="M6", kind="model")
            ev.log_metrics({"roc_auc": 0.7})
    with cmfq.Tracker("p3", warehouse=z.root, project="tumors", capture_git=False, capture_env=False) as t:
        with t.execution("train", params={"n_est": 300, "model": "gbm"}) as ex:  # straight on R1, scores itself
            z.runs["T7"] = ex.id
            ex.log_input(hash=h("R1"), name="raw/r1.csv")
            ex.log_output(hash=h("M7"), name="M7", kind="model", properties={"model_type": "GBM"})
            ex.log_metrics({"roc_auc": 0.95})
    return z
