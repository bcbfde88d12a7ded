"""DuckDB's thread pool follows the cores this process may use, not the machine's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import cmfq

PROBE = """
import sys, cmfq
from cmfq.warehouse import query
wh = cmfq.Warehouse(sys.argv[1])
print(wh._rows("SELECT current_setting('threads')")[0][0])
wh.ancestors(sys.argv[2])  # a walk sets threads for itself, then puts them back
print(wh._rows("SELECT current_setting('threads')")[0][0])
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_a_process_held_to_one_core_runs_duckdb_on_one_thread(tmp_path: Path) -> None:
    with cmfq.Tracker("p", warehouse=tmp_path, capture_git=False, capture_env=False) as t:
        with t.execution("s") as ex:
            ex.log_input(hash="a" * 32, name="in")
            ex.log_output(hash="b" * 32, name="out")
    one = min(os.sched_getaffinity(0))
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), "b" * 32], capture_output=True, text=True,
                         check=True, preexec_fn=lambda: os.sched_setaffinity(0, {one}))
    assert out.stdout.split() == ["1", "1"]
