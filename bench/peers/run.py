"""Peer benchmarks: ``python bench/peers/run.py [--sizes 50,200,1000] [--systems cmfq,mlmd,mlflow,mlflow-batch,cmflib]
[--cmflib-max 50] [--batch-max 200] [--scratch DIR] [--serial] [--out FILE]`` (``make bench-peers``); ``--table RESULTS.json...`` prints the table again.

The workload (workload.py) logged and queried by each system through its own driver
(drive_<system>.py), each peer in a throwaway virtualenv of its own under ``bench/.venvs/``
(built by tests/interop/peers.py; ``BENCH_PEER_VENVS`` points elsewhere). Every logging run
and every query run is a fresh process; each query answer is checked against the workload's
truth. cmflib runs on a core of its own beside the others (see ``lanes``). Writes
``bench/results/peers-<UTC time>.json`` and prints cmfq's ratio to each peer.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))


from tests.interop.peers import check, peer_venv, run_peer  # noqa: E402

VENVS = Path(os.environ.get("BENCH_PEER_VENVS") or HERE.parent / ".venvs")
#: system -> (the peer venv it runs in, or None for ours; its driver; extra environment; does it run queries)
SYSTEMS: dict[str, tuple[str | None, str, dict[str, str], bool]] = {
    "cmfq": (None, "drive_cmfq.py", {}, True),
    "mlmd": ("cmflib", "drive_mlmd.py", {}, True),  # cmflib 0.1.0 pins ml-metadata 1.15.0
    "mlflow": ("mlflow", "drive_mlflow.py", {}, True),
    "mlflow-batch": ("mlflow", "drive_mlflow.py", {"BENCH_MLFLOW_BATCH": "1"}, False),
    "cmflib": ("cmflib", "drive_cmflib.py", {}, True),
}
LOWER_IS_BETTER = ["log_median_ms", "log_p95_ms", "log_wall_s", "peak_rss_mb", "metadata_mb",
                   "q1_ms", "q2_ms", "q3_ms", "q4_ms", "q5_ms"]


def drive(system: str, args: list[str], cwd: Path, timeout: float) -> dict[str, Any]:
    """Run the system's driver with ``args`` in a fresh process; its JSON, plus the process's wall time."""
    peer, driver, env, _ = SYSTEMS[system]
    started = time.perf_counter()
    if peer is None:
        proc = subprocess.run([sys.executable, str(HERE / driver), *args], cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)
    else:
        proc = run_peer(peer, [str(HERE / driver), *args], cwd=cwd, env=env, timeout=timeout, venvs=VENVS)
    out: dict[str, Any] = json.loads(check(proc).strip().splitlines()[-1])
    out["process_wall_s"] = time.perf_counter() - started
    return out


def bench(system: str, n: int, scratch: Path, timeout: float) -> dict[str, Any]:
    """Log and query one system at one size; a run that fails or times out is a result with
    an ``error`` (and no figures), so the other runs and the table survive it."""
    folder = scratch / f"{system}-{n}"
    result: dict[str, Any] = {"system": system, "n": n}
    try:
        result["log"] = drive(system, ["log", str(folder), str(n)], scratch, timeout)
        if SYSTEMS[system][3]:
            result["queries"] = drive(system, ["query", str(folder), str(n), json.dumps(result["log"]["handles"])],
                                      scratch, timeout)
    except subprocess.TimeoutExpired as exc:
        result["error"] = f"{'query' if 'log' in result else 'logging'} timed out after {exc.timeout:.0f} s"
    except (AssertionError, ValueError) as exc:  # a driver that failed, or printed no JSON
        result["error"] = str(exc).strip().splitlines()[-1][:500]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def row(result: dict[str, Any]) -> dict[str, float | None]:
    """The figures compared, in the units of the table."""
    log = result["log"]
    out: dict[str, float | None] = {
        "log_median_ms": log["log_per_execution_s"]["median"] * 1e3, "log_p95_ms": log["log_per_execution_s"]["p95"] * 1e3,
        "log_wall_s": log["process_wall_s"], "peak_rss_mb": log["peak_rss_bytes"] / 2**20,
        "metadata_mb": log["metadata_bytes"] / 2**20}
    queries = result.get("queries") or {}
    for q in ("q1", "q2", "q3", "q4", "q5"):
        out[f"{q}_ms"] = queries[q]["median_s"] * 1e3 if q in queries else None
        out[f"{q}_first_ms"] = queries[q]["first_s"] * 1e3 if q in queries else None
    return out


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: each system's figures per N, then cmfq's ratio to each peer (peer / cmfq: > 1 means cmfq wins)."""
    lines = ["| system | N | " + " | ".join(LOWER_IS_BETTER) + " |", "|---|---|" + "---|" * len(LOWER_IS_BETTER)]
    rows = {(r["system"], r["n"]): row(r) for r in results}
    fmt = lambda v: "–" if v is None else f"{v:.3g}"  # noqa: E731
    for (system, n), figures in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        lines.append(f"| {system} | {n} | " + " | ".join(fmt(figures[m]) for m in LOWER_IS_BETTER) + " |")
    lines += ["", "cmfq's advantage (peer / cmfq; > 1: cmfq is faster or smaller)", "",
              "| vs | N | " + " | ".join(LOWER_IS_BETTER) + " |", "|---|---|" + "---|" * len(LOWER_IS_BETTER)]
    for (system, n), figures in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ours = rows.get(("cmfq", n))
        if system == "cmfq" or ours is None:
            continue
        ratios = [None if figures[m] is None or not ours[m] else figures[m] / ours[m]  # type: ignore[operator]
                  for m in LOWER_IS_BETTER]
        lines.append(f"| {system} | {n} | " + " | ".join("–" if r is None else f"{r:.3g}x" for r in ratios) + " |")
    return "\n".join(lines)


def default_scratch() -> Path:
    """The stores go to memory (tmpfs) when the machine has one with room: a commit that
    fsyncs costs ~16 ms on this VM's disk against ~0.2 ms in tmpfs, and MLflow (a SQLite
    transaction per metric), MLMD and cmflib commit per call, so on disk the figures measure
    the disk, and MLflow alone would take the whole half-hour budget. Every system gets the
    same scratch; ``--scratch`` picks another (a disk, to see the fsync cost)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2 * 2**30:
        return shm
    return Path(tempfile.gettempdir())


def machine() -> dict[str, Any]:
    mem = next((int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), None) if Path("/proc/meminfo").exists() else None
    return {"cores": os.cpu_count(), "memory_bytes": mem, "platform": platform.platform(),
            "python": platform.python_version(), "processor": platform.processor() or platform.machine()}


def _report(results: list[dict[str, Any]], failures: list[str], sizes: list[int], plan: list[Lane],
            total_s: float, scratch: Path) -> dict[str, Any]:
    versions: dict[str, str] = {}
    for r in results:
        versions.update(r["log"]["versions"])
    lanes = [{"name": lane.name, "cpus": sorted(lane.cpus) if lane.cpus else None, "runs": lane.runs,
              "venvs_s": lane.venvs_s, "wall_s": lane.wall_s} for lane in plan]
    return {"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine(),
            "versions": versions, "sizes": sizes, "lanes": lanes, "total_s": total_s, "scratch": str(scratch),
            "figures": [{"system": r["system"], "n": r["n"], **row(r)} for r in results], "runs": results,
            "failures": failures}


@dataclass
class Lane:
    """Runs done one after another, on these cores (None: wherever the OS puts them), after
    building the peer virtualenvs they need."""

    name: str
    runs: list[tuple[str, int]]
    cpus: set[int] | None
    venvs_s: float = 0.0
    wall_s: float = 0.0

    @property
    def peers(self) -> list[str]:
        """mlflow's venv first: mlmd runs in cmflib's, which the cmflib lane may be building."""
        return sorted({SYSTEMS[s][0] for s, _ in self.runs} - {None}, reverse=True)  # type: ignore[type-var]


def lanes(runs: list[tuple[str, int]], serial: bool) -> list[Lane]:
    """cmflib on a core of its own, everything else one after another on the other cores.

    cmflib spends ~7 s an execution starting ``dvc add`` and ``pip freeze`` subprocesses one
    at a time, so at N = 50 it alone takes ~25 minutes on this machine; the other systems
    together take ~15. Side by side on separate cores they fit the half-hour budget, and no
    figure is taken while another system competes for its core (each process, DuckDB's
    threads included, stays on its lane's cores). ``--serial`` (or a one-core machine) runs
    everything in one lane."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    slow = [r for r in runs if r[0] == "cmflib"]
    rest = [r for r in runs if r[0] != "cmflib"]
    if serial or len(cpus) < 2 or not slow or not rest:
        return [Lane("all", runs, None)]
    return [Lane("cmflib", slow, {cpus[-1]}), Lane("others", rest, set(cpus[:-1]))]


def run_lane(lane: Lane, scratch: Path, timeout: float, done: Callable[[Lane, dict[str, Any], float], None]) -> None:
    started = time.perf_counter()
    if lane.cpus is not None:
        os.sched_setaffinity(0, lane.cpus)  # this thread, and every process it starts from now on
    for peer in lane.peers:
        peer_venv(peer, VENVS)
    lane.venvs_s = time.perf_counter() - started
    for system, n in lane.runs:
        t0 = time.perf_counter()
        done(lane, bench(system, n, scratch, timeout), time.perf_counter() - t0)
    lane.wall_s = time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50,200,1000")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--cmflib-max", type=int, default=50, help="cmflib runs ~7 s an execution here: only N <= this")
    parser.add_argument("--batch-max", type=int, default=200,
                        help="the mlflow log_batch variant (logging figures only) at N <= this")
    parser.add_argument("--scratch", type=Path, default=default_scratch(),
                        help="where the stores are written (default: /dev/shm when there, see below)")
    parser.add_argument("--serial", action="store_true",
                        help="run every system one after another, cmflib included (see lanes())")
    parser.add_argument("--timeout", type=float, default=3600,
                        help="seconds one logging or query process may take (a run over it is reported as failed)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--table", type=Path, nargs="+", metavar="JSON",
                        help="only print the table of earlier results (a later file's system and N win)")
    args = parser.parse_args()
    if args.table:
        merged = {(r["system"], r["n"]): r for f in args.table for r in json.loads(f.read_text())["runs"]}
        print(table(list(merged.values())))
        return
    sizes, systems = [int(s) for s in args.sizes.split(",")], args.systems.split(",")
    runs = [(system, n) for n in sizes for system in systems
            if not (system == "cmflib" and n > args.cmflib_max) and not (system == "mlflow-batch" and n > args.batch_max)]
    started = time.perf_counter()
    out = args.out or ROOT / "bench" / "results" / f"peers-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    plan = lanes(runs, args.serial)
    lock = threading.Lock()

    def report() -> dict[str, Any]:
        return _report(results, failures, sizes, plan, time.perf_counter() - started, args.scratch)

    def done(lane: Lane, result: dict[str, Any], took: float) -> None:
        errors = [q["error"] for q in (result.get("queries") or {}).values() if isinstance(q, dict) and q.get("error")]
        errors += [result["error"]] if "error" in result else []
        with lock:
            if "log" in result:
                results.append(result)
            failures.extend(f"{result['system']} N={result['n']}: {e}" for e in errors)
            print(f"[{lane.name}] {result['system']} N={result['n']}: {took:.0f} s"
                  + (f" WRONG: {errors}" if errors else ""), file=sys.stderr, flush=True)
            out.write_text(json.dumps(report(), indent=1))  # after every run: an interrupted one keeps them

    for lane in plan:
        print(f"[{lane.name}] {len(lane.runs)} runs on cores {sorted(lane.cpus) if lane.cpus else 'any'}",
              file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="cmfq-peers-", dir=args.scratch) as tmp:
        with ThreadPoolExecutor(len(plan)) as pool:
            for future in [pool.submit(run_lane, lane, Path(tmp), args.timeout, done) for lane in plan]:
                future.result()
    final = report()
    out.write_text(json.dumps(final, indent=1))
    m, versions = final["machine"], final["versions"]
    print(f"\n{m['cores']} cores, {(m['memory_bytes'] or 0) / 2**30:.1f} GiB, {m['platform']}, Python {m['python']}; "
          + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
          + f"; stores in {final['scratch']}; {final['total_s'] / 60:.1f} min\n")
    print(table(sorted(results, key=lambda r: (r["n"], r["system"]))))
    print(f"\n{out}")
    if failures:
        sys.exit("failed runs or wrong answers:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
