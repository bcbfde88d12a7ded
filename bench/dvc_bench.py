"""DVC integration benchmarks: ``python bench/dvc_bench.py [--files N] [--commits N] [--repeats N]``.

Prints one JSON object with the figures and the issue's targets:

* ``read_10k_dvcfiles``: hashes of N files each tracked by its own ``.dvc`` file (real
  ``dvc add``): the bulk reader over every metafile (``read_outs``, target <= 1 s for
  10,000 files); the same with every file also checked against DVC's hash state, i.e. not
  stale (``describe_many``: no data read; reported: the target is about reading hashes); and
  a logger asking file by file (``describe``, reported).
* ``read_lock_outs``: the same for files that are outputs of ``dvc.yaml`` stages, recorded
  in ``dvc.lock`` (1,000 by default: DVC's own ``repro`` slows down quadratically with the
  number of outputs, so 10,000 would take it most of an hour to build).
* ``import_history``: ``cmfq import dvc --history`` over a repository of N commits, each a
  real ``dvc repro`` of a 4-stage pipeline after a parameter change (target: report it),
  then the same import again (adds nothing) and a HEAD-only import.

Generated projects are kept in ``bench/.data/`` and reused (real DVC takes a few minutes to
build them once); ``--fresh`` rebuilds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}

PIPELINE = """\
stages:
  prepare:
    cmd: head -n ${prepare.rows} data/raw.csv > prepared.csv
    deps: [data/raw.csv]
    params: [prepare.rows]
    outs: [prepared.csv]
  featurize:
    cmd: sed 's/,/;/g' prepared.csv > features.csv && echo ${featurize.bins} >> features.csv
    deps: [prepared.csv]
    params: [featurize.bins]
    outs: [features.csv]
  train:
    cmd: cat features.csv > model.pkl && echo seed=${train.seed} >> model.pkl
    deps: [features.csv]
    params: [train.seed]
    outs: [model.pkl]
  evaluate:
    cmd: >-
      mkdir -p eval && printf '{"auc": %s, "loss": %s}' ${train.seed} ${featurize.bins} > eval/metrics.json
    deps: [model.pkl]
    metrics:
      - eval/metrics.json:
          cache: false
"""


def git(root: Path, *args: str, date: str | None = None) -> str:
    env = {**os.environ, **GIT_ENV, "GIT_CONFIG_GLOBAL": os.devnull}
    if date:
        env |= {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True,
                           text=True).stdout.strip()


@contextlib.contextmanager
def quiet_in(root: Path) -> Any:
    """In ``root``, with stdout silenced down to the file descriptor: DVC's stage commands and
    its own messages would otherwise land in the JSON printed at the end."""
    sys.stdout.flush()
    saved = os.dup(1)
    with contextlib.chdir(root), open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def new_project(root: Path) -> Any:
    from dvc.repo import Repo

    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    with quiet_in(root):
        repo = Repo.init(str(root))
    repo.scm_context.quiet = True
    return repo


def build_dvcfiles(root: Path, n: int) -> float:
    """N small files, each `dvc add`-ed (one API call, as `dvc add data/*` does)."""
    started = time.perf_counter()
    repo = new_project(root)
    (root / "data").mkdir()
    for i in range(n):
        (root / "data" / f"f{i:05}.txt").write_text(f"content of file {i}\n")
    with quiet_in(root):
        repo.add([f"data/f{i:05}.txt" for i in range(n)])
    repo.close()
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "track files")
    return time.perf_counter() - started


def build_lock(root: Path, n: int) -> float:
    """N files as the outputs of dvc.yaml stages (a foreach of 100 outputs each), recorded
    in dvc.lock by a real `dvc repro`. DVC itself slows down fast with the number of outputs
    (2,000 outputs take it 30 s), hence a smaller N than for .dvc files."""
    started = time.perf_counter()
    repo = new_project(root)
    per = 100
    (root / "gen.py").write_text(
        "import pathlib, sys\ns = sys.argv[1]\npathlib.Path(f'out/{s}').mkdir(parents=True, exist_ok=True)\n"
        f"for i in range({per}):\n    pathlib.Path(f'out/{{s}}/f{{i:03}}.txt').write_text(f'file {{s}} {{i}}\\n')\n")
    outs = "\n".join(f"        - out/${{item}}/f{i:03}.txt" for i in range(per))
    items = ", ".join(f"s{j:03}" for j in range(max(1, n // per)))
    (root / "dvc.yaml").write_text(f"stages:\n  gen:\n    foreach: [{items}]\n    do:\n"
                                   f"      cmd: {sys.executable} gen.py ${{item}}\n      deps: [gen.py]\n"
                                   f"      outs:\n{outs}\n")
    with quiet_in(root):
        repo.reproduce()
    repo.close()
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "pipeline")
    return time.perf_counter() - started


def build_history(root: Path, commits: int) -> float:
    """A 4-stage pipeline reproduced by DVC at every commit, one parameter changed each time."""
    started = time.perf_counter()
    repo = new_project(root)
    (root / "data").mkdir()
    (root / "data" / "raw.csv").write_text("".join(f"{i},{i * i}\n" for i in range(500)))
    (root / "dvc.yaml").write_text(PIPELINE)
    for c in range(commits):
        # Rotate which parameter moves, so that runs start at different stages.
        rows, bins, seed = 100 + (c // 3), 10 + ((c + 1) // 3), c
        (root / "params.yaml").write_text(f"prepare:\n  rows: {rows}\nfeaturize:\n  bins: {bins}\n"
                                          f"train:\n  seed: {seed}\n")
        with quiet_in(root):
            if c == 0:
                repo.add(["data/raw.csv"])
            repo.reproduce()
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"experiment {c}", date=f"{1_767_225_600 + 3600 * c} +0000")
    repo.close()
    return time.perf_counter() - started


def cached(name: str, build: Any, *args: Any, fresh: bool) -> tuple[Path, float | None]:
    root = DATA / name
    if fresh and root.exists():
        shutil.rmtree(root)
    if (root / ".ready").exists():
        return root, None
    if root.exists():
        shutil.rmtree(root)
    seconds = build(root, *args)
    (root / ".ready").write_text("")
    git_ignore = root / ".git" / "info" / "exclude"
    if git_ignore.parent.exists():
        with open(git_ignore, "a") as f:
            f.write(".ready\n")
    return root, seconds


def timed(fn: Any, repeats: int) -> tuple[float, list[float], Any]:
    runs, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), runs, result


def bench_reads(root: Path, n: int, repeats: int) -> dict[str, Any]:
    from cmfq.ingest import hashing
    from cmfq.ingest.dvc import read_outs
    from cmfq.ingest.dvc_repo import DvcContent
    from cmfq.ingest.hashing import HashCache

    median, runs, outs = timed(lambda: read_outs(root), repeats)
    files = sorted(p for p in root.rglob("f*.txt") if ".dvc" not in p.parts and p.suffix == ".txt")
    reads: list[str] = []
    real = hashing.file_md5
    hashing.file_md5 = lambda p: reads.append(str(p)) or real(p)  # count data reads, if any
    try:
        def verify_all() -> list[str]:
            content = DvcContent(HashCache())  # fresh: parses every metafile, opens DVC once
            try:
                return [d[0] for d in content.describe_many(files)]
            finally:
                content.close()

        def one_by_one() -> list[str]:
            content = DvcContent(HashCache())
            try:
                return [content.describe(f)[0] for f in files]
            finally:
                content.close()

        verify_median, verify_runs, hashes = timed(verify_all, repeats)
        log_median, log_runs, logged = timed(one_by_one, repeats)
    finally:
        hashing.file_md5 = real
    expected = {str(root / o.path): o.md5 for o in outs.values()}
    return {
        "files": len(files), "outputs_in_metafiles": len(outs),
        "read_outs_s": round(median, 4), "read_outs_runs_s": [round(r, 4) for r in runs],
        "read_and_verify_s": round(verify_median, 4), "read_and_verify_runs_s": [round(r, 4) for r in verify_runs],
        "logger_one_by_one_s": round(log_median, 4), "logger_one_by_one_runs_s": [round(r, 4) for r in log_runs],
        "target_s": 1.0, "pass": median <= 1.0,
        "data_files_read": len(reads),
        "hashes_match_metafiles": all(expected.get(str(f)) == h == g
                                      for f, h, g in zip(files, hashes, logged, strict=True)),
    }


def bench_import(root: Path, repeats: int) -> dict[str, Any]:
    from cmfq.ingest.import_dvc import import_dvc
    from cmfq.warehouse.layout import Layout

    runs, reimports, heads, report = [], [], [], None
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            layout = Layout(Path(tmp) / "wh")
            report = import_dvc(layout, root, history=True)
            runs.append(report.seconds)
            again = import_dvc(layout, root, history=True)
            reimports.append(again.seconds)
            assert again.executions == 0, "a re-import added executions"
        with tempfile.TemporaryDirectory() as tmp:
            heads.append(import_dvc(Layout(Path(tmp) / "wh"), root).seconds)
    assert report is not None
    return {
        "commits": int(git(root, "rev-list", "--count", "HEAD")), "commits_read": report.commits,
        "stage_runs": report.runs, "executions": report.executions, "metrics": report.metrics,
        "history_import_s": round(statistics.median(runs), 3), "history_import_runs_s": [round(r, 3) for r in runs],
        "reimport_s": round(statistics.median(reimports), 3),
        "head_import_s": round(statistics.median(heads), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000, help="files tracked by .dvc files")
    parser.add_argument("--lock-outs", type=int, default=1_000, help="files tracked as dvc.lock outputs")
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="rebuild the generated projects")
    args = parser.parse_args()
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    import dvc

    import cmfq

    dvcfiles, t1 = cached(f"dvcfiles-{args.files}", build_dvcfiles, args.files, fresh=args.fresh)
    lock, t2 = cached(f"lockouts-{args.lock_outs}", build_lock, args.lock_outs, fresh=args.fresh)
    history, t3 = cached(f"history-{args.commits}", build_history, args.commits, fresh=args.fresh)
    result = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "dvc": dvc.__version__,
                    "cmfq": cmfq.__version__},
        "setup_s": {"dvcfiles": t1, "lockouts": t2, "history": t3},  # None: reused from bench/.data
        "read_10k_dvcfiles": bench_reads(dvcfiles, args.files, args.repeats),
        "read_lock_outs": bench_reads(lock, args.lock_outs, args.repeats),
        "import_history": bench_import(history, args.repeats),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
