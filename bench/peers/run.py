"""Peer benchmarks: ``python bench/peers/run.py [--sizes 50,200,1000] [--systems cmfq,mlmd,mlflow,mlflow-batch,cmflib]
[--cmflib-max 50] [--batch-max 200] [--scratch DIR] [--out FILE]`` (``make bench-peers``); ``--table RESULTS.json...`` prints the table again.

The workload (workload.py) logged and queried by each system through its own driver
(drive_<system>.py), each peer in a throwaway virtualenv of its own under ``bench/.venvs/``
(built by tests/interop/peers.py; ``BENCH_PEER_VENVS`` points elsewhere). Every logging run
and every query run is a fresh process; each query answer is checked against the workload's
truth. Writes ``bench/results/peers-<UTC time>.json`` and prints cmfq's ratio to each peer.
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
import time
from concurrent.futures import ThreadPoolExecutor
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


def drive(system: str, args: list[str], cwd: Path) -> dict[str, Any]:
    """Run the system's driver with ``args`` in a fresh process; its JSON, plus the process's wall time."""
    peer, driver, env, _ = SYSTEMS[system]
    started = time.perf_counter()
    if peer is None:
        proc = subprocess.run([sys.executable, str(HERE / driver), *args], cwd=cwd, capture_output=True, text=True,
                              timeout=3600)
    else:
        proc = run_peer(peer, [str(HERE / driver), *args], cwd=cwd, env=env, timeout=3600, venvs=VENVS)
    out: dict[str, Any] = json.loads(check(proc).strip().splitlines()[-1])
    out["process_wall_s"] = time.perf_counter() - started
    return out


def bench(system: str, n: int, scratch: Path) -> dict[str, Any]:
    folder = scratch / f"{system}-{n}"
    logged = drive(system, ["log", str(folder), str(n)], scratch)
    result: dict[str, Any] = {"system": system, "n": n, "log": logged}
    if SYSTEMS[system][3]:
        result["queries"] = drive(system, ["query", str(folder), str(n), json.dumps(logged["handles"])], scratch)
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


def _report(results: list[dict[str, Any]], failures: list[str], sizes: list[int], venvs_s: float,
            total_s: float, scratch: Path) -> dict[str, Any]:
    versions: dict[str, str] = {}
    for r in results:
        versions.update(r["log"]["versions"])
    return {"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine(),
            "versions": versions, "sizes": sizes, "venvs_s": venvs_s, "total_s": total_s, "scratch": str(scratch),
            "figures": [{"system": r["system"], "n": r["n"], **row(r)} for r in results], "runs": results,
            "wrong_answers": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50,200,1000")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--cmflib-max", type=int, default=50, help="cmflib runs ~3.6 s an execution: only N <= this")
    parser.add_argument("--batch-max", type=int, default=200,
                        help="the mlflow log_batch variant (logging figures only) at N <= this")
    parser.add_argument("--scratch", type=Path, default=default_scratch(),
                        help="where the stores are written (default: /dev/shm when there, see below)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--table", type=Path, nargs="+", metavar="JSON",
                        help="only print the table of earlier results (a later file's system and N win)")
    args = parser.parse_args()
    if args.table:
        merged = {(r["system"], r["n"]): r for f in args.table for r in json.loads(f.read_text())["runs"]}
        print(table(list(merged.values())))
        return
    sizes, systems = [int(s) for s in args.sizes.split(",")], args.systems.split(",")
    started = time.perf_counter()
    peers = sorted({SYSTEMS[s][0] for s in systems} - {None})  # type: ignore[type-var]
    with ThreadPoolExecutor(len(peers) or 1) as pool:  # minutes each on a cold cache: side by side, untimed
        list(pool.map(lambda peer: peer_venv(peer, VENVS), peers))
    venvs_s = time.perf_counter() - started
    out = args.out or ROOT / "bench" / "results" / f"peers-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    report = _report(results, failures, sizes, venvs_s, venvs_s, args.scratch)
    with tempfile.TemporaryDirectory(prefix="cmfq-peers-", dir=args.scratch) as tmp:
        for n in sizes:
            for system in systems:
                if (system == "cmflib" and n > args.cmflib_max) or (system == "mlflow-batch" and n > args.batch_max):
                    continue
                t0 = time.perf_counter()
                result = bench(system, n, Path(tmp))
                results.append(result)
                errors = [q["error"] for q in (result.get("queries") or {}).values()
                          if isinstance(q, dict) and q.get("error")]
                failures += [f"{system} N={n}: {e}" for e in errors]
                print(f"{system} N={n}: {time.perf_counter() - t0:.0f} s" + (f" WRONG: {errors}" if errors else ""),
                      file=sys.stderr, flush=True)
                # after every system, so that an interrupted run keeps what it measured
                report = _report(results, failures, sizes, venvs_s, time.perf_counter() - started, args.scratch)
                out.write_text(json.dumps(report, indent=1))
    m, versions = report["machine"], report["versions"]
    print(f"\n{m['cores']} cores, {(m['memory_bytes'] or 0) / 2**30:.1f} GiB, {m['platform']}, Python {m['python']}; "
          + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
          + f"; stores in {report['scratch']}; {report['total_s'] / 60:.1f} min\n")
    print(table(results))
    print(f"\n{out}")
    if failures:
        sys.exit("wrong answers:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
