"""@cmfq.track: calls recorded as executions, with params, artifacts, metrics, failures, nesting."""

from __future__ import annotations

import asyncio
import json
import warnings
from pathlib import Path

import pytest

import cmfq
from cmfq.errors import InvalidInputError
from cmfq.ingest.decorator import param_value, set_default_tracker, track


@pytest.fixture
def tracker(tmp_path: Path) -> cmfq.Tracker:
    t = cmfq.Tracker("deco", warehouse=tmp_path / "wh", capture_git=False, capture_env=False)
    yield t
    t.close()


def _executions(t: cmfq.Tracker) -> list[dict[str, object]]:
    t.flush()
    with cmfq.Warehouse(t.layout.root) as wh:
        rows = wh.sql("SELECT id, parent_id, stage, status, error, params::VARCHAR AS params, type "
                      "FROM executions ORDER BY started_at").to_dicts()
    for r in rows:
        r["params"] = json.loads(str(r["params"]))
    return rows


def test_a_call_records_params_artifacts_and_metrics(tracker: cmfq.Tracker, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")

    class Frame:  # something JSON cannot hold
        pass

    @cmfq.track(stage="train", inputs=["data_path"], outputs=["model_path"], tracker=tracker)
    def train(data_path: str, model_path: Path, n_est: int = 100, frame: object = None,
              options: dict[str, float] | None = None) -> dict[str, object]:
        model_path.write_bytes(Path(data_path).read_bytes() * 2)
        return {"roc_auc": 0.91, "loss": 3, "note": "not a number", "ok": True}

    result = train(str(data), tmp_path / "model.pkl", frame=Frame(), options={"lr": 0.1})
    assert result["roc_auc"] == 0.91  # the return value is untouched
    (ex,) = _executions(tracker)
    assert ex["stage"] == "train" and ex["status"] == "completed" and ex["type"] == "train"
    assert ex["params"] == {"data_path": str(data), "model_path": str(tmp_path / "model.pkl"), "n_est": 100,
                            "frame": "<Frame>", "options": {"lr": 0.1}}
    with cmfq.Warehouse(tracker.layout.root) as wh:
        info = wh.execution(str(ex["id"]))
    assert [(a["kind"], a["role"]) for a in info["inputs"]] == [("dataset", "data_path")]
    assert [(a["kind"], a["role"]) for a in info["outputs"]] == [("model", "model_path")]
    assert {m["name"]: m["value"] for m in info["metrics"]} == {"roc_auc": 0.91, "loss": 3.0}


def test_an_exception_marks_the_execution_failed_and_propagates(tracker: cmfq.Tracker) -> None:
    @track(stage="flaky", tracker=tracker)
    def flaky(x: int) -> None:
        raise ValueError(f"bad x {x}")

    with pytest.raises(ValueError, match="bad x 3"):
        flaky(3)
    (ex,) = _executions(tracker)
    assert ex["status"] == "failed" and ex["error"] == "ValueError: bad x 3" and ex["params"] == {"x": 3}


def test_methods_and_nested_calls_record_parent_and_child(tracker: cmfq.Tracker) -> None:
    class Pipeline:
        def __init__(self) -> None:
            self.steps = 0

        @track(stage="step", tracker=tracker)
        def step(self, i: int) -> dict[str, float]:
            self.steps += 1
            return {"i": float(i)}

        @track(stage="run", tracker=tracker)
        def run(self, n: int) -> None:
            for i in range(n):
                self.step(i)

    p = Pipeline()
    p.run(2)
    assert p.steps == 2
    parent, *children = _executions(tracker)
    assert parent["stage"] == "run" and parent["params"] == {"n": 2}  # no self
    assert [c["stage"] for c in children] == ["step", "step"]
    assert {c["parent_id"] for c in children} == {parent["id"]} and parent["parent_id"] is None


def test_nested_calls_without_a_tracker_follow_the_outer_one(tracker: cmfq.Tracker) -> None:
    @track  # bare decorator: stage = function name; tracker found from the enclosing call
    def inner(x: int) -> int:
        return x + 1

    @track(stage="outer", tracker=tracker)
    def outer() -> int:
        return inner(1)

    assert outer() == 2
    parent, child = _executions(tracker)
    assert child["stage"] == "inner" and child["parent_id"] == parent["id"]


def test_default_tracker_env_and_async(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMFQ_WAREHOUSE", str(tmp_path / "envwh"))
    monkeypatch.setenv("CMFQ_PIPELINE", "from-env")

    @track(stage="fetch")
    async def fetch(url: str) -> dict[str, float]:
        await asyncio.sleep(0)
        return {"bytes": 10.0}

    assert asyncio.run(fetch("https://example.invalid/x")) == {"bytes": 10.0}
    from cmfq.ingest.decorator import shared_tracker

    t = shared_tracker("from-env")
    assert t.layout.root == tmp_path / "envwh"
    (ex,) = _executions(t)
    assert ex["stage"] == "fetch" and ex["params"] == {"url": "https://example.invalid/x"}
    t.close()
    other = cmfq.Tracker("chosen", warehouse=tmp_path / "chosen", capture_git=False, capture_env=False)
    set_default_tracker(other)
    try:
        track(stage="s")(lambda: None)()
        assert [e["stage"] for e in _executions(other)] == ["s"]
    finally:
        set_default_tracker(None)
        other.close()


def test_mistakes_are_reported_at_decoration_time_and_missing_files_warn(tracker: cmfq.Tracker,
                                                                          tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"names \['nope'\].*no such argument"):
        track(inputs=["nope"])(lambda path: None)
    with pytest.raises(InvalidInputError, match="list of argument names"):
        track(inputs="path")  # type: ignore[arg-type]

    def gen() -> object:
        yield 1

    with pytest.raises(InvalidInputError, match="generator"):
        track(gen)

    @track(stage="w", outputs={"out": "featureset"}, tracker=tracker)
    def writes_nothing(out: str) -> None:
        pass

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        writes_nothing(str(tmp_path / "missing.parquet"))
    assert any("does not exist" in str(w.message) for w in caught)
    assert _executions(tracker)[0]["status"] == "completed"


def test_param_values() -> None:
    import numpy as np

    assert param_value(np.float32(0.5)) == 0.5 and param_value(np.int64(3)) == 3
    assert param_value(float("nan")) == "nan" and param_value(Path("/a")) == "/a"
    assert param_value(list(range(5000))) == "<list>" and param_value((1, 2)) == [1, 2]
    assert param_value(np.zeros(3)) == "<ndarray>"
