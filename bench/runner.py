"""Run one benchmark function in its own Python process and measure its peak memory.

The parent calls :func:`run`; it starts ``python bench/runner.py <function> <args.json>
<result.json>``. The child imports everything a benchmark may use (cmfq, pyarrow, duckdb,
polars), records ``ru_maxrss`` as its baseline, runs ``benchmarks.<function>(**args)`` and
records ``ru_maxrss`` again: the difference is the benchmark's peak RSS above the baseline of
an interpreter that has the libraries loaded. Progress printed by the child goes straight
to the terminal.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def maxrss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(function: str, args: dict[str, Any], *, env: dict[str, str] | None = None,
        timeout: float | None = None) -> dict[str, Any]:
    """Run ``benchmarks.<function>(**args)`` in a fresh interpreter; its result dict plus
    ``rss`` and ``seconds``, or ``error`` when it failed."""
    with tempfile.TemporaryDirectory(prefix="cmfq-bench-") as tmp:
        args_file, result_file = Path(tmp) / "args.json", Path(tmp) / "result.json"
        args_file.write_text(json.dumps(args))
        started = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, str(HERE / "runner.py"), function, str(args_file),
                                   str(result_file)], env={**os.environ, **(env or {})}, timeout=timeout)
            code: int | str = proc.returncode
        except subprocess.TimeoutExpired:
            code = f"timeout after {timeout} s"
        seconds = time.perf_counter() - started
        if result_file.exists():
            result: dict[str, Any] = json.loads(result_file.read_text())
        else:
            result = {"error": f"the benchmark process ended with {code} and wrote no result"}
    result["seconds"] = round(seconds, 2)
    return result


def _child(function: str, args_file: str, result_file: str) -> int:
    sys.path.insert(0, str(HERE))
    import benchmarks  # imports cmfq, pyarrow, duckdb and polars before the baseline

    baseline = maxrss_mb()
    try:
        result = getattr(benchmarks, function)(**json.loads(Path(args_file).read_text()))
        code = 0
    except Exception:
        result = {"error": traceback.format_exc()}
        code = 1
    peak = maxrss_mb()
    result["rss"] = {"baseline_mb": round(baseline, 1), "peak_mb": round(peak, 1),
                     "above_baseline_mb": round(peak - baseline, 1)}
    Path(result_file).write_text(json.dumps(result, default=str))
    return code


if __name__ == "__main__":
    sys.exit(_child(*sys.argv[1:4]))
