"""The one workload every system in the peer benchmarks logs and queries, and the harness the
drivers share. Standard library only: each driver imports this file inside its own system's
virtualenv (Python 3.11, whatever else that venv pins).

CMF's example pipeline, N iterations of prepare -> featurize -> train -> evaluate. Each stage
reads 2 files and writes 2 (small, distinct, 0.3-3 KB), logs its params; train logs 100
per-step ``loss`` values, evaluate the final ``roc_auc`` and ``avg_prec``. Every answer the
queries q1-q5 must give follows from ``i`` alone (``truth``), so each system's answer is checked.

A driver is a module with ``Logger`` (``open(root)``, ``log(step) -> handle``, ``close()``,
``STORE``: the paths its metadata lives in) and ``Queries`` (``open(root)``, ``q1`` ... ``q5``
taking the handles of the logging run) and calls :func:`main`, which prints one JSON object.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGES = ("prepare", "featurize", "train", "evaluate")
STEPS = 100  # per-step loss values of each train execution
TOP = 10  # q2's top-k models
REPEATS = 5  # each query: the median of this many warm calls


@dataclass
class Step:
    """One execution: what it logs, in the order a stage script would."""

    iteration: int
    stage: str
    params: dict[str, Any]
    inputs: list[str]
    outputs: list[str]
    losses: list[float] = field(default_factory=list)
    finals: dict[str, float] = field(default_factory=dict)


def params(stage: str, i: int) -> dict[str, Any]:
    return {"prepare": {"split": 0.2, "seed": i},
            "featurize": {"max_features": 500 + (i * 37) % 2500, "ngrams": 1 + i % 3},
            "train": {"n_est": 10 + (i * 7) % 190, "min_split": 2 + i % 10, "seed": i},
            "evaluate": {"threshold": 0.5}}[stage]


def roc_auc(i: int) -> float:
    return 0.5 + ((i * 7919) % 10007) / 20014  # distinct for every i < 10007: a strict top 10


def loss(i: int, step: int) -> float:
    return 1.0 / (step + 1) + (i % 17) / 1000


def iteration(i: int) -> list[Step]:
    raw, prepared = [f"raw/data-{i}.csv", f"raw/labels-{i}.csv"], [f"prepared/train-{i}.csv", f"prepared/test-{i}.csv"]
    features, model = [f"features/train-{i}.pkl", f"features/test-{i}.pkl"], [f"model/model-{i}.pkl",
                                                                              f"model/vocab-{i}.json"]
    return [Step(i, "prepare", params("prepare", i), raw, prepared),
            Step(i, "featurize", params("featurize", i), prepared, features),
            Step(i, "train", params("train", i), features, model, losses=[loss(i, s) for s in range(STEPS)]),
            Step(i, "evaluate", params("evaluate", i), [model[0], features[1]],
                 [f"eval/metrics-{i}.json", f"eval/plots-{i}.csv"],
                 finals={"roc_auc": roc_auc(i), "avg_prec": roc_auc(i) - 0.05})]


def write_files(root: Path, i: int) -> None:
    """Iteration ``i``'s files: distinct bytes, 300 B to 3 KB each."""
    for step in iteration(i):
        for name in (step.inputs if step.stage == "prepare" else []) + step.outputs:
            seed = hashlib.sha256(name.encode()).digest()
            size = 300 + int.from_bytes(seed[:4], "big") % 2700
            body = (name + "\n" + seed.hex() * (size // 64 + 1))[:size]
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)


# -- the queries' known answers --------------------------------------------------------------


def handles_wanted(n: int) -> dict[str, tuple[int, str, str, int]]:
    """Which logged thing each query starts from: (iteration, stage, 'inputs'|'outputs'|'execution', index)."""
    return {"q3_model": (n - 1, "train", "outputs", 0), "q4_raw": (0, "prepare", "inputs", 0),
            "q5_train": (n // 2, "train", "execution", 0)}


def truth(n: int) -> dict[str, Any]:
    """q1: [seed, n_est, min_split] of every train execution, sorted; q2: [roc_auc, n_est,
    max_features] of the top 10 by roc_auc; q3: the artifact names and the stages upstream of
    the last model; q4: the artifact names downstream of iteration 0's raw data; q5: the loss
    history of iteration n // 2's train execution."""
    last, mid = iteration(n - 1), iteration(n // 2)
    top = sorted(range(n), key=roc_auc, reverse=True)[:TOP]
    return {
        "q1": [[i, params("train", i)["n_est"], params("train", i)["min_split"]] for i in range(n)],
        "q2": [[roc_auc(i), params("train", i)["n_est"], params("featurize", i)["max_features"]] for i in top],
        "q3": {"artifacts": sorted(last[0].inputs + last[1].inputs + last[2].inputs),
               "executions": ["featurize", "prepare", "train"]},
        "q4": sorted({name for step in iteration(0) for name in step.outputs}),
        "q5": mid[2].losses,
    }


def check(query: str, answer: Any, n: int) -> str | None:
    """None if ``answer`` is the workload's truth for ``query`` (floats to 1e-6: ML Metadata keeps
    6 significant digits of a double property), else why not."""
    expected = truth(n)[query]
    if query == "q1":
        answer = sorted([int(a) for a in row] for row in answer)
    if not _same(answer, expected):
        return f"{query}: expected {json.dumps(expected)[:300]}, got {json.dumps(answer)[:300]}"
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(b, float) or isinstance(a, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= 1e-6
    return bool(a == b)


# -- the harness -----------------------------------------------------------------------------


def bytes_under(paths: list[Path]) -> int:
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
            "max": ordered[-1]}


def log_run(logger: Any, root: Path, n: int) -> dict[str, Any]:
    """Log ``n`` iterations with ``logger`` in ``root`` (the working directory), writing each
    iteration's files before its executions are timed."""
    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    os.chdir(root)
    logger.open(root)
    per_exec: list[float] = []
    by_stage: dict[str, list[float]] = {s: [] for s in STAGES}
    wanted = handles_wanted(n)
    handles: dict[str, Any] = {}
    for i in range(n):
        write_files(root, i)
        for step in iteration(i):
            t0 = time.perf_counter()
            handle = logger.log(step)
            took = time.perf_counter() - t0
            per_exec.append(took)
            by_stage[step.stage].append(took)
            for key, (it, stage, part, index) in wanted.items():
                if (it, stage) == (i, step.stage):
                    handles[key] = handle[part] if part == "execution" else handle[part][index]
    t0 = time.perf_counter()
    logger.close()
    close_s = time.perf_counter() - t0
    return {"n": n, "executions": len(per_exec), "log_per_execution_s": quantiles(per_exec),
            "log_by_stage_median_s": {s: statistics.median(v) for s, v in by_stage.items()},
            "close_s": close_s, "log_wall_s": time.perf_counter() - started,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "metadata_bytes": bytes_under([root / p for p in logger.STORE]), "handles": handles}


def query_run(queries: Any, root: Path, n: int, handles: dict[str, Any]) -> dict[str, Any]:
    """Each query once in this fresh process (``first_s``, after opening the store), then
    ``REPEATS`` times warm (``median_s``); the last answer and its check."""
    os.chdir(root)
    t0 = time.perf_counter()
    queries.open(root)
    out: dict[str, Any] = {"open_s": time.perf_counter() - t0}
    for name in ("q1", "q2", "q3", "q4", "q5"):
        fn = getattr(queries, name)
        t0 = time.perf_counter()
        fn(handles)
        first = time.perf_counter() - t0
        times = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            answer = fn(handles)
            times.append(time.perf_counter() - t0)
        out[name] = {"first_s": first, "median_s": statistics.median(times), "all_s": times,
                     "error": check(name, answer, n)}
    return out


def main(logger: Any, queries: Any, versions: dict[str, str]) -> None:
    """``driver.py log ROOT N`` or ``driver.py query ROOT N HANDLES_JSON``: prints one JSON object."""
    mode, root, n = sys.argv[1], Path(sys.argv[2]).resolve(), int(sys.argv[3])
    result = log_run(logger, root, n) if mode == "log" else query_run(queries, root, n, json.loads(sys.argv[4]))
    result["versions"] = versions
    print(json.dumps(result))
