"""kill -9 loses nothing that a call returned; concurrent writers lose and duplicate nothing."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cmfq
from cmfq.warehouse import partition
from cmfq.warehouse.layout import Layout

CHILD = Path(__file__).with_name("logger_child.py")


def _spawn(warehouse: Path, tag: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(CHILD), str(warehouse), tag, str(count)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _acks(output: str) -> dict[int, str]:
    return {int(parts[1]): parts[2] for parts in (line.split() for line in output.splitlines())
            if len(parts) == 3 and parts[0] == "ack"}


def _check(warehouse: Path, acked: dict[str, int]) -> None:
    """Every acknowledged execution is there exactly once, with all its facts; nothing is
    left running; no partition is corrupt."""
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


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_acknowledged_fact(tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    rng = random.Random(1234)
    acked: dict[str, int] = {}
    kills = 6
    for k in range(kills):
        child = _spawn(warehouse, f"k{k}", -1)
        # Kill at a random moment after the first acknowledged fact, not after a fixed delay:
        # on a loaded machine startup alone can outlast any fixed delay.
        assert child.stdout is not None
        first = child.stdout.readline()
        time.sleep(rng.random() * 0.8)
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=30)
        assert first.startswith("ack"), f"the child died before logging: {first!r} {err[-2000:]}"
        got = _acks(first + out)
        acked.update({exec_id: i for i, exec_id in got.items()})
        _check(warehouse, acked)
    assert len(acked) > kills  # the children did log before dying


@pytest.mark.slow
def test_four_processes_log_at_once(tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    cmfq.Tracker("init", warehouse=warehouse, capture_git=False, capture_env=False).close()
    children = [_spawn(warehouse, f"w{n}", 40) for n in range(4)]
    acked: dict[str, int] = {}
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        acked.update({exec_id: i for i, exec_id in _acks(out).items()})
    assert len(acked) == 160
    _check(warehouse, acked)
