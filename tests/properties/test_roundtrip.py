"""Property: whatever is logged comes back from the warehouse, fact for fact.

Names, params and metric values are drawn from hostile alphabets (quotes, semicolons,
newlines, unicode, SQL) to show they are stored and returned verbatim.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cmfq

names = st.text(min_size=1, max_size=30).filter(str.strip)  # blank names are refused on purpose
param_values = st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=False), st.text(max_size=20),
                         st.booleans(), st.none(), st.lists(st.integers(), max_size=3))
hashes = st.sampled_from([f"{i:032x}" for i in range(12)])
metric_points = st.lists(st.tuples(st.sampled_from(["loss", "acc", "a'b", "x;DROP TABLE metrics"]),
                                   st.one_of(st.none(), st.integers(0, 5)),
                                   st.floats(allow_nan=True, allow_infinity=True)), max_size=8)
execution = st.fixed_dictionaries({
    "stage": names,
    "params": st.dictionaries(names, param_values, max_size=4),
    "inputs": st.lists(hashes, max_size=3, unique=True),
    "outputs": st.lists(hashes, max_size=2, unique=True),
    "metrics": metric_points,
    "fail": st.booleans(),
})


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipeline=names, runs=st.lists(execution, min_size=1, max_size=4))
def test_logged_facts_come_back(pipeline: str, runs: list[dict]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wh_dir = Path(tmp) / "wh"
        expected = {}
        with cmfq.Tracker(pipeline, warehouse=wh_dir, capture_git=False, capture_env=False) as t:
            for run in runs:
                try:
                    with t.execution(run["stage"], params=run["params"]) as ex:
                        for h in run["inputs"]:
                            ex.log_input(hash=h, name=f"in-{h[-2:]}")
                        for h in run["outputs"]:
                            ex.log_output(hash=h, name=f"out-{h[-2:]}")
                        for name, step, value in run["metrics"]:
                            ex.log_metric(name, value, step=step)
                        if run["fail"]:
                            raise RuntimeError("planned")
                except RuntimeError:
                    pass
                last = {}
                for name, step, value in run["metrics"]:
                    last[(name, step)] = value  # the latest point of a (name, step) wins
                expected[ex.id] = (run, last)
        wh = cmfq.Warehouse(wh_dir)
        got = wh.sql("SELECT id, pipeline, stage, status, params::VARCHAR AS params FROM executions")
        assert sorted(got["id"].to_list()) == sorted(expected)
        for row in got.iter_rows(named=True):
            run, last = expected[row["id"]]
            assert row["pipeline"] == pipeline and row["stage"] == run["stage"]
            assert row["status"] == ("failed" if run["fail"] else "completed")
            assert json.loads(row["params"]) == json.loads(json.dumps(run["params"]))
            events = wh.sql("SELECT artifact_hash, direction FROM events WHERE execution_id = ?", [row["id"]])
            assert sorted(events.iter_rows()) == sorted([(h, "in") for h in run["inputs"]]
                                                        + [(h, "out") for h in run["outputs"]])
            points = wh.sql("SELECT name, step, value FROM metrics WHERE execution_id = ?", [row["id"]])
            assert len(points) == len(last)
            for name, step, value in points.iter_rows():
                assert _same(value, last[(name, step)])
        wh.close()
