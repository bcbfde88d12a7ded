"""Many sites, one remote: any order of log/push/pull converges; kill -9 and concurrency lose nothing."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cmfq
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.remote import open_remote
from cmfq.warehouse.sync import pull, push, verify
from tests.conftest import make_chain, remote_for

CHILD = Path(__file__).with_name("sync_child.py")
SITES = 3
ops = st.lists(st.tuples(st.sampled_from(["log", "push", "pull"]), st.integers(0, SITES - 1)), min_size=1,
               max_size=12)


def _log(root: Path, site: int, n: int) -> None:
    with cmfq.Tracker(f"site-{site}", warehouse=root, capture_git=False, capture_env=False) as t:
        with t.execution("step", params={"n": n}) as ex:
            ex.log_input(hash=f"{n % 3:032x}", name="shared-input")  # all sites share some inputs
            ex.log_output(hash=f"{site + 10:08x}{n:024x}", name=f"out-{site}-{n}")
            ex.log_metric("m", n)


def _answer(root: Path) -> tuple[list[tuple[object, ...]], int]:
    with cmfq.Warehouse(root) as wh:
        rows = wh.sql("SELECT id, pipeline, status, params::VARCHAR FROM executions ORDER BY id").rows()
        dupes = wh.sql("SELECT count(*) - count(DISTINCT (execution_id, artifact_hash, direction)) FROM events").item()
    return rows, dupes


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_any_interleaving_converges_to_the_union(steps: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sites = [Layout(Path(tmp) / f"site{i}") for i in range(SITES)]
        for s in sites:
            s.init("x")
        remote = open_remote(str(Path(tmp) / "remote"))
        logged: set[str] = set()
        for n, (op, i) in enumerate(steps):
            if op == "log":
                _log(sites[i].root, i, n)
                logged.add(f"site-{i}")
            elif op == "push":
                assert push(sites[i], remote).failed == []
            else:
                before = set(remote.list().partitions)
                assert pull(sites[i], remote).failed == []
                assert before <= set(sites[i].partitions())  # a pull brings everything the remote had
        for s in sites:
            push(s, remote)
        for s in sites:
            pull(s, remote)
        answers = [_answer(s.root) for s in sites]
        assert all(a == answers[0] for a in answers)  # the same union everywhere
        assert answers[0][1] == 0  # and no fact twice
        assert {p for _, p, _, _ in answers[0][0]} == logged
        assert len(answers[0][0]) == sum(op == "log" for op, _ in steps)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["folder", "s3"])
def test_kill_9_during_push_and_pull_then_rerun(tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    source = tmp_path / "source"
    make_chain(source, "big", [f"s{i}" for i in range(60)])  # ~180 partitions
    remote, args = remote_for(kind, tmp_path, request)
    expected = set(Layout(source).partitions())
    rng = random.Random(7)
    for action, layout in (("push", Layout(source)), ("pull", Layout(tmp_path / "sink"))):
        layout.init("x")
        for _ in range(3):
            child = subprocess.Popen([sys.executable, str(CHILD), action, str(layout.root), *args],
                                     stdout=subprocess.PIPE, text=True)
            time.sleep(0.3 + rng.random() * 0.6)
            child.send_signal(signal.SIGKILL)
            child.wait()
        done = subprocess.run([sys.executable, str(CHILD), action, str(layout.root), *args], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0 and done.stdout.split()[2] == "0", done.stderr  # no refusals
    assert set(remote.list().partitions) == expected
    assert set(Layout(tmp_path / "sink").partitions()) == expected
    assert verify(remote=remote).bad == [] and verify(Layout(tmp_path / "sink")).bad == []
    assert _answer(tmp_path / "sink") == _answer(source)
