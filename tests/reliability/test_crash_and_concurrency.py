"""kill -9 loses nothing that a call returned; concurrent writers and pushers lose and duplicate nothing.

The torture test runs a busy site (log, push, pull, compact the warehouse and the remote,
query) and kills it with SIGKILL, over and over: at each named crash point of
``cmfq.warehouse.faults`` in turn (between a Parquet write and its rename, inside compaction,
mid-sync...) and at random moments. After every kill the warehouse must open, hold every
acknowledged fact exactly once, have no corrupt partition, and converge with the remote.

``make test`` runs a few kills per remote; ``make torture`` sets ``CMFQ_TORTURE_KILLS`` to 50
per remote (100 in all).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import cmfq
from cmfq.warehouse import faults, partition
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.remote import Remote, open_remote
from cmfq.warehouse.sync import pull, push, verify
from tests.conftest import BIN, make_chain, remote_for

CHILD = Path(__file__).with_name("logger_child.py")
SYNC_CHILD = Path(__file__).parents[1] / "sync" / "sync_child.py"
KILLS = int(os.environ.get("CMFQ_TORTURE_KILLS", "4"))
#: Facts behind one acknowledged execution: itself, 4 metric points, 2 events, 1 annotation.
FACTS_PER_EXECUTION = 8
ARTIFACTS = Path(__file__).parents[1] / "artifacts"


def _spawn(warehouse: Path, tag: str, count: int, *remote: str, fault: str | None = None,
           out: Path | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, faults.ENV: fault} if fault else None
    return subprocess.Popen([sys.executable, str(CHILD), str(warehouse), tag, str(count), *remote],
                            stdout=out.open("w") if out else subprocess.PIPE,
                            stderr=out.with_suffix(".err").open("w") if out else subprocess.PIPE,
                            text=True, env=env)


def _acks(output: str) -> dict[str, int]:
    """Acknowledged executions (id -> i); a line torn by the kill is not an acknowledgement."""
    return {parts[2]: int(parts[1]) for parts in (line.split() for line in output.splitlines())
            if len(parts) == 3 and parts[0] == "ack" and len(parts[2]) == 36}


def _check(warehouse: Path, acked: dict[str, int]) -> int:
    """Every acknowledged execution is there exactly once, with all its facts; nothing is
    left running; no partition is corrupt. Returns the number of facts checked."""
    with cmfq.Warehouse(warehouse) as wh:
        assert wh.problems == []
        got = wh.sql("SELECT id, status, params->>'i' AS i FROM executions")
        by_id = {r["id"]: r for r in got.iter_rows(named=True)}
        assert len(by_id) == got.height  # one row per execution in the view
        for exec_id, i in acked.items():
            assert by_id[exec_id]["status"] == "completed"
            assert int(by_id[exec_id]["i"]) == i
        assert "running" not in set(got["status"])  # killed runs are closed as interrupted
        ids = sorted(acked)
        facts = wh.sql("""SELECT
              (SELECT count(*) FROM metrics WHERE list_contains($1, execution_id)) AS metrics,
              (SELECT count(*) FROM events WHERE list_contains($1, execution_id)) AS events,
              (SELECT count(*) FROM annotations WHERE list_contains($1, entity_id)) AS notes""", [ids]).row(0)
        assert facts[0] == 4 * len(ids) and facts[1] == 2 * len(ids)
        # An annotation is acknowledged once annotate() returned, which is before the ack line.
        assert facts[2] == len(ids)
    layout = Layout(warehouse)
    for name in layout.partitions():
        partition.decode(name, layout.path(name).read_bytes())
    assert not layout.quarantine_dir.exists()  # nothing was ever found damaged
    return FACTS_PER_EXECUTION * len(acked)


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def _kill(child: subprocess.Popen[str], fault: str | None, delay: float, out: Path | None) -> str:
    """SIGKILL the child once it froze at its fault point, or ``delay`` seconds after its first
    acknowledgement (so that a random kill lands in the work, not in the start-up). Returns
    how it died."""
    err = out.with_suffix(".err").read_text if out else lambda: ""
    deadline = time.monotonic() + 60
    while not (_stopped(child.pid) if fault else out is not None and "ack" in out.read_text()):
        assert child.poll() is None, f"the child exited before it was killed: {err()}"
        if time.monotonic() > deadline:
            pytest.fail(f"the child never reached {fault or 'its first acknowledgement'}")
        time.sleep(0.02)
    if not fault:
        time.sleep(delay)
        assert child.poll() is None, f"the child exited by itself: {err()}"
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    return fault.split(":")[0] if fault else "timer"


def _converge(layout: Layout, remote: Remote) -> None:
    """A push then a pull leave the site and the remote with the same partitions."""
    assert push(layout, remote).failed == []
    assert pull(layout, remote).failed == []
    assert set(layout.partitions()) == set(remote.list().partitions)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["folder", "s3"])
def test_torture_sigkill_anywhere_loses_and_duplicates_nothing(tmp_path: Path, kind: str,
                                                               request: pytest.FixtureRequest) -> None:
    started = time.monotonic()
    remote, args = remote_for(kind, tmp_path, request)
    warehouse = tmp_path / "wh"
    layout = Layout(warehouse)
    layout.init("torture")  # so that the first kill lands in logging, not in creating the folder
    rng = random.Random(f"torture-{kind}")
    acked: dict[str, int] = {}
    deaths: Counter[str] = Counter()
    facts = 0
    first = 0 if kind == "folder" else len(faults.POINTS) // 2  # a short run still meets every point once
    for k in range(KILLS):
        # Two kills in three at the named crash points, in turn; the third at a random moment.
        point = faults.POINTS[(first + k - k // 3) % len(faults.POINTS)]
        fault = None if k % 3 == 2 else f"{point}:{rng.randint(1, 2)}"
        out = tmp_path / f"child-{k}.txt"
        child = _spawn(warehouse, f"k{k}", -1, *args, fault=fault, out=out)
        deaths[_kill(child, fault, rng.random() * 1.5, out)] += 1
        acked.update(_acks(out.read_text()))
        facts += _check(warehouse, acked)
        _converge(layout, open_remote(*args[:1], {"endpoint_url": args[1]} if len(args) > 1 else None))
    assert len(acked) > KILLS  # the children did log before dying
    assert verify(remote=remote).bad == []
    sink = Layout(tmp_path / "other-site")  # another site pulls everything: the same answers
    sink.init("x")
    assert pull(sink, remote).failed == []
    assert _check(sink.root, acked) > 0
    ARTIFACTS.mkdir(exist_ok=True)
    summary = {"remote": kind, "kills": KILLS, "deaths": dict(deaths), "acknowledged_executions": len(acked),
               "facts_checked": facts, "seconds": round(time.monotonic() - started, 1)}
    (ARTIFACTS / f"torture-{kind}.json").write_text(json.dumps(summary, indent=2))
    print(f"\ntorture {kind}: {json.dumps(summary)}")


@pytest.mark.slow
def test_kill_9_inside_cmfq_compact_then_rerun(tmp_path: Path) -> None:
    """The `cmfq compact` command frozen and killed after its merged file is written, then
    again after it deleted one input: each time nothing is lost, and a rerun cleans up."""
    warehouse = tmp_path / "wh"
    make_chain(warehouse, "p", [f"s{i}" for i in range(6)])
    expected = _answers(warehouse)
    for fault in ("compact.after_write", "compact.mid_delete"):
        child = subprocess.Popen([str(BIN / "cmfq"), "-w", str(warehouse), "compact"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, faults.ENV: fault})
        assert _kill(child, fault, 0, None) == fault
        assert _answers(warehouse) == expected
    result = subprocess.run([str(BIN / "cmfq"), "-w", str(warehouse), "compact"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(list(Layout(warehouse).partitions(["executions"]))) == 1
    assert _answers(warehouse) == expected


def _answers(warehouse: Path) -> list[tuple[object, ...]]:
    with cmfq.Warehouse(warehouse) as wh:
        assert wh.problems == []
        return wh.sql("SELECT x.id, x.status, count(e.artifact_hash) FROM executions x "
                      "LEFT JOIN events e ON e.execution_id = x.id GROUP BY ALL ORDER BY 1").rows()


@pytest.mark.slow
def test_eight_writers_and_four_pushers_per_remote_at_once(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """8 processes log into one warehouse while 4 sites push into a folder remote and the same
    4 into an S3 remote, all at once; the union a fresh site pulls from either remote holds
    every fact exactly once."""
    remotes = {kind: remote_for(kind, tmp_path / kind, request) for kind in ("folder", "s3")}
    warehouse = tmp_path / "wh"
    cmfq.Tracker("init", warehouse=warehouse, capture_git=False, capture_env=False).close()
    sites = []
    for i in range(3):
        root = tmp_path / f"site{i}"
        make_chain(root, f"site-{i}", ["a", "b"])
        make_chain(root, "common", ["x"])  # the same pipeline name at every site
        sites.append(root)
    per_writer = 8
    writers = [_spawn(warehouse, f"w{n}", per_writer) for n in range(8)]
    # The fourth pusher is the warehouse being written: it pushes what is there at that moment.
    pushers = [subprocess.Popen([sys.executable, str(SYNC_CHILD), "push", str(root), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _, args in remotes.values() for root in [*sites, warehouse]]
    acked: dict[str, int] = {}
    for child in writers:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        acked.update(_acks(out))
    for child in pushers:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0 and out.split()[2] == "0", err  # nothing refused
    assert len(acked) == 8 * per_writer
    _check(warehouse, acked)
    for kind, (remote, _) in remotes.items():
        assert push(Layout(warehouse), remote).failed == []  # what was logged after its push began
        sink = Layout(tmp_path / f"sink-{kind}")
        sink.init("x")
        assert pull(sink, remote).failed == []
        _check(sink.root, acked)
        with cmfq.Warehouse(sink.root) as wh:
            per_pipeline = dict(wh.sql("SELECT pipeline, count(*) AS n FROM executions GROUP BY 1").rows())
            dupes = wh.sql("SELECT count(*) - count(DISTINCT (execution_id, artifact_hash, direction)) "
                           "FROM events").item()
        assert per_pipeline.pop("common") == 3 and dupes == 0
        assert per_pipeline == {**{f"site-{i}": 2 for i in range(3)},
                                **{f"crash-w{n}": per_writer for n in range(8)}}
