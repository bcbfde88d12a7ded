"""cmfq's benchmark suite: ``python bench/run.py [--quick] [--only NAME] [--repeats N] [--out DIR]``.

Generates (or reuses) the synthetic warehouse, runs every benchmark in its own subprocess,
writes ``<out>/<suite>-<UTC date-time>.json`` and prints a table of figures against the
targets of the issue. See bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import runner  # noqa: E402
import synth  # noqa: E402

#: Targets of the issue, by figure name: (comparison, limit, unit).
TARGETS: dict[str, tuple[str, float, str]] = {
    "log_execution_median": ("<=", 1.0, "ms"),
    "log_100_step_metrics": ("<=", 1.0, "ms"),
    "ancestors_warm": ("<=", 50.0, "ms"),
    "descendants_warm": ("<=", 100.0, "ms"),
    "topk_warm": ("<=", 500.0, "ms"),
    "topk_first": ("<=", 500.0, "ms"),
    "peak_rss_above_baseline": ("<=", 300.0, "MB"),
    "cli_rss_worst": ("<=", 300.0, "MB"),
    # Issue 9: the same on ~1 M executions / 10 M events / 100 M metric points (synth_scale.py),
    # and the first index build that a command on it runs.
    "scale_cli_rss_worst": ("<=", 300.0, "MB"),
    "scale_index_build_rss": ("<=", 300.0, "MB"),
    "push_noop": ("<=", 2000.0, "ms"),
    "compare_10k_stage_runs": ("<=", 300.0, "ms"),
    "influence_shared": ("<=", 200.0, "ms"),
    # Issue 7: every page by a sidebar click, first time (cold caches): demo <= 2 s, 100k <= 5 s.
    **{f"{pre}nav_{p}_first": ("<=", limit, "ms") for pre, limit in (("demo_", 2000.0), ("", 5000.0))
       for p in ("overview", "executions", "artifacts", "lineage", "compare_models", "compare_datasets",
                 "deployments", "sql_console")},
    "audit_deepest_model": ("<=", 100.0, "ms"),
    "audit_typical_model": ("<=", 100.0, "ms"),
    "best_per_dataset": ("<=", 500.0, "ms"),
    "dvc_read_hashes": ("<=", 1000.0, "ms"),
}


@dataclass
class Step:
    name: str  # as shown and matched by --only, e.g. "lineage[compacted]"
    function: str  # in benchmarks.py
    args: dict[str, Any] = field(default_factory=dict)
    setup: bool = False  # setup steps are reported but have no targets


@dataclass(frozen=True)
class Sizes:
    repeats: int
    build_repeats: int
    reopens: int
    log_executions: int
    log_warmup: int
    log_step_executions: int
    dvc_files: int  # files tracked by .dvc files (the 10,000)
    dvc_lock_outs: int  # stage outputs in dvc.lock
    dvc_commits: int  # commits of the 4-stage pipeline imported with --history


QUICK_SIZES = Sizes(repeats=3, build_repeats=1, reopens=3, log_executions=300, log_warmup=50, log_step_executions=10,
                    dvc_files=1000, dvc_lock_outs=200, dvc_commits=20)
FULL_SIZES = Sizes(repeats=7, build_repeats=2, reopens=5, log_executions=2000, log_warmup=200, log_step_executions=20,
                   dvc_files=10_000, dvc_lock_outs=1000, dvc_commits=200)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small warehouse and few repeats (about a minute)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="run only benchmarks whose name starts with NAME (logging, index_build, lineage, "
                         "topk, compact, analytics, app, sync, spark, dvc, scale; add [fresh] or [compacted] for one "
                         "variant); repeatable")
    ap.add_argument("--repeats", type=int, help="repeats of every timed figure (default 3 quick, 7 full)")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="folder for the JSON result")
    return ap.parse_args(argv)


def plan(wh: str, compacted: str, sizes: Sizes) -> list[Step]:
    steps = [Step("logging", "logging", {"executions": sizes.log_executions, "warmup": sizes.log_warmup,
                                         "rounds": sizes.repeats, "step_executions": sizes.log_step_executions})]
    for variant, path in (("fresh", wh), ("compacted", compacted)):
        if variant == "compacted":
            steps.append(Step("compact", "compact", {"src": wh, "dst": compacted}))
        steps += [
            Step(f"index_build[{variant}]", "index_build",
                 {"path": path, "repeats": sizes.build_repeats, "reopens": sizes.reopens}),
            Step(f"lineage[{variant}]", "lineage", {"path": path, "repeats": sizes.repeats}),
            Step(f"topk[{variant}]", "topk", {"path": path, "repeats": sizes.repeats}),
        ]
    steps.append(Step("analytics", "analytics", {"path": wh, "repeats": sizes.repeats}))
    steps.append(Step("cli_rss", "cli_rss", {"path": wh}))
    steps.append(Step("app[demo]", "app_pages", {"repeats": sizes.repeats, "demo": True}))
    steps.append(Step("app[100k]", "app_pages", {"repeats": sizes.repeats, "quick": sizes is QUICK_SIZES}))
    steps.append(Step("sync", "sync", {"path": wh, "repeats": sizes.repeats}))
    # Issue 11: the same questions through Spark local[2], answers checked against DuckDB.
    steps.append(Step("spark", "spark", {"path": wh, "repeats": min(sizes.repeats, 3)}))
    steps.append(Step("dvc", "dvc", {"files": sizes.dvc_files, "lock_outs": sizes.dvc_lock_outs,
                                     "commits": sizes.dvc_commits, "repeats": sizes.repeats}))
    # Issue 9: a warehouse 10x the events and 35x the metric points of the one above.
    steps.append(Step("scale", "scale", {"quick": sizes is QUICK_SIZES}))
    return steps


def select(steps: list[Step], only: list[str], compacted_ready: bool) -> list[Step]:
    """The steps --only asks for, plus what they need: the query benchmarks need an
    up-to-date index (an untimed setup step) and the compacted variants the compacted copy."""
    chosen = [s for s in steps if not only or any(s.name.startswith(o) for o in only)]
    out: list[Step] = []
    needs_copy = any("[compacted]" in s.name for s in chosen) and not compacted_ready
    if needs_copy and not any(s.function == "compact" for s in chosen):
        chosen.insert(0, next(s for s in steps if s.function == "compact"))
    for s in chosen:
        if s.function in ("lineage", "topk", "compact", "analytics", "spark"):
            path = str(s.args.get("path") or s.args["src"])
            out.append(Step(f"setup: index of {Path(path).name}", "prepare_index", {"path": path}, setup=True))
        if s.function == "scale":
            out.append(Step("setup: scale warehouse", "generate_scale", s.args, setup=True))
        out.append(s)
    return out


def machine() -> dict[str, Any]:
    import duckdb
    import polars
    import pyarrow

    import cmfq

    mem = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")), 0)
    return {"cores": os.cpu_count(), "memory_gib": round(mem / 2**20, 1), "python": platform.python_version(),
            "platform": platform.platform(), "duckdb": duckdb.__version__, "pyarrow": pyarrow.__version__,
            "polars": polars.__version__, "cmfq": cmfq.__version__}


def git_state() -> str:
    """HEAD, and when tracked files differ from it a digest of the diff (the exact tree measured)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, timeout=30).stdout

    try:
        head, diff = git("rev-parse", "--short", "HEAD").strip(), git("diff", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (f"+dirty (diff sha1 {hashlib.sha1(diff.encode()).hexdigest()[:10]})" if diff else "")


def judge(result: dict[str, Any], setup: bool) -> None:
    """Add the RSS figure and each figure's target and pass/fail."""
    rss = result.get("rss", {}).get("above_baseline_mb")
    if rss is not None and not setup and not result.get("error"):
        result.setdefault("figures", []).append(
            {"name": "peak_rss_above_baseline", "unit": "MB", "median": rss, "repeats": [rss], "n": 1})
    for fig in result.get("figures", []):
        target = None if setup else TARGETS.get(fig["name"])
        if target:
            op, limit, unit = target
            fig["target"] = f"{op} {limit:g} {unit}"
            fig["pass"] = fig["median"] <= limit
        else:
            fig["target"], fig["pass"] = None, None


def fmt(value: float) -> str:
    return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"


def table(results: list[dict[str, Any]]) -> str:
    rows = [("benchmark", "figure", "median", "min..max", "n", "target", "")]
    for r in results:
        if r.get("setup"):
            continue
        if r.get("error"):
            rows.append((r["name"], "ERROR", "", "", "", "", "see JSON"))
        for f in r.get("figures", []):
            spread = f"{fmt(f['min'])}..{fmt(f['max'])}" if "min" in f else ""
            verdict = {True: "PASS", False: "FAIL", None: ""}[f["pass"]]
            rows.append((r["name"], f["name"], f"{fmt(f['median'])} {f['unit']}", spread, str(f["n"]),
                         f["target"] or "", verdict))
        for c in r.get("checks", []):
            if not c["ok"]:
                rows.append((r["name"], f"check: {c['name']}", "", "", "", c["detail"], "WRONG"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    suite = "quick" if args.quick else "full"
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.repeats:
        sizes = dataclasses.replace(sizes, repeats=args.repeats, build_repeats=min(args.repeats, sizes.build_repeats),
                                    reopens=args.repeats)
    params = synth.QUICK if args.quick else synth.FULL
    started_at = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()

    git_at_start = git_state()
    print(f"cmfq benchmarks ({suite}) on {git_at_start}: synthetic warehouse {params.key()}", flush=True)
    wh = str(synth.warehouse_dir(params))
    compacted = str(Path(wh).with_name(Path(wh).name + "-compacted"))

    import benchmarks

    steps = select(plan(wh, compacted, sizes), args.only,
                   benchmarks.is_compacted_copy(compacted, params.key()))
    # The synthetic warehouse is generated (or found) only when a chosen step reads it:
    # `--only scale` or `--only logging` do not wait for it.
    gen: dict[str, Any] = {"name": "generate", "setup": True, "info": {"path": wh, "generated_now": None}}
    if any({wh, compacted} & {str(v) for v in s.args.values()} for s in steps):
        gen = runner.run("generate", {"quick": args.quick})
        if gen.get("error"):
            print(gen["error"], file=sys.stderr)
            return 2
        gen.update(name="generate", setup=True)
    results = [gen]
    for step in steps:
        print(f"== {step.name}", flush=True)
        result = runner.run(step.function, step.args)
        result.update(name=step.name, function=step.function, setup=step.setup,
                      args={k: v for k, v in step.args.items()})
        judge(result, step.setup)
        if result.get("error"):
            print(result["error"], file=sys.stderr)
        results.append(result)

    report = {
        "suite": suite,
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - t0, 1),
        "machine": machine(),
        "code": {"at_start": git_at_start, "at_end": git_state()},
        "parameters": {"synthetic": dataclasses.asdict(params), "sizes": dataclasses.asdict(sizes),
                       "only": args.only, "CMFQ_MEMORY_LIMIT": os.environ.get("CMFQ_MEMORY_LIMIT", "512MB (default; cmfq commands query with 128MB)")},
        "warehouse": gen["info"],
        "benchmarks": results,
        "summary": summary(results),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{suite}-{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report, indent=1, default=str))

    for r in results:
        if r.get("function") in ("generate", "generate_scale") or r is gen and gen["info"]["generated_now"] is not None:
            info = r["info"]
            how = f"generated in {info['generation_s']} s" if info["generated_now"] else \
                f"cached (generation took {info['generation_s']} s)"
            print(f"\nwarehouse {Path(info['path']).name}: {info['executions']:,} executions, {info['events']:,} events, "
                  f"{info['metrics']:,} metric points, {info['lineage_edges']:,} lineage edges, "
                  f"{info['files']:,} partition files, {info['bytes'] / 1e6:,.1f} MB; {how}")
    print(table(results))
    if report["code"]["at_start"] != report["code"]["at_end"]:
        print(f"\nWARNING: the code changed during the run ({report['code']['at_start']} -> "
              f"{report['code']['at_end']}); figures may mix versions.")
    s = report["summary"]
    print(f"\n{s['passed']}/{s['targets']} targets met, {s['wrong']} wrong answers, {s['errors']} errors; "
          f"{report['duration_s']} s; results in {out}")
    return 0 if not (s["errors"] or s["wrong"]) else 1


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    figs = [(r["name"], f) for r in results for f in r.get("figures", []) if f.get("pass") is not None]
    return {"targets": len(figs), "passed": sum(f["pass"] for _, f in figs),
            "missed": [f"{n}: {f['name']} {fmt(f['median'])} {f['unit']} (target {f['target']})"
                       for n, f in figs if not f["pass"]],
            "wrong": sum(not c["ok"] for r in results for c in r.get("checks", [])),
            "errors": sum(bool(r.get("error")) for r in results)}


if __name__ == "__main__":
    sys.exit(main())
