"""Interop benchmarks: ``python bench/interop_bench.py [--runs N] [--points N] [--executions N] [--repeats N]
[--only mlflow|mlmd]``.

Prints one JSON object and writes it to ``bench/results/interop-<UTC time>.json``. Every timed
figure is repeated (``--repeats``, default 3; the machine is noisy) and reported as median,
min, max and all values:

- ``mlflow``: an MLflow SQLite store of ``--runs`` runs x ``--points`` metric points (default
  10,000 x 100: two metrics of 50 steps, 3 params and 4 tags per run) imported with
  ``cmfq import mlflow`` (runs/s), against reading the same store with mlflow itself in the
  same benchmark run: ``mlflow.search_runs`` for the runs, then ``get_metric_history`` for
  every metric of every run.
- ``mlmd``: a cmflib-shaped ML Metadata store of ``--executions`` executions (default 100,000;
  5 stages, each execution reading its predecessor's output: 2 events, 1 new artifact, CMF's
  properties) imported with ``cmfq import mlmd`` (seconds).

The stores are written by the real packages (mlflow 3.17.2, ml-metadata 1.15.0 from cmflib
0.1.0), each in its own cached virtualenv (tests/interop/peers.py), and kept in
``bench/.data/interop/`` for the next run. MLflow's schema and one run come from the mlflow
API; the other runs are inserted in bulk into the tables that API created (the API alone
would need ~10,000 round trips of start_run/log_batch/end_run); mlflow then reads them back
as a check. The MLMD store is written entirely through ml-metadata's batch API.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.interop.peers import check, run_peer  # noqa: E402

if TYPE_CHECKING:
    from cmfq.ingest.facts_sink import ImportReport

DATA = HERE / ".data" / "interop"

MLFLOW_WRITE = r"""
import json, sqlite3, sys, time, uuid, random, warnings
warnings.filterwarnings("ignore")
import mlflow
path, runs, points = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mlflow.set_tracking_uri(f"sqlite:///{path}")
exp = mlflow.set_experiment("bench")
with mlflow.start_run(run_name="seed") as seed:  # the shape of a real run
    mlflow.log_params({"lr": 0.1, "depth": 3, "opt": "adam"})
    mlflow.log_metric("loss", 1.0, step=0)
con = sqlite3.connect(path)
cols = [r[1] for r in con.execute("PRAGMA table_info(runs)")]
template = dict(zip(cols, con.execute("SELECT * FROM runs WHERE run_uuid = ?", (seed.info.run_id,)).fetchone()))
tags = dict(con.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (seed.info.run_id,)).fetchall())
rng = random.Random(1)
steps = points // 2
t0 = 1_700_000_000_000
for start in range(0, runs - 1, 1000):
    run_rows, tag_rows, param_rows, metric_rows, latest_rows = [], [], [], [], []
    for i in range(start, min(start + 1000, runs - 1)):
        rid = uuid.UUID(int=rng.getrandbits(128)).hex
        begin = t0 + i * 60_000
        row = dict(template, run_uuid=rid, name=f"run-{i}", start_time=begin, end_time=begin + 30_000,
                   artifact_uri=f"{template['artifact_uri'].rsplit('/', 2)[0]}/{rid}/artifacts")
        run_rows.append(tuple(row[c] for c in cols))
        tag_rows += [(k, f"run-{i}" if k == "mlflow.runName" else v, rid) for k, v in tags.items()]
        param_rows += [("lr", str(round(rng.random(), 4)), rid), ("depth", str(rng.randint(2, 9)), rid),
                       ("opt", rng.choice(["adam", "sgd"]), rid)]
        for key in ("loss", "acc"):
            for s in range(steps):
                metric_rows.append((key, rng.random(), begin + s * 100, rid, s, 0))
            latest_rows.append((key, metric_rows[-1][1], metric_rows[-1][2], steps - 1, 0, rid))
    con.executemany(f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", run_rows)
    con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tag_rows)
    con.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", param_rows)
    con.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)",
                    metric_rows)
    con.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                    "VALUES (?, ?, ?, ?, ?, ?)", latest_rows)
    con.commit()
client = mlflow.MlflowClient()
last = client.search_runs([exp.experiment_id], max_results=1, order_by=["attributes.start_time ASC"])[0]
assert len(client.get_metric_history(last.info.run_id, "loss")) == steps, "mlflow does not read the bulk rows"
print(json.dumps({"experiment_id": exp.experiment_id}))
"""

MLFLOW_READ = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
t_import = time.perf_counter()
import mlflow
t0 = time.perf_counter()
mlflow.set_tracking_uri(f"sqlite:///{sys.argv[1]}")
client = mlflow.MlflowClient()
exp = client.get_experiment_by_name("bench")
runs = mlflow.search_runs([exp.experiment_id], max_results=1_000_000)
t1 = time.perf_counter()
points = 0
for run_id in runs["run_id"]:
    for key in ("loss", "acc"):
        points += len(client.get_metric_history(run_id, key))
t2 = time.perf_counter()
print(json.dumps({"runs": len(runs), "points": points, "search_runs_s": t1 - t0, "metric_history_s": t2 - t1,
                  "total_s": t2 - t0, "import_mlflow_s": t0 - t_import}))
"""

MLMD_WRITE = r"""
import json, sys, time, uuid, hashlib
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb
path, count = sys.argv[1], int(sys.argv[2])
config = pb.ConnectionConfig()
config.sqlite.filename_uri = path
config.sqlite.connection_mode = 3
store = metadata_store.MetadataStore(config)
S = pb.STRING
def typed(kind, name, props):
    t = kind(name=name)
    for k, v in props.items():
        t.properties[k] = v
    return t
parent_type = store.put_context_type(typed(pb.ContextType, "Parent_Context", {"Pipeline": S}))
stage_type = store.put_context_type(typed(pb.ContextType, "Pipeline_Stage", {"Pipeline_Stage": S}))
ds_type = store.put_artifact_type(typed(pb.ArtifactType, "Dataset", {"Commit": S, "url": S, "git_repo": S}))
exec_props = {k: S for k in ["Context_Type", "Execution", "Execution_type_name", "Execution_uuid", "Git_End_Commit",
                            "Git_Repo", "Git_Start_Commit", "Pipeline_Type"]}
exec_props.update({"Context_ID": pb.INT, "Pipeline_id": pb.INT})
stages = ["prepare", "featurize", "train", "evaluate", "report"]
exec_types = [store.put_execution_type(typed(pb.ExecutionType, f"bench/{s}", exec_props)) for s in stages]
pipeline = pb.Context(type_id=parent_type, name="bench")
pipeline.properties["Pipeline"].string_value = "bench"
[pid] = store.put_contexts([pipeline])
ctxs = []
for s in stages:
    c = pb.Context(type_id=stage_type, name=f"bench/{s}")
    c.properties["Pipeline_Stage"].string_value = f"bench/{s}"
    ctxs.append(c)
stage_ids = store.put_contexts(ctxs)
store.put_parent_contexts([pb.ParentContext(child_id=c, parent_id=pid) for c in stage_ids])
def artifact(i):
    digest = hashlib.md5(f"artifact-{i}".encode()).hexdigest()
    a = pb.Artifact(type_id=ds_type, uri=digest, name=f"data/part-{i}.parquet:{digest}")
    a.properties["Commit"].string_value = digest
    a.properties["url"].string_value = f"bench:/remote/files/md5/{digest[:2]}/{digest[2:]}"
    a.properties["git_repo"].string_value = "https://git.invalid/bench.git"
    return a
[previous] = store.put_artifacts([artifact(-1)])
batch = 5000
for start in range(0, count, batch):
    n = min(batch, count - start)
    outputs = store.put_artifacts([artifact(start + k) for k in range(n)])
    execs = []
    for k in range(n):
        i = start + k
        s = i % len(stages)
        e = pb.Execution(type_id=exec_types[s])
        for key, value in {"Context_Type": f"bench/{stages[s]}", "Execution": "['bench.py']",
                           "Execution_type_name": f"bench/{stages[s]}", "Execution_uuid": str(uuid.UUID(int=i + 1)),
                           "Git_End_Commit": "", "Git_Repo": "https://git.invalid/bench.git",
                           "Git_Start_Commit": "0" * 40, "Pipeline_Type": "bench"}.items():
            e.properties[key].string_value = value
        e.properties["Context_ID"].int_value = stage_ids[s]
        e.properties["Pipeline_id"].int_value = pid
        e.custom_properties["seed"].int_value = i
        e.custom_properties["lr"].double_value = 0.001 * (i % 100)
        execs.append(e)
    exec_ids = store.put_executions(execs)
    events = []
    for k, eid in enumerate(exec_ids):
        src = previous if k == 0 else outputs[k - 1]
        events.append(pb.Event(artifact_id=src, execution_id=eid, type=pb.Event.INPUT))
        events.append(pb.Event(artifact_id=outputs[k], execution_id=eid, type=pb.Event.OUTPUT))
    store.put_events(events)
    store.put_attributions_and_associations(
        [pb.Attribution(context_id=stage_ids[(start + k) % len(stages)], artifact_id=a) for k, a in enumerate(outputs)],
        [pb.Association(context_id=stage_ids[(start + k) % len(stages)], execution_id=e) for k, e in enumerate(exec_ids)])
    previous = outputs[-1]
print(json.dumps({"executions": count}))
"""


def _imports(run: Callable[[Path], ImportReport], repeats: int) -> tuple[list[float], list[float], ImportReport]:
    """Seconds of ``repeats`` first imports into a fresh warehouse, and of as many re-imports of
    the same source (which must add nothing); the last first import's report."""
    firsts, agains = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            report = run(Path(tmp) / "wh")
            firsts.append(time.perf_counter() - started)
            started = time.perf_counter()
            assert run(Path(tmp) / "wh").partitions_new == 0, "a re-import wrote new partitions"
            agains.append(time.perf_counter() - started)
    return firsts, agains, report


def _generated(store: Path, peer: str, script: str, *args: object) -> float | None:
    """Write the store with ``script`` in ``peer``'s virtualenv unless it is there already;
    seconds it took, or None when it was reused."""
    if store.is_file():
        return None
    shutil.rmtree(store.parent, ignore_errors=True)
    store.parent.mkdir(parents=True)
    started = time.perf_counter()
    check(run_peer(peer, ["-c", script, str(store), *map(str, args)], cwd=store.parent, timeout=3600))
    return round(time.perf_counter() - started, 1)


def _spread(values: list[float]) -> dict[str, object]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "all": [round(v, 3) for v in values]}


def mlflow_bench(runs: int, points: int, repeats: int) -> dict[str, object]:
    from cmfq.ingest.import_mlflow import import_mlflow

    db = DATA / f"mlflow-{runs}x{points}" / "mlflow.db"
    generated = _generated(db, "mlflow", MLFLOW_WRITE, runs, points)
    uri = f"sqlite:///{db}"
    firsts, agains, report = _imports(lambda wh: import_mlflow(uri, wh), repeats)
    # mlflow's own read, alternating with ours would be fairer on a noisy machine but costs a
    # fresh mlflow process each time; repeated as many times after ours instead
    theirs = [json.loads(check(run_peer("mlflow", ["-c", MLFLOW_READ, str(db)], timeout=7200)).strip().splitlines()[-1])
              for _ in range(repeats)]
    assert all(t["runs"] == report.executions and t["points"] == report.metrics for t in theirs), \
        (theirs, report.to_dict())
    ours_s, mlflow_s = statistics.median(firsts), statistics.median([t["total_s"] for t in theirs])
    return {"runs": report.executions, "metric_points": report.metrics, "store_mb": round(db.stat().st_size / 1e6, 1),
            "generated_s": generated, "partitions": report.partitions_new,
            "cmfq_import_s": _spread(firsts), "cmfq_runs_per_s": round(runs / ours_s),
            "cmfq_reimport_noop_s": _spread(agains),
            "mlflow_read_s": _spread([t["total_s"] for t in theirs]), "mlflow_runs_per_s": round(runs / mlflow_s),
            "mlflow_search_runs_s": _spread([t["search_runs_s"] for t in theirs]),
            "mlflow_get_metric_history_s": _spread([t["metric_history_s"] for t in theirs]),
            "speedup_median": round(mlflow_s / ours_s, 1)}


def mlmd_bench(executions: int, repeats: int) -> dict[str, object]:
    from cmfq.ingest.import_mlmd import import_mlmd

    store = DATA / f"mlmd-{executions}" / "mlmd"
    generated = _generated(store, "cmflib", MLMD_WRITE, executions)
    firsts, agains, report = _imports(lambda wh: import_mlmd(store, wh), repeats)
    assert report.executions == executions
    return {"executions": executions, "events": report.events, "artifacts": len(report.artifacts),
            "store_mb": round(store.stat().st_size / 1e6, 1), "generated_s": generated,
            "partitions": report.partitions_new, "cmfq_import_s": _spread(firsts),
            "cmfq_executions_per_s": round(executions / statistics.median(firsts)),
            "cmfq_reimport_noop_s": _spread(agains)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=100, help="metric points per run (two metrics)")
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of every figure (medians reported)")
    parser.add_argument("--only", choices=["mlflow", "mlmd"])
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for the JSON result")
    args = parser.parse_args()
    os.environ.setdefault("CMFQ_SITE", "bench")
    import cmfq

    out: dict[str, object] = {"machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                                          "cmfq": cmfq.__version__},
                              "params": {"runs": args.runs, "points": args.points, "executions": args.executions,
                                         "repeats": args.repeats}}
    if args.only in (None, "mlflow"):
        out["mlflow"] = mlflow_bench(args.runs, args.points, args.repeats)
    if args.only in (None, "mlmd"):
        out["mlmd"] = mlmd_bench(args.executions, args.repeats)
    text = json.dumps(out, indent=2)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (args.out / f"interop-{stamp}.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
