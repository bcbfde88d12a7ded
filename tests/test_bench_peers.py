"""The peer benchmarks' workload and answer checks, with cmfq only (no peer virtualenvs)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

PEERS = Path(__file__).resolve().parents[1] / "bench" / "peers"


@pytest.fixture()
def workload(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(PEERS))
    monkeypatch.chdir(tmp_path)  # the harness changes directory; this puts it back
    import workload as module

    return module


def test_cmfq_logs_and_answers_every_query(workload, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import drive_cmfq

    logged = workload.log_run(drive_cmfq.Logger(), tmp_path / "store", 3)
    assert logged["executions"] == 12 and logged["metadata_bytes"] > 0
    assert set(logged["handles"]) == {"q3_model", "q4_raw", "q5_train"}
    queried = workload.query_run(drive_cmfq.Queries(), tmp_path / "store", 3, logged["handles"])
    assert {q: queried[q]["error"] for q in ("q1", "q2", "q3", "q4", "q5")} == dict.fromkeys(
        ("q1", "q2", "q3", "q4", "q5"))


def test_check_catches_wrong_answers(workload) -> None:  # type: ignore[no-untyped-def]
    truth = workload.truth(20)
    for query, answer in truth.items():
        assert workload.check(query, answer, 20) is None
    assert workload.check("q1", list(reversed(truth["q1"])), 20) is None  # q1 is a set
    wrong = copy.deepcopy(truth)
    wrong["q1"].pop()
    wrong["q2"][0][1] += 1
    wrong["q3"]["executions"].append("evaluate")
    wrong["q4"] = wrong["q4"][:-1]
    wrong["q5"][50] += 0.01
    for query, answer in wrong.items():
        assert workload.check(query, answer, 20), query
    assert len(truth["q2"]) == workload.TOP and truth["q2"] == sorted(truth["q2"], reverse=True)


def test_cmflib_gets_a_core_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Side by side only with a core each, and every run in exactly one lane."""
    monkeypatch.syspath_prepend(str(PEERS))
    import run

    runs = [("cmfq", 50), ("mlmd", 50), ("cmflib", 50), ("mlflow", 1000)]
    monkeypatch.setattr(run.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    cmflib, others = run.lanes(runs, serial=False)
    assert (cmflib.runs, cmflib.cpus) == ([("cmflib", 50)], {2})
    assert (others.runs, others.cpus) == ([("cmfq", 50), ("mlmd", 50), ("mlflow", 1000)], {0, 1})
    assert others.peers == ["mlflow", "cmflib"]  # its own venv first, mlmd's (cmflib's) last
    [alone] = run.lanes(runs, serial=True)
    assert alone.runs == runs and alone.cpus is None
    monkeypatch.setattr(run.os, "sched_getaffinity", lambda pid: {0})
    assert [lane.runs for lane in run.lanes(runs, serial=False)] == [runs]


def test_a_run_that_times_out_is_a_failure_not_a_crash(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """cmflib at N = 50 can outlast any budget: its run is reported, the others' survive."""
    monkeypatch.syspath_prepend(str(PEERS))
    import run

    result = run.bench("cmfq", 2, tmp_path, timeout=0.05)
    assert result == {"system": "cmfq", "n": 2, "error": "logging timed out after 0 s"}
    assert not (tmp_path / "cmfq-2").exists()
