"""The demo: three small ML pipelines, trained for real and logged with cmfq.

    from pathlib import Path
    from cmfq.data_samples.pipeline import build_demo

    summary = build_demo(Path("cmfq-demo"))      # a few seconds; `cmfq demo` calls this
    print(summary)

It is also the worked example of the logging API. Every pipeline has the four stages of
CMF's example-get-started, each a ``with tracker.execution(...)`` block:

    prepare    raw CSV      -> train.csv, test.csv        params: split, seed
    featurize  train/test   -> featureset (Parquet)       params: features, standardize
    train      featureset   -> model.pkl + loss per step  params: n_est, min_split (or alpha, epochs)
    evaluate   model, test  -> metrics.json               metrics: roc_auc, avg_prec

and it runs them over the CSV files beside this module (see README.md there):

- ``tumor-classifier``: gradient boosting on breast_cancer.csv, five iterations over three
  feature subsets. The last one asks for ``min_split=1``, which scikit-learn rejects, so the
  warehouse holds one failed execution, with its error, as real ones do.
- ``tumor-classifier-linear``: a logistic regression trained by SGD on the *same* raw file with
  the same split, so both pipelines share the raw dataset and the prepared files (same bytes,
  same hash), and their scores on the shared test split can be compared.
- ``wine-classifier``: gradient boosting on wine.csv (is it cultivar 1 or not?).

Files go where a project keeps them: the raw CSVs in ``<workdir>/data/``, everything the
stages write in ``<workdir>/artifacts/<pipeline>/``, and the warehouse in ``<workdir>/.cmfq``.
Artifacts are logged under their path relative to the workdir. Like CMF's example, each
iteration overwrites ``model/model.pkl``, so that one name has several versions, each with
its own content hash. Seeds are fixed: every run logs the same hashes and the same metrics
(given the same versions of scikit-learn, NumPy and Polars).
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import cmfq
from cmfq.errors import CmfqError, InvalidInputError

try:
    import numpy as np
    import polars as pl
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
    from sklearn.model_selection import train_test_split
except ImportError as exc:  # scikit-learn is the `demo` extra, not a dependency of cmfq
    raise CmfqError(f"The demo needs scikit-learn ({exc.name} is missing).",
                    hint="Install it with: pip install 'cmfq[demo]'") from exc

__all__ = ["DemoSummary", "build_demo"]

#: CMF's example uses this split and seed; every random choice below derives from SEED.
SPLIT = 0.2
SEED = 20170428
PROJECT = "cmfq-demo"
#: The package holding the CSV files; read through importlib.resources, so it works installed.
_PACKAGE = "cmfq.data_samples"

Echo = Callable[[str], None]


# -- the demo's plan ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Plan:
    """One pipeline of the demo: its raw dataset, feature subsets and training iterations."""

    pipeline: str
    dataset: str                                  # a CSV file of this package
    feature_sets: Mapping[str, Sequence[str]]     # feature choice -> its columns
    model: str                                    # "boosting" or "linear"
    iterations: Sequence[tuple[str, Mapping[str, Any]]]   # (feature choice, train params)


def _columns(dataset: str) -> list[str]:
    header = files(_PACKAGE).joinpath(dataset).read_text(encoding="utf-8").partition("\n")[0]
    return [c for c in header.split(",") if c != "target"]


def _plans() -> list[_Plan]:
    tumor = _columns("breast_cancer.csv")
    tumor_sets = {
        "mean_*": [c for c in tumor if c.startswith("mean_")],
        "worst_*": [c for c in tumor if c.startswith("worst_")],
        "all": tumor,
    }
    wine = _columns("wine.csv")
    wine_sets = {
        "all": wine,
        "phenols+color": ["total_phenols", "flavanoids", "color_intensity", "hue"],
    }
    return [
        _Plan("tumor-classifier", "breast_cancer.csv", tumor_sets, "boosting", [
            ("mean_*", {"n_est": 50, "min_split": 64}),
            ("mean_*", {"n_est": 100, "min_split": 16}),
            ("all", {"n_est": 100, "min_split": 16}),
            ("worst_*", {"n_est": 150, "min_split": 8}),
            # A typo'd sweep value: scikit-learn wants min_samples_split >= 2, so this train
            # fails and is recorded as a failed execution with scikit-learn's message.
            ("worst_*", {"n_est": 100, "min_split": 1}),
        ]),
        _Plan("tumor-classifier-linear", "breast_cancer.csv", tumor_sets, "linear", [
            ("mean_*", {"alpha": 0.001, "epochs": 20}),
            ("all", {"alpha": 0.001, "epochs": 20}),
            ("all", {"alpha": 0.01, "epochs": 20}),
        ]),
        _Plan("wine-classifier", "wine.csv", wine_sets, "boosting", [
            ("phenols+color", {"n_est": 50, "min_split": 8}),
            ("all", {"n_est": 100, "min_split": 16}),
        ]),
    ]


# -- the result -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DemoSummary:
    """What :func:`build_demo` made. ``str(summary)`` is a short report with next steps."""

    workdir: Path
    warehouse: Path
    pipelines: tuple[str, ...]
    executions: int
    failed: int
    best_model: str          # content hash of the best breast-cancer model
    best_model_name: str     # its artifact name (a later iteration may have overwritten the file)
    best_pipeline: str
    best_roc_auc: float
    seconds: float           # time spent in build_demo (importing scikit-learn comes before)

    def next_steps(self) -> list[str]:
        """Commands to try on the new warehouse."""
        w = f"cmfq -w {shlex.quote(str(self.warehouse))}"
        return [
            f"{w} pipelines",
            f"{w} executions --stage train --param 'n_est>=100'",
            f"{w} executions --stage evaluate --metric 'roc_auc>0.99'",
            f"{w} executions --status failed",
            f"{w} show {self.best_model[:12]}",
            f"{w} lineage {self.best_model[:12]}",
            f"cmfq ui -w {shlex.quote(str(self.warehouse))}   # the app, then http://127.0.0.1:8501",
            f"{w} sql \"SELECT x.pipeline, count(*) AS models, max(m.value) AS best_roc_auc "
            "FROM final_metrics m JOIN executions x ON x.id = m.execution_id "
            "WHERE m.name = 'roc_auc' GROUP BY ALL ORDER BY best_roc_auc DESC\"",
        ]

    def __str__(self) -> str:
        lines = [
            f"Built {self.warehouse} in {self.seconds:.1f} s: {len(self.pipelines)} pipelines, "
            f"{self.executions} executions ({self.failed} failed).",
            f"Best tumor model: {self.best_model_name} @ {self.best_model[:12]} "
            f"({self.best_pipeline}, roc_auc {self.best_roc_auc:.4f}).",
            "",
            "Try next:",
            *(f"  {cmd}" for cmd in self.next_steps()),
        ]
        return "\n".join(lines)


# -- the four stages --------------------------------------------------------------------------------
# Each stage is written as a project would write it: read files, compute, write files, and
# tell cmfq what was read, what was written and what was measured.

class _Files:
    """Paths under the demo's workdir, and the readable names artifacts are logged under."""

    def __init__(self, root: Path, pipeline: str) -> None:
        self.root = root
        self.out = root / "artifacts" / pipeline

    def path(self, *parts: str) -> Path:
        p = self.out.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def name(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def prepare(t: cmfq.Tracker, fs: _Files, raw: Path) -> tuple[Path, Path]:
    """Split the raw table into train and test, stratified on the target."""
    with t.execution("prepare", params={"split": SPLIT, "seed": SEED}) as ex:
        ex.log_input(raw, kind="dataset", name=fs.name(raw), role="raw")
        table = pl.read_csv(raw)
        train_rows, test_rows = train_test_split(np.arange(table.height), test_size=SPLIT, random_state=SEED,
                                                 stratify=table["target"].to_numpy())
        outputs = []
        for role, rows in (("train", train_rows), ("test", test_rows)):
            path = fs.path("prepared", f"{role}.csv")
            table[rows].write_csv(path)
            ex.log_output(path, kind="dataset", name=fs.name(path), role=role,
                          properties={"rows": len(rows), "columns": table.width})
            outputs.append(path)
    # Column statistics of the raw file and of both splits: `cmfq drift` compares them later
    # (is the test split distributed like the train split?) without the files at hand.
    for path in (raw, *outputs):
        t.log_dataset_stats(path)
    return outputs[0], outputs[1]


def featurize(t: cmfq.Tracker, fs: _Files, train: Path, test: Path, *, choice: str,
              columns: Sequence[str], standardize: bool) -> tuple[Path, Path]:
    """Keep the chosen feature columns (and, for a linear model, standardize them)."""
    with t.execution("featurize", params={"features": choice, "standardize": standardize}) as ex:
        tables = {}
        for role, path in (("train", train), ("test", test)):
            ex.log_input(path, kind="dataset", name=fs.name(path), role=role)
            tables[role] = pl.read_csv(path).select(*columns, "target")
        transformation = "select columns"
        if standardize:
            # Scale with the train split's statistics only: the test split must not leak into training.
            stats = tables["train"].select(pl.col(columns).mean().name.suffix("_mean"),
                                           pl.col(columns).std().name.suffix("_std")).row(0, named=True)
            scaled = [((pl.col(c) - stats[f"{c}_mean"]) / stats[f"{c}_std"]).alias(c) for c in columns]
            tables = {role: tb.with_columns(scaled) for role, tb in tables.items()}
            transformation = "select columns, then standardize with the train split's mean and std"
        # The featureset's properties make it searchable later ("which models used worst_area?").
        props = {"features": list(columns), "transformation": transformation}
        outputs = []
        for role, tb in tables.items():
            path = fs.path("features", f"{role}.parquet")
            tb.write_parquet(path)
            ex.log_output(path, kind="featureset", name=fs.name(path), role=role,
                          properties={**props, "rows": tb.height})
            outputs.append(path)
        return outputs[0], outputs[1]


def _xy(path: Path) -> tuple[np.ndarray, np.ndarray]:
    tb = pl.read_parquet(path)
    return tb.drop("target").to_numpy(), tb["target"].to_numpy()


def _save_model(path: Path, model: object) -> None:
    # Write a temporary file and rename it over the old model: a reader never sees half a
    # file, and each version is a new file rather than the old one rewritten in place.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(pickle.dumps(model, protocol=5))
    tmp.replace(path)


def train_boosting(t: cmfq.Tracker, fs: _Files, features: Path, *, n_est: int, min_split: int) -> Path:
    """Gradient boosting, stopped early when a held-out tenth of the train split stops improving."""
    with t.execution("train", params={"n_est": n_est, "min_split": min_split}) as ex:
        ex.log_input(features, kind="featureset", name=fs.name(features))
        x, y = _xy(features)
        model = GradientBoostingClassifier(n_estimators=n_est, min_samples_split=min_split, max_depth=3,
                                           n_iter_no_change=10, validation_fraction=0.1, random_state=SEED)
        model.fit(x, y)  # an invalid parameter raises here: the execution ends as failed
        # train_score_ is the training loss after each boosting stage: a per-step metric.
        for step, loss in enumerate(model.train_score_, start=1):
            ex.log_metric("loss", float(loss), step=step)
        # Learnt during the run, so logged as a parameter once known.
        ex.log_params({"best_iteration": int(model.n_estimators_)})
        path = fs.path("model", "model.pkl")
        _save_model(path, model)
        ex.log_output(path, kind="model", name=fs.name(path),
                      properties={"model_type": "GradientBoostingClassifier", "n_features": x.shape[1]})
        # What the model learnt (not what it was asked for): its fitted parameters.
        t.log_model_params(path, {"n_estimators": int(model.n_estimators_),
                                  "feature_importances": [round(float(v), 4) for v in model.feature_importances_]})
        return path


def train_linear(t: cmfq.Tracker, fs: _Files, features: Path, *, alpha: float, epochs: int) -> Path:
    """Logistic regression fitted by stochastic gradient descent, one pass over the data per epoch."""
    with t.execution("train", params={"alpha": alpha, "epochs": epochs}) as ex:
        ex.log_input(features, kind="featureset", name=fs.name(features))
        x, y = _xy(features)
        model = SGDClassifier(loss="log_loss", alpha=alpha, random_state=SEED)
        for epoch in range(1, epochs + 1):
            model.partial_fit(x, y, classes=[0, 1])
            ex.log_metric("loss", float(log_loss(y, model.predict_proba(x))), step=epoch)
        path = fs.path("model", "model.pkl")
        _save_model(path, model)
        ex.log_output(path, kind="model", name=fs.name(path),
                      properties={"model_type": "SGDClassifier(loss='log_loss')", "n_features": x.shape[1]})
        t.log_model_params(path, {"coef": [round(float(v), 4) for v in model.coef_[0]],
                                  "intercept": round(float(model.intercept_[0]), 4)})
        return path


def evaluate(t: cmfq.Tracker, fs: _Files, model_path: Path, features: Path) -> tuple[str, dict[str, float]]:
    """Score the model on the test featureset; returns the model's hash and the metrics."""
    with t.execution("evaluate") as ex:
        model_hash = ex.log_input(model_path, kind="model", name=fs.name(model_path))
        ex.log_input(features, kind="featureset", name=fs.name(features))
        model = pickle.loads(model_path.read_bytes())
        x, y = _xy(features)
        scores = model.predict_proba(x)[:, 1]
        metrics = {"roc_auc": float(roc_auc_score(y, scores)),
                   "avg_prec": float(average_precision_score(y, scores))}
        ex.log_metrics(metrics)  # no step: final ("coarse") metrics of the stage
        path = fs.path("evaluate", "metrics.json")
        path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        ex.log_output(path, kind="metrics", name=fs.name(path))
        return model_hash, metrics


#: The demo's last week in service: where each pipeline's latest model went, on which day
#: (0 = a week ago) and, for one, when it was retired. The boosting tumor model was staged first,
#: the linear one went to production two days later and the staged one was archived the day after.
DEPLOYMENTS = {"tumor-classifier": ("staging", 0, 3), "wine-classifier": ("staging", 1, None),
               "tumor-classifier-linear": ("production", 2, None)}
SERVING_DAYS = 7


def deploy(t: cmfq.Tracker, model_path: Path, features: Path) -> None:
    """Deploy a model and record its daily serving accuracy while it was in service. Each day's
    traffic is a bootstrap sample of the held-out test rows: real predictions, scored against
    real labels (same numbers every run; only the dates follow the calendar)."""
    environment, first_day, retired = DEPLOYMENTS[t.pipeline]
    week = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=7)
    dep = t.deploy(model_path, environment, params={"threshold": 0.5, "batch_size": 64},
                   at=week + dt.timedelta(days=first_day, hours=9))
    model = pickle.loads(model_path.read_bytes())
    x, y = _xy(features)
    rng = np.random.default_rng(SEED)
    for day in range(first_day, retired if retired is not None else SERVING_DAYS):
        rows = rng.integers(0, len(y), size=len(y))
        accuracy = float((model.predict(x[rows]) == y[rows]).mean())
        start = week + dt.timedelta(days=day)
        dep.log_serving_metric("accuracy", accuracy, period_start=_us(start),
                               period_end=_us(start + dt.timedelta(days=1)))
    if retired is not None:
        dep.set_status("archived", at=week + dt.timedelta(days=retired, hours=9))


def _us(when: dt.datetime) -> int:
    return int(when.timestamp() * 1_000_000)


# -- putting it together ------------------------------------------------------------------------------

def build_demo(workdir: Path, warehouse: Path | None = None, *, echo: Echo = print) -> DemoSummary:
    """Run the demo pipelines in ``workdir`` and log them into ``warehouse``
    (default ``workdir/.cmfq``); prints one line per iteration through ``echo`` and returns
    what was built.

    Refuses a warehouse folder that already has content: a second run would log every
    execution again.
    """
    started = time.perf_counter()
    workdir = Path(workdir).resolve()
    warehouse = Path(warehouse).resolve() if warehouse is not None else workdir / ".cmfq"
    if warehouse.is_dir() and any(warehouse.iterdir()):
        raise InvalidInputError(f"{warehouse} is not empty; the demo builds a new warehouse.",
                                hint="Choose another folder, or delete this one first.")
    plans = _plans()
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    for dataset in sorted({plan.dataset for plan in plans}):
        # Copy the package's CSV byte for byte, so its hash is the md5 of the shipped file.
        (data / dataset).write_bytes(files(_PACKAGE).joinpath(dataset).read_bytes())

    counts = {"executions": 0, "failed": 0}
    best: tuple[float, str, str, str] | None = None    # (roc_auc, pipeline, model hash, model name)
    names = []
    for plan in plans:
        names.append(plan.pipeline)
        ran, failed, scored = _run(plan, workdir, warehouse, echo)
        counts["executions"] += ran
        counts["failed"] += failed
        if plan.dataset == "breast_cancer.csv":   # both tumor pipelines score the same test rows
            for entry in scored:
                if best is None or entry[0] > best[0]:
                    best = entry
    assert best is not None
    return DemoSummary(workdir=workdir, warehouse=warehouse, pipelines=tuple(names),
                       executions=counts["executions"], failed=counts["failed"], best_model=best[2],
                       best_model_name=best[3], best_pipeline=best[1], best_roc_auc=best[0],
                       seconds=time.perf_counter() - started)


def _run(plan: _Plan, workdir: Path, warehouse: Path, echo: Echo
         ) -> tuple[int, int, list[tuple[float, str, str, str]]]:
    """One pipeline: prepare once, then featurize (when the feature choice changes), train
    and evaluate per iteration. Returns (executions, failed, [(roc_auc, pipeline, hash, name)])."""
    fs = _Files(workdir, plan.pipeline)
    ran = failed = 0
    scored = []
    # capture_git=False: the code running here is cmfq's installed demo, not the repository
    # the shell happens to be in, so that repository's commit would be a false record. In
    # your own pipelines leave it on: every execution then records the commit it ran.
    with cmfq.Tracker(plan.pipeline, warehouse=warehouse, project=PROJECT, capture_git=False) as t:
        train_csv, test_csv = prepare(t, fs, workdir / "data" / plan.dataset)
        ran += 1
        current: str | None = None
        latest: tuple[Path, Path] | None = None  # the last evaluated model and its test features
        for i, (choice, params) in enumerate(plan.iterations, start=1):
            settings = " ".join(f"{k}={v}" for k, v in params.items())
            label = f"{plan.pipeline:<23} #{i}  features={choice:<14} {settings:<22}"
            if choice != current:
                # Like `dvc repro`, re-run featurize only when its parameters changed.
                feats_train, feats_test = featurize(t, fs, train_csv, test_csv, choice=choice,
                                                    columns=plan.feature_sets[choice],
                                                    standardize=plan.model == "linear")
                current = choice
                ran += 1
            ran += 1
            try:
                if plan.model == "linear":
                    model = train_linear(t, fs, feats_train, **params)
                else:
                    model = train_boosting(t, fs, feats_train, **params)
            except ValueError as exc:
                # scikit-learn rejects bad parameters with a ValueError. The execution is
                # already recorded as failed, with this message; the sweep goes on.
                failed += 1
                echo(f"{label} -> train failed ({type(exc).__name__}), recorded with its error")
                continue
            model_hash, metrics = evaluate(t, fs, model, feats_test)
            latest = (model, feats_test)
            ran += 1
            scored.append((metrics["roc_auc"], plan.pipeline, model_hash, fs.name(model)))
            echo(f"{label} -> roc_auc {metrics['roc_auc']:.4f}  avg_prec {metrics['avg_prec']:.4f}")
        if latest is not None:
            deploy(t, *latest)
    return ran, failed, scored


def main() -> None:
    """``python -m cmfq.data_samples.pipeline [WORKDIR]``: build the demo (default ./cmfq-demo)."""
    import sys

    summary = build_demo(Path(sys.argv[1] if len(sys.argv) > 1 else "cmfq-demo"))
    print()
    print(summary)


if __name__ == "__main__":
    main()
