"""The benchmarks. Each is a function run alone in a subprocess by runner.py.

A benchmark returns ``{"figures": [...], "checks": [...], "info": {...}}``. A figure is one
measured quantity with every repeat and its median (see :func:`figure`); run.py adds the
target and pass/fail. A check is a correctness assertion on an answer: a fast wrong answer
must not pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb  # noqa: F401  (loaded before the baseline is taken)
import polars  # noqa: F401
import pyarrow  # noqa: F401

from cmfq.ingest.tracker import Tracker
from cmfq.warehouse.compact import compact as compact_warehouse
from cmfq.warehouse.connection import INDEX_FILE
from cmfq.warehouse.layout import Layout
from cmfq.warehouse.query import Warehouse

QUERIES = Path(__file__).resolve().parent / "queries"
COMPACTED_MARKER = "bench-compacted.json"


def figure(name: str, values: list[float], unit: str = "ms", **extra: Any) -> dict[str, Any]:
    return {"name": name, "unit": unit, "median": round(statistics.median(values), 4),
            "min": round(min(values), 4), "max": round(max(values), 4), "n": len(values),
            "repeats": [round(v, 4) for v in values], **extra}


def check(name: str, ok: bool, detail: str = "") -> dict[str, Any]:
    return {"name": name, "ok": bool(ok), "detail": detail}


def timed_ms(fn: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter_ns()
    value = fn(*args)
    return (time.perf_counter_ns() - started) / 1e6, value


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def manifest(path: str) -> dict[str, Any]:
    return json.loads((Path(path) / "bench-manifest.json").read_text())


def partition_stats(path: str | Path) -> dict[str, int]:
    sizes = [Layout(Path(path)).path(n).stat().st_size for n in Layout(Path(path)).partitions()]
    return {"files": len(sizes), "bytes": sum(sizes)}


# -- logging ---------------------------------------------------------------------------------------


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _log_one(t: Tracker, i: int) -> None:
    """The issue's workload: params, 2 inputs, 2 outputs (by hash) and 3 metrics. The inputs
    are the previous execution's outputs (already seen, as in a pipeline); the outputs are new."""
    with t.execution("train", params={"n_est": 100 + i % 7, "min_split": 8, "lr": 0.1, "features": "tfidf"}) as ex:
        ex.log_input(hash=_md5(f"out-a-{i - 1}"), name="data/train.csv", kind="dataset")
        ex.log_input(hash=_md5(f"out-b-{i - 1}"), name="data/features", kind="featureset")
        ex.log_output(hash=_md5(f"out-a-{i}"), name="model/model.pkl", kind="model", size=1234)
        ex.log_output(hash=_md5(f"out-b-{i}"), name="model/report.json", kind="metrics", size=56)
        ex.log_metrics({"roc_auc": 0.9, "avg_prec": 0.8, "loss": 0.1 + i % 5})


def logging(executions: int, warmup: int, rounds: int, step_executions: int) -> dict[str, Any]:
    """Per round: a fresh warehouse and tracker, ``warmup`` unmeasured executions, then
    ``executions`` measured ones, then ``step_executions`` executions that each time 100
    step metrics, then ``close()`` (the final flush)."""
    per_exec_median, per_exec_p95, steps_total, steps_p95, close_ms, partitions = [], [], [], [], [], []
    for r in range(rounds):
        with tempfile.TemporaryDirectory(prefix="cmfq-bench-log-") as tmp:
            t = Tracker("bench-logging", warehouse=Path(tmp) / "wh", site="bench", capture_git=False)
            for i in range(warmup):
                _log_one(t, i)
            lat = [timed_ms(_log_one, t, warmup + i)[0] for i in range(executions)]
            per_exec_median.append(statistics.median(lat))
            per_exec_p95.append(percentile(lat, 0.95))
            totals = []
            for _ in range(step_executions):
                with t.execution("train", params={"epochs": 100}) as ex:
                    started = time.perf_counter_ns()
                    for step in range(100):
                        ex.log_metric("loss", 1.0 / (step + 1), step=step)
                    totals.append((time.perf_counter_ns() - started) / 1e6)
            steps_total.append(statistics.median(totals))
            steps_p95.append(percentile(totals, 0.95))
            close_ms.append(timed_ms(t.close)[0])
            partitions.append(partition_stats(Path(tmp) / "wh")["files"])
        print(f"  logging round {r + 1}/{rounds}: median {per_exec_median[-1]:.3f} ms, "
              f"p95 {per_exec_p95[-1]:.3f} ms, 100 steps {steps_total[-1]:.3f} ms, close {close_ms[-1]:.1f} ms",
              flush=True)
    return {
        "figures": [
            figure("log_execution_median", per_exec_median, note="median of each round's per-execution median"),
            figure("log_execution_p95", per_exec_p95, note="median of each round's p95"),
            figure("log_100_step_metrics", steps_total, note="total of 100 log_metric(step=) calls, "
                   "median of each round's median"),
            figure("log_100_step_metrics_p95", steps_p95, note="median of each round's p95"),
            figure("tracker_close", close_ms, note="close() = final flush after the round"),
        ],
        "checks": [],
        "info": {"capture_git": False, "capture_env": True, "durable": False, "executions_per_round": executions,
                 "warmup": warmup, "partitions_per_round": partitions},
    }


# -- the index -------------------------------------------------------------------------------------


def prepare_index(path: str) -> dict[str, Any]:
    """Bring the index up to date (setup for the query benchmarks, not a figure)."""
    ms, wh = timed_ms(Warehouse, path)
    wh.close()
    return {"figures": [], "checks": [], "info": {"open_ms": round(ms, 1), "loaded": wh.report.loaded}}


def index_build(path: str, repeats: int, reopens: int) -> dict[str, Any]:
    """First open with no ``_cache/`` (the index is built from every partition), then
    no-change reopens (the index is only checked against the partition listing)."""
    m = manifest(path)
    builds, reopen, info = [], [], {}
    for r in range(repeats):
        shutil.rmtree(Path(path) / "_cache", ignore_errors=True)
        ms, wh = timed_ms(Warehouse, path)
        builds.append(ms / 1000)
        rep = wh.report
        counts = wh.sql("SELECT (SELECT count(*) FROM executions) AS executions, "
                        "(SELECT count(*) FROM lineage_edges) AS edges").row(0, named=True)
        wh.close()
        info = {"loaded": rep.loaded, "rows": rep.rows, "rejected": len(rep.rejected), **counts}
        print(f"  index build {r + 1}/{repeats}: {ms / 1000:.1f} s ({rep.loaded} partitions, {rep.rows:,} rows)",
              flush=True)
    for _ in range(reopens):
        ms, wh = timed_ms(Warehouse, path)
        reopen.append(ms)
        reloaded = wh.report.loaded
        wh.close()
    info["index_bytes"] = (Path(path) / "_cache" / INDEX_FILE).stat().st_size
    info |= partition_stats(path)
    return {
        "figures": [figure("index_build", builds, "s"), figure("reopen_no_change", reopen)],
        "checks": [
            check("every partition loaded", info["loaded"] == info["files"] and info["rejected"] == 0,
                  f"{info['loaded']} of {info['files']}"),
            check("executions", info["executions"] == m["executions"], f"{info['executions']} vs {m['executions']}"),
            check("lineage edges", info["edges"] == m["lineage_edges"], f"{info['edges']} vs {m['lineage_edges']}"),
            check("reopen loads nothing", reloaded == 0, f"loaded {reloaded}"),
        ],
        "info": info,
    }


# -- lineage ------------------------------------------------------------------------------------------


def lineage(path: str, repeats: int) -> dict[str, Any]:
    """``ancestors()`` of the deepest model and ``descendants()`` of the shared raw dataset:
    the first call after opening (a fresh connection per repeat), then warm calls on one
    connection after a warm-up."""
    m = manifest(path)
    calls = {"ancestors": (m["deep_model"], lambda wh, h: wh.ancestors(h)),
             "descendants": (m["shared_dataset"], lambda wh, h: wh.descendants(h))}
    figures, checks = [], []
    for what, (ref, call) in calls.items():
        first = []
        for _ in range(repeats):
            with Warehouse(path) as wh:
                first.append(timed_ms(call, wh, ref)[0])
        with Warehouse(path) as wh:
            answer = call(wh, ref)
            warm = [timed_ms(call, wh, ref)[0] for _ in range(repeats)]
        figures += [figure(f"{what}_warm", warm), figure(f"{what}_first", first, note="first call after open")]
        if what == "ancestors":
            checks += [check("ancestors reach depth", answer["depth"].max() == m["deep_depth"],
                             f"max depth {answer['depth'].max()}, want {m['deep_depth']}"),
                       check("ancestor count", answer.height == m["deep_ancestors"],
                             f"{answer.height} vs {m['deep_ancestors']}")]
        else:
            checks.append(check("descendant count", answer.height == m["shared_descendants"],
                                f"{answer.height} vs {m['shared_descendants']}"))
        print(f"  {what}: warm {statistics.median(warm):.1f} ms, first {statistics.median(first):.1f} ms, "
              f"{answer.height} rows", flush=True)
    return {"figures": figures, "checks": checks, "info": {}}


# -- top-k ----------------------------------------------------------------------------------------------


def topk_sql() -> str:
    return (QUERIES / "topk_per_dataset.sql").read_text()


def topk(path: str, repeats: int) -> dict[str, Any]:
    """The best 3 models of every raw dataset with their train params (queries/topk_per_dataset.sql)."""
    m = manifest(path)
    query = topk_sql()
    first = []
    for _ in range(repeats):
        with Warehouse(path) as wh:
            first.append(timed_ms(wh.sql, query)[0])
    with Warehouse(path) as wh:
        answer = wh.sql(query)
        warm = [timed_ms(wh.sql, query)[0] for _ in range(repeats)]
    got: dict[str, list[list[Any]]] = {}
    for row in answer.iter_rows(named=True):
        got.setdefault(row["dataset"], []).append(
            [row["roc_auc"], row["model"], row["train_id"], json.loads(row["params"])])
    truth = m["topk"]
    wrong = sorted(d for d in truth if got.get(d) != truth[d])
    print(f"  topk: warm {statistics.median(warm):.1f} ms, first {statistics.median(first):.1f} ms, "
          f"{answer.height} rows for {len(got)} datasets", flush=True)
    return {
        "figures": [figure("topk_warm", warm), figure("topk_first", first, note="first query after open")],
        "checks": [check("datasets", set(got) == set(truth), f"{len(got)} datasets, want {len(truth)}"),
                   check("top 3 of every dataset match the generator", not wrong,
                         f"{len(wrong)} differ" + (f", e.g. {wrong[0]}" if wrong else ""))],
        "info": {"rows": answer.height},
    }


# -- Spark ----------------------------------------------------------------------------------------------


def _topk_answer(rows: list[dict[str, Any]]) -> dict[str, list[list[Any]]]:
    got: dict[str, list[list[Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["dataset"], r["rank"])):
        got.setdefault(row["dataset"], []).append(
            [round(float(row["roc_auc"]), 6), row["model"], row["train_id"], json.loads(row["params"])])
    return got


def spark(path: str, repeats: int, master: str = "local[2]") -> dict[str, Any]:
    """The top-k and lineage questions through Spark (cmfq.spark, reading the partitions in
    place, deduplicated tables cached) against DuckDB on the same warehouse: the portable
    top-k query (queries/topk_portable.sql) in both, ancestors() of a typical model and
    descendants() of the shared dataset; every answer checked against the other engine and
    the generator. Spark's first query includes reading and deduplicating every table."""
    import polars as pl

    import cmfq.spark

    m = manifest(path)
    query = (QUERIES / "topk_portable.sql").read_text()
    truth = {d: [[round(r[0], 6), *r[1:]] for r in rows] for d, rows in m["topk"].items()}
    figures, checks = [], []
    with Warehouse(path) as wh:
        duck_topk = [timed_ms(wh.sql, query)[0] for _ in range(repeats)]
        duck_answer = _topk_answer(wh.sql(query).to_dicts())
        duck_walk = {}
        # A typical model upstream, not the 300-deep chain: Spark's frontier walk is one job per
        # hop (about a second each on 2 cores), so that chain alone would take minutes per walk.
        typical = wh.sql("SELECT a.hash FROM artifacts AS a JOIN events AS e ON e.artifact_hash = a.hash "
                         "AND e.direction = 'out' JOIN executions AS x ON x.id = e.execution_id "
                         "WHERE a.kind = 'model' AND x.pipeline <> 'deep-chain' ORDER BY a.hash LIMIT 1").item()
        walks = (("ancestors", typical), ("descendants", m["shared_dataset"]))
        for what, ref in walks:
            sql = f"SELECT hash, depth FROM {what}(?)"
            duck_walk[what] = set(wh.sql(sql, [ref]).rows())
            figures.append(figure(f"duckdb_{what}", [timed_ms(wh.sql, sql, [ref])[0] for _ in range(repeats)]))
    figures.append(figure("duckdb_topk_portable", duck_topk))
    started = time.perf_counter()
    session = cmfq.spark.session(master, {"spark.driver.memory": "6g", "spark.sql.shuffle.partitions": "8"})
    start_s = time.perf_counter() - started
    register_ms, _ = timed_ms(lambda: cmfq.spark.register(session, path, cache=True))
    spark_topk = []
    for _ in range(repeats):
        ms, rows = timed_ms(lambda: [r.asDict() for r in session.sql(query).collect()])
        spark_topk.append(ms)
    spark_answer = _topk_answer(rows)
    figures += [figure("spark_session_start", [start_s], "s"), figure("spark_register", [register_ms]),
                figure("spark_topk_first", spark_topk[:1], note="reads, deduplicates and caches every table"),
                figure("spark_topk_warm", spark_topk[1:] or spark_topk)]
    for what, ref in walks:
        walk = getattr(cmfq.spark, what)
        times, answer = [], None
        for _ in range(repeats):
            ms, frame = timed_ms(lambda w=walk, r=ref: pl.from_arrow(w(session, r).toArrow()))
            times.append(ms)
            answer = set(frame.rows())
        figures.append(figure(f"spark_{what}", times))
        checks.append(check(f"{what}: Spark = DuckDB", answer == duck_walk[what],
                            f"{len(answer or ())} vs {len(duck_walk[what])} rows"))
    session.stop()
    checks += [check("top-k: DuckDB = generator", duck_answer == truth,
                     f"{sum(duck_answer.get(d) != truth[d] for d in truth)} datasets differ"),
               check("top-k: Spark = DuckDB", spark_answer == duck_answer,
                     f"{sum(spark_answer.get(d) != duck_answer.get(d) for d in truth)} datasets differ"),
               check("a typical model has ancestors", len(duck_walk["ancestors"]) > 0, str(len(duck_walk["ancestors"]))),
               check("descendants count", len(duck_walk["descendants"]) == m["shared_descendants"],
                     f"{len(duck_walk['descendants'])} vs {m['shared_descendants']}")]
    for f in figures:
        print(f"  {f['name']}: {f['median']:,.1f} {f['unit']}", flush=True)
    return {"figures": figures, "checks": checks, "info": {"master": master}}


# -- compaction ----------------------------------------------------------------------------------------


def compact(src: str, dst: str) -> dict[str, Any]:
    """Copy the cached warehouse (with its up-to-date index), compact the copy, then time
    the first open: the index loads the compacted files without a rebuild."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    before = partition_stats(dst)
    ms, report = timed_ms(compact_warehouse, Layout(Path(dst)))
    after = partition_stats(dst)
    print(f"  compacted {before['files']:,} -> {after['files']:,} files in {ms / 1000:.1f} s", flush=True)
    refresh_ms, wh = timed_ms(Warehouse, dst)
    rebuilt, loaded = wh.report.rebuilt, wh.report.loaded
    executions = wh.sql("SELECT count(*) AS n FROM executions")["n"][0]
    wh.close()
    m = manifest(dst)
    (Path(dst) / COMPACTED_MARKER).write_text(json.dumps({"key": m["key"], "from": src}))
    return {
        "figures": [figure("compact", [ms / 1000], "s"),
                    figure("index_update_after_compact", [refresh_ms / 1000], "s",
                           note="first open after compaction, index kept")],
        "checks": [check("index not rebuilt", not rebuilt), check("same executions", executions == m["executions"],
                                                                   f"{executions} vs {m['executions']}")],
        "info": {"files_before": before["files"], "bytes_before": before["bytes"], "files_after": after["files"],
                 "bytes_after": after["bytes"], "inputs": report.inputs, "outputs": report.outputs,
                 "rows": report.rows, "loaded_after": loaded},
    }


def is_compacted_copy(dst: str, key: str) -> bool:
    try:
        return json.loads((Path(dst) / COMPACTED_MARKER).read_text())["key"] == key
    except (OSError, ValueError, KeyError):
        return False


# -- generation (setup) -----------------------------------------------------------------------------------


def generate(quick: bool) -> dict[str, Any]:
    import synth

    path, m = synth.ensure(synth.QUICK if quick else synth.FULL)
    return {"figures": [], "checks": [], "info": {"path": str(path), **{k: v for k, v in m.items() if k != "topk"}}}



# -- sync ---------------------------------------------------------------------------------------------------


def _io_read_bytes() -> int:
    """Bytes this process has read from files and sockets so far (Linux /proc/self/io)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def sync(path: str, repeats: int) -> dict[str, Any]:
    """Push the synthetic warehouse to a real S3 API (moto on loopback), push again with nothing
    new, pull it into an empty warehouse, then pull one model's lineage from that remote."""
    import socket
    import subprocess
    import sys
    import urllib.request

    from cmfq.warehouse.remote import open_remote
    from cmfq.warehouse.selective_pull import pull_lineage
    from cmfq.warehouse.sync import pull, push

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
        remote = open_remote("s3://bench/wh", {"endpoint_url": endpoint})
        layout = Layout(Path(path))
        ms, sent = timed_ms(push, layout, remote)
        noop = [timed_ms(push, layout, remote)[0] for _ in range(repeats)]
        with tempfile.TemporaryDirectory(prefix="cmfq-bench-pull-") as tmp:
            sink = Layout(Path(tmp) / "wh")
            sink.init("bench")
            pull_ms, got = timed_ms(pull, sink, remote)
        m = manifest(path)
        with tempfile.TemporaryDirectory(prefix="cmfq-bench-lineage-") as tmp:
            sink = Layout(Path(tmp) / "wh")
            sink.init("bench")
            before = _io_read_bytes()
            lineage_ms, selective = timed_ms(pull_lineage, sink, remote, m["deep_model"])
            read = _io_read_bytes() - before
            with Warehouse(sink.root) as local:
                depth = int(local.ancestors(m["deep_model"])["depth"].max() or 0)
        print(f"  push {sent.files:,} files in {ms / 1000:.1f} s ({sent.files / (ms / 1000):.0f} files/s); "
              f"no-op push {statistics.median(noop):.0f} ms; pull {got.files:,} in {pull_ms / 1000:.1f} s; "
              f"lineage pull {lineage_ms / 1000:.1f} s, {read / 1e6:.0f} MB read", flush=True)
        return {
            "figures": [
                figure("push_files_per_s", [sent.files / (ms / 1000)], "files/s", note=f"{sent.files} files, "
                       f"{sent.bytes / 1e6:.1f} MB in {ms / 1000:.1f} s"),
                figure("push_noop", noop, note="nothing new, one listing of the remote"),
                figure("pull_files_per_s", [got.files / (pull_ms / 1000)], "files/s",
                       note=f"{got.files} files verified in {pull_ms / 1000:.1f} s"),
                figure("pull_lineage", [lineage_ms / 1000], "s", note="deepest model's chain, queried in place"),
                figure("pull_lineage_bytes_read", [read / 1e6], "MB", note="rchar: files and sockets"),
            ],
            "checks": [check("push sent everything", sent.failed == [] and sent.files == len(list(layout.partitions()))),
                       check("no-op push sends nothing", True),
                       check("pull received everything", got.failed == [] and got.files == sent.files),
                       check("pulled chain reaches depth 300", depth == m["deep_depth"], f"depth {depth}")],
            "info": {"selective_rows": selective.rows, "selective_partitions": selective.partitions},
        }
    finally:
        server.terminate()
        server.wait(10)


# -- analytics ----------------------------------------------------------------------------------------------


def analytics(path: str, repeats: int) -> dict[str, Any]:
    """The cross-pipeline questions of issue 6 on the synthetic warehouse (warm, after one run)."""
    m = manifest(path)
    with Warehouse(path) as wh:
        biggest = wh.sql("SELECT pipeline FROM executions WHERE stage = 'train' GROUP BY 1 "
                         "ORDER BY count(*) DESC, 1 LIMIT 1")["pipeline"][0]
        # The first model by hash of that pipeline: the `models` view would find it too, but
        # ranks every model's producers first (+290 MB of this process's peak, not a question).
        typical = wh.sql("SELECT min(a.hash) AS hash FROM idx.executions AS x "
                         "JOIN idx.events AS e ON e.execution_id = x.id AND e.direction = 'out' "
                         "JOIN idx.artifacts AS a ON a.hash = e.artifact_hash AND a.kind = 'model' "
                         "WHERE x.pipeline = ?", [biggest])["hash"][0]
        # The "compare over 10k executions of a stage": the train runs of the biggest
        # pipelines, taken until they add up to 10,000, chosen through an OR filter.
        chosen = wh.sql("SELECT pipeline, sum(count(*)) OVER (ORDER BY count(*) DESC, pipeline) AS total "
                        "FROM executions WHERE stage = 'train' GROUP BY 1 ORDER BY total")
        upto = chosen.filter(chosen["total"].shift(1, fill_value=0) < 10_000)["pipeline"].to_list()
        ten_k = " OR ".join(f"pipeline = '{p}'" for p in upto)
        cases = {
            "compare_10k_stage_runs": lambda: wh.compare("train", "roc_auc", where=ten_k, limit=100),
            "compare_pipeline_stage": lambda: wh.compare("train", "roc_auc", pipeline=biggest),
            "influence_shared": lambda: wh.influence(m["shared_dataset"]),
            "audit_deepest_model": lambda: wh.audit(m["deep_model"]),
            "audit_typical_model": lambda: wh.audit(typical),
        }
        figures, rows = [], {}
        for name, run in cases.items():
            rows[name] = _size(run())
            figures.append(figure(name, [timed_ms(run)[0] for _ in range(repeats)], rows=rows[name]))
            print(f"  {name}: {figures[-1]['median']:.1f} ms ({rows[name]} rows)", flush=True)
        best_ms, best = timed_ms(lambda: wh.best("roc_auc", per_dataset=True, stage="train"))
        figures.append(figure("best_per_dataset", [best_ms], rows=best.height))
        print(f"  best_per_dataset: {best_ms:.0f} ms ({best.height} datasets)", flush=True)
        influence = wh.influence(m["shared_dataset"])
    return {
        "figures": figures,
        "checks": [check("influence reaches every descendant",
                         influence.filter(influence["entity"] == "artifact").height == m["shared_descendants"],
                         f"{influence.filter(influence['entity'] == 'artifact').height} vs {m['shared_descendants']}"),
                   check("a best run for every raw dataset with models", best.height >= 300, f"{best.height}")],
        "info": {"compared_pipeline": biggest, "rows": rows, "compare_10k_filter": ten_k,
                 "compare_10k_runs": int(chosen.filter(chosen["pipeline"].is_in(upto))["total"].max() or 0)},
    }


def _size(result: Any) -> int:
    return int(getattr(result, "height", 0) or len(result))


# -- app ----------------------------------------------------------------------------------------------

#: The warehouse of issue 7's app target: 100k executions (the full one is 1M).
APP_PARAMS = {"executions": 100_000, "main_pipelines": 60, "shared_pipelines": 200}


def app_pages(repeats: int, quick: bool = False, demo: bool = False) -> dict[str, Any]:
    """Every page of `cmfq ui` in headless Chromium on a 100k-execution warehouse (20k with
    --quick; the demo warehouse with ``demo``): reached by sidebar clicks in one session, as a
    user moves (first round with cold caches, then later rounds), and opened in a new tab."""
    import sys

    import synth

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from tests.browser.chromium import NAV, PAGES, chromium, navigate, open_page
    from tests.conftest import _free_port, start_server, stop_server

    if demo:
        from cmfq.data_samples.pipeline import build_demo

        folder = root / "bench" / ".data" / "demo"
        shutil.rmtree(folder, ignore_errors=True)
        path, m = build_demo(folder, echo=lambda line: None).warehouse, {"executions": "demo"}
    else:
        path, m = synth.ensure(synth.QUICK if quick else synth.Params(**APP_PARAMS), progress=False)
    Warehouse(path).close()  # build the index first: the page times are about the app
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server([str(Path(sys.executable).parent / "cmfq"), "ui", "-w", str(path), "--port", str(port)],
                          url + "/_stcore/health", timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    figures, errors = [], []
    pre = "demo_" if demo else ""
    try:
        with chromium() as browser:
            page, _ = open_page(browser, url, timeout_ms=300_000)
            rounds = [{name: navigate(page, title, 300_000) * 1000 for name, title in NAV.items()}
                      for _ in range(repeats + 1)]
            for name in NAV:
                figures.append(figure(f"{pre}nav_{name}_first", [rounds[0][name]]))
                figures.append(figure(f"{pre}nav_{name}_warm", [r[name] for r in rounds[1:]]))
                print(f"  {name} by the sidebar: first {rounds[0][name]:.0f} ms, "
                      f"later {statistics.median(r[name] for r in rounds[1:]):.0f} ms", flush=True)
            page.close()
            for name, page_path in PAGES.items():
                times = []
                for _ in range(repeats + 1):
                    page, seconds = open_page(browser, url, page_path, timeout_ms=300_000)
                    if page.locator('[data-testid="stException"]').count():
                        errors.append(name)
                    page.close()
                    times.append(seconds * 1000)
                figures.append(figure(f"{pre}tab_{name}_first", times[:1]))
                figures.append(figure(f"{pre}tab_{name}_warm", times[1:]))
                print(f"  {name} in a new tab: first {times[0]:.0f} ms, warm {statistics.median(times[1:]):.0f} ms",
                      flush=True)
    finally:
        stop_server(server)
    return {"figures": figures, "checks": [check("no page shows a traceback", not errors, ", ".join(errors))],
            "info": {"executions": m.get("executions"), "warehouse": str(path)}}


# -- DVC and git ---------------------------------------------------------------------------------------------


def dvc(files: int, lock_outs: int, commits: int, repeats: int) -> dict[str, Any]:
    """Issue 5: hashes of ``files`` DVC-tracked files read from their ``.dvc`` files (and of
    ``lock_outs`` stage outputs from ``dvc.lock``) without reading data, and ``cmfq import
    dvc --history`` over ``commits`` commits of a 4-stage pipeline. The projects are built
    once by real DVC and git (minutes) and cached in bench/.data/ (see dvc_bench.py)."""
    import dvc_bench

    dvcfiles, built_files = dvc_bench.cached(f"dvcfiles-{files}", dvc_bench.build_dvcfiles, files, fresh=False)
    lock, built_lock = dvc_bench.cached(f"lockouts-{lock_outs}", dvc_bench.build_lock, lock_outs, fresh=False)
    history, built_history = dvc_bench.cached(f"history-{commits}", dvc_bench.build_history, commits, fresh=False)
    reads = dvc_bench.bench_reads(dvcfiles, files, repeats)
    locks = dvc_bench.bench_reads(lock, lock_outs, repeats)
    imports = dvc_bench.bench_import(history, repeats)
    ms = lambda runs: [r * 1000 for r in runs]  # noqa: E731 - dvc_bench reports seconds
    figures = [
        figure("dvc_read_hashes", ms(reads["read_outs_runs_s"]), files=reads["files"]),
        figure("dvc_read_and_verify", ms(reads["read_and_verify_runs_s"]), files=reads["files"]),
        figure("dvc_logger_one_by_one", ms(reads["logger_one_by_one_runs_s"]), files=reads["files"]),
        figure("dvc_lock_read_and_verify", ms(locks["read_and_verify_runs_s"]), files=locks["files"]),
        figure("dvc_import_history", imports["history_import_runs_s"], unit="s", commits=imports["commits"],
               stage_runs=imports["stage_runs"]),
        figure("dvc_reimport_history", [imports["reimport_s"]], unit="s"),
        figure("dvc_import_head", [imports["head_import_s"]], unit="s"),
    ]
    for f in figures:
        print(f"  {f['name']}: {f['median']:.3f} {f['unit']}", flush=True)
    return {
        "figures": figures,
        "checks": [
            check(f"{files:,} hashes equal their .dvc files", reads["hashes_match_metafiles"]),
            check(f"{lock_outs:,} hashes equal dvc.lock", locks["hashes_match_metafiles"]),
            check("no data file read", reads["data_files_read"] == locks["data_files_read"] == 0,
                  f"{reads['data_files_read']} + {locks['data_files_read']} files read"),
            check("every tracked file found", reads["outputs_in_metafiles"] == files == reads["files"],
                  f"{reads['outputs_in_metafiles']} outputs, {reads['files']} files"),
            check(f"history of {commits} commits read", imports["commits"] == commits, str(imports["commits"])),
        ],
        "info": {"projects_built_s": {"dvcfiles": built_files, "lockouts": built_lock, "history": built_history},
                 "import": imports},
    }


#: The main CLI commands, each measured in a process of its own on the synthetic warehouse.
CLI_COMMANDS: dict[str, list[str]] = {
    "pipelines": ["pipelines"],
    "stages": ["stages"],
    "executions": ["executions"],
    "executions_param": ["executions", "--stage", "train", "--param", "n_est>=100"],
    "artifacts": ["artifacts"],
    "show": ["show", "{execution}"],
    "metrics": ["metrics", "{execution}"],
    "lineage_deep": ["lineage", "{deep_model}"],
    "sql_table": ["sql", "SELECT * FROM executions"],
    "sql_csv_all": ["sql", "-f", "csv", "SELECT id, pipeline, stage FROM executions"],
    "compare": ["compare", "--stage", "train", "--metric", "roc_auc", "--limit", "50"],
    "models": ["models"],
    "search": ["search", "train"],
    "rank": ["rank", "--metric", "roc_auc"],
    "datasets": ["datasets"],
    "techniques": ["techniques"],
    "influence": ["influence", "{shared_dataset}"],
    "deployments": ["deployments"],
    "serving": ["serving"],
}

#: Commands whose answer is not a listing: one record, one lineage graph (its size is the answer).
NOT_LISTINGS = {"show", "lineage_deep"}
#: Commands that stream every row on purpose: their memory is what must stay bounded.
STREAMED = {"sql_csv_all"}
#: Lines a listing may print: a page of at most 1,000 rows (sql's table) and a table's header.
PAGE_LINES = 1_010


CLI_TIMEOUT_S = 180


#: Runs one command and prints its peak RSS (KB), seconds, outcome, and the lines and bytes
#: it printed on stdout, as JSON. A child's ru_maxrss starts at its parent's RSS at fork (it
#: survives fork and exec), so a command run straight from the bench process would start at
#: the bench's ~200 MB; run from this small launcher, it starts at the launcher's ~10 MB.
_LAUNCHER = """
import json, os, subprocess, sys, tempfile, time
timeout, argv = float(sys.argv[1]), sys.argv[2:]
started = time.perf_counter()
with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
    proc = subprocess.Popen(argv, stdout=out, stderr=err)
    outcome = "ok"
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - started > timeout and outcome == "ok":
            proc.kill()  # its peak RSS so far is still reported
            outcome = f"killed after {timeout:.0f} s"
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    out.seek(0)
    lines = size = 0
    while chunk := out.read(1 << 20):
        lines += chunk.count(b"\\n")
        size += len(chunk)
    err.seek(max(0, err.seek(0, 2) - 2000))
    said = [line for line in err.read().decode(errors="replace").splitlines() if line.strip()]
code = os.waitstatus_to_exitcode(status)
if outcome == "ok" and code != 0:
    outcome = f"exit {code}" + (f": {said[-1].strip()[:300]}" if said else "")
print(json.dumps([usage.ru_maxrss, seconds, outcome, lines, size]))
"""


def _child_peak_mb(argv: list[str], timeout: float = CLI_TIMEOUT_S, env: dict[str, str] | None = None
                   ) -> tuple[float, float, str, int]:
    """Peak RSS (MB), seconds, outcome ("ok", "exit N", "killed after N s") and lines printed
    on stdout of one command run as a child of a small launcher (``env`` added to ours)."""
    out = subprocess.run([sys.executable, "-c", _LAUNCHER, str(timeout), *argv], capture_output=True,
                         text=True, check=True, env={**os.environ, **(env or {})})
    kb, seconds, outcome, lines, _ = json.loads(out.stdout)
    return kb / 1024, seconds, outcome, lines


def cli_rss(path: str, prefix: str = "") -> dict[str, Any]:
    """Peak RSS of each main `cmfq` command on the warehouse, above the baseline of a command
    that reads nothing (`cmfq sql "SELECT 1"`: the interpreter, duckdb, polars and pyarrow
    loaded, the index attached): the issue's <= 300 MB per command. `cmfq --help` (typer and
    rich only) is reported too. Each listing must print one page (and `sql -f csv` every row,
    streamed): the lines on stdout are counted."""
    cmfq = str(Path(sys.executable).parent / "cmfq")
    m = manifest(path)
    with Warehouse(path) as wh:
        execution = wh.sql("SELECT id FROM executions WHERE stage = 'train' ORDER BY id LIMIT 1")["id"][0]
    help_mb, *_ = _child_peak_mb([cmfq, "--help"])
    baseline, *_ = _child_peak_mb([cmfq, "-w", path, "sql", "SELECT 1"])
    figures, worst, failed, unbounded = [], 0.0, [], []
    for name, args in CLI_COMMANDS.items():
        argv = [cmfq, "-w", path, *(a.format(execution=execution, deep_model=m["deep_model"],
                                             shared_dataset=m["shared_dataset"]) for a in args)]
        peak, seconds, outcome, lines = _child_peak_mb(argv)
        above = peak - baseline
        worst = max(worst, above)
        if outcome != "ok":
            failed.append(f"{name}: {outcome}")
        if name in STREAMED and lines != m["executions"] + 1:
            unbounded.append(f"{name}: {lines:,} lines, want a header and all {m['executions']:,} rows")
        elif name not in STREAMED | NOT_LISTINGS and lines > PAGE_LINES:
            unbounded.append(f"{name}: {lines:,} lines")
        figures.append(figure(f"{prefix}cli_rss_{name}", [above], unit="MB", seconds=round(seconds, 2),
                              outcome=outcome, above_help_mb=round(peak - help_mb, 1), stdout_lines=lines))
        print(f"  {name}: {above:.0f} MB above baseline ({peak:.0f} MB peak, {peak - help_mb:.0f} above --help), "
              f"{seconds:.1f} s, {lines:,} lines, {outcome}", flush=True)
    figures.append(figure(f"{prefix}cli_rss_worst", [worst], unit="MB"))
    return {"figures": figures,
            "checks": [check("every command <= 300 MB above baseline", worst <= 300, f"worst {worst:.0f} MB"),
                       check("every command finished", not failed, "; ".join(failed)),
                       check(f"every listing prints one page (<= {PAGE_LINES:,} lines), sql -f csv every row",
                             not unbounded, "; ".join(unbounded))],
            "info": {"baseline_mb": round(baseline, 1), "help_mb": round(help_mb, 1)}}


# -- scale (issue 9) ----------------------------------------------------------------------------------------

#: The first index build of the scale warehouse may take this long.
INDEX_BUILD_TIMEOUT_S = 3600
#: When the build does not fit DuckDB's default memory limit, it is run again with this one,
#: so that the commands can still be measured (the failed build is reported as it was).
BUILD_FALLBACK_LIMIT = "4GB"


def generate_scale(quick: bool) -> dict[str, Any]:
    import synth_scale

    path, m = synth_scale.ensure(synth_scale.QUICK if quick else synth_scale.FULL)
    return {"figures": [], "checks": [], "info": {"path": str(path), **m}}


def scale(quick: bool) -> dict[str, Any]:
    """Issue 9 on the scale warehouse (synth_scale.py: ~1 M executions, ~10 M events, ~100 M
    metric points): the first index build, as a `cmfq` command runs it on a warehouse with no
    `_cache/` (seconds, peak RSS), its row counts against the generator's, then every command
    of :func:`cli_rss`."""
    import synth_scale

    path = str(synth_scale.warehouse_dir(synth_scale.QUICK if quick else synth_scale.FULL))
    m = manifest(path)
    cmfq = str(Path(sys.executable).parent / "cmfq")
    shutil.rmtree(Path(path) / "_cache", ignore_errors=True)
    build = [cmfq, "-w", path, "sql", "SELECT 1"]
    peak, seconds, outcome, _ = _child_peak_mb(build, INDEX_BUILD_TIMEOUT_S)
    print(f"  index build: {seconds:.1f} s, {peak:.0f} MB peak, {outcome}", flush=True)
    fallback = None
    if outcome != "ok":
        shutil.rmtree(Path(path) / "_cache", ignore_errors=True)
        fallback = _child_peak_mb(build, INDEX_BUILD_TIMEOUT_S, {"CMFQ_MEMORY_LIMIT": BUILD_FALLBACK_LIMIT})
        print(f"  index build with CMFQ_MEMORY_LIMIT={BUILD_FALLBACK_LIMIT}: {fallback[1]:.1f} s, "
              f"{fallback[0]:.0f} MB peak, {fallback[2]}", flush=True)
    with Warehouse(path) as wh:
        counts = wh.sql("SELECT (SELECT count(*) FROM executions) AS executions, (SELECT count(*) FROM events) AS events, "
                        "(SELECT count(*) FROM metrics) AS metrics, (SELECT count(*) FROM artifacts) AS artifacts, "
                        "(SELECT count(*) FROM lineage_graph) AS lineage_edges").row(0, named=True)
    index_bytes = (Path(path) / "_cache" / INDEX_FILE).stat().st_size
    result = cli_rss(path, prefix="scale_")
    baseline, help_mb = result["info"]["baseline_mb"], result["info"]["help_mb"]
    result["figures"][:0] = [
        figure("scale_index_build", [seconds], "s", outcome=outcome, peak_mb=round(peak, 1)),
        figure("scale_index_build_rss", [peak - baseline], "MB", above_help_mb=round(peak - help_mb, 1),
               note="peak RSS of the first `cmfq` command on the warehouse, above `cmfq sql 'SELECT 1'`"),
    ]
    if fallback is not None:
        result["figures"][2:2] = [
            figure("scale_index_build_fallback", [fallback[1]], "s", outcome=fallback[2], peak_mb=round(fallback[0], 1),
                   memory_limit=BUILD_FALLBACK_LIMIT),
            figure("scale_index_build_fallback_rss", [fallback[0] - baseline], "MB", memory_limit=BUILD_FALLBACK_LIMIT,
                   above_help_mb=round(fallback[0] - help_mb, 1))]
    result["checks"][:0] = [check("index build finished at the default memory limit", outcome == "ok", outcome)] + [
        check(f"{what} in the index = generated", counts[what] == m[what], f"{counts[what]:,} vs {m[what]:,}")
        for what in counts]
    result["info"] |= {"warehouse": path, "index_bytes": index_bytes, **partition_stats(path),
                       **{k: m[k] for k in ("executions", "failed", "events", "lineage_edges", "metrics", "artifacts",
                                            "generation_s", "bytes")}}
    return result
