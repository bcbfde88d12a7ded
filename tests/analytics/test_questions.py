"""Each analytical question on a warehouse whose answer is known (tests/analytics/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import cmfq
from cmfq.cli.main import app
from cmfq.errors import AmbiguousError, InvalidInputError, NotFoundError
from tests.analytics.conftest import Zoo, h

runner = CliRunner()


def cli(zoo: Zoo, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["-w", str(zoo.root), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def labels(zoo: Zoo, ids: list[str]) -> list[str]:
    by_id = {v: k for k, v in zoo.runs.items()}
    return [by_id[i] for i in ids]


def test_compare_ranks_by_score_with_ties_failures_and_unscored_last(zoo: Zoo) -> None:
    with zoo.wh as wh:
        table = wh.compare("train", "roc_auc")
    assert labels(zoo, table["id"].to_list())[:5] == ["T7", "T3", "T2", "T1", "T6"]  # tie: newest first
    assert set(labels(zoo, table["id"].to_list())[5:]) == {"T4", "T5"}  # no score: last
    assert table.filter(pl.col("id") == zoo.runs["T2"])["scored_by"].item() == zoo.runs["eval-T2"]
    assert table.filter(pl.col("id") == zoo.runs["T7"])["scored_by"].item() == zoo.runs["T7"]  # scores itself
    assert {"params.n_est", "params.model"} <= set(table.columns)  # params that vary
    assert table.filter(pl.col("id") == zoo.runs["T4"])["status"].item() == "failed"


@pytest.mark.parametrize("where, expected", [
    ("params.n_est >= 100", {"T2", "T3", "T7"}),
    ("params.n_est >= 100 AND params.model = 'gbm' AND NOT params.n_est = 300", {"T2", "T3"}),
    ("metrics.roc_auc < 0.75 OR params.n_est = 10", {"T6", "T1"}),
    ("(params.model = linear OR metrics.roc_auc > 0.92) AND status = completed", {"T6", "T7"}),
    ("params.n_est = '1; DROP TABLE executions'", set()),
])
def test_compare_where_and_or_not(zoo: Zoo, where: str, expected: set[str]) -> None:
    with zoo.wh as wh:
        assert set(labels(zoo, wh.compare("train", "roc_auc", where=where)["id"].to_list())) == expected
        assert wh.executions().height == len(zoo.runs)  # nothing was dropped


@pytest.mark.parametrize("where", ["params.n_est >", "n_est > 3", "params.x = 1; DELETE FROM t", "(stage = x",
                                   "params.x == 1 AND", "metrics.m > 1 OR OR"])
def test_bad_filters_are_refused_clearly(zoo: Zoo, where: str) -> None:
    with zoo.wh as wh, pytest.raises(InvalidInputError, match="Cannot read the filter"):
        wh.compare("train", "roc_auc", where=where)


def test_compare_by_dataset(zoo: Zoo) -> None:
    with zoo.wh as wh:
        table = wh.compare("train", "roc_auc", by="dataset")
    pairs = {(r["dataset_name"], labels(zoo, [r["id"]])[0]) for r in table.iter_rows(named=True)}
    assert pairs == {("raw/r1.csv", t) for t in ("T1", "T2", "T3", "T4", "T5", "T7")} | {("raw/r2.csv", "T6")}


def test_diff(zoo: Zoo) -> None:
    with zoo.wh as wh:
        d = wh.diff(zoo.runs["T2"], zoo.runs["T3"])
        everything = wh.diff(zoo.runs["T2"], zoo.runs["T3"], all=True)
    assert d.params.to_dicts() == [{"key": "n_est", "a": "100", "b": "200", "changed": True}]
    assert everything.params.height == 2
    loss = d.metrics.row(0, named=True)
    assert loss["name"] == "loss" and loss["delta"] == pytest.approx(1 / 201 - 1 / 101)
    # Outputs are matched by the name each run gave them: M2 and M3 are different names here
    # (a pipeline that overwrites one path, model.pkl, shows one row marked "different").
    assert sorted(d.artifacts.select("direction", "name", "change").rows()) == [
        ("out", "M2", "only in a"), ("out", "M3", "only in b")]
    assert everything.artifacts.filter(pl.col("direction") == "in")["change"].to_list() == ["same"]


def test_influence_of_a_dataset(zoo: Zoo) -> None:
    with zoo.wh as wh:
        table = wh.influence("raw/r2.csv")
    artifacts = set(table.filter(pl.col("entity") == "artifact")["name"])
    executions = set(labels(zoo, table.filter(pl.col("entity") == "execution")["id"].to_list()))
    assert artifacts == {"split/s2.csv", "M6"} and executions == {"prepare2", "T6", "eval-T6"}
    assert dict(table.select("name", "depth").filter(pl.col("name").is_not_null()).rows()) == {
        "split/s2.csv": 1, "M6": 2, "completed": 3} | {"completed": 3}


def test_taint_marks_exactly_the_models_downstream(zoo: Zoo, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "wh"
    shutil.copytree(zoo.root, root, ignore=shutil.ignore_patterns("_cache"))
    result = runner.invoke(app, ["-w", str(root), "taint", "split/s1.csv", "--reason", "label leak"])
    assert result.exit_code == 0 and "4 models" in result.stderr
    with cmfq.Warehouse(root) as wh:
        bad = wh.models(tainted=True)
        clean = wh.models(tainted=False)
        ranked = wh.rank_models("roc_auc")
    assert set(bad["name"]) == {"M1", "M2", "M3", "M5"} and set(bad["taint"]) == {"label leak"}
    assert set(clean["name"]) == {"M6", "M7"}
    assert ranked["name"].to_list() == ["M7", "M6"]  # tainted ones are out, best score first
    assert runner.invoke(app, ["-w", str(root), "taint", "split/s1.csv", "--clear"]).exit_code == 0
    with cmfq.Warehouse(root) as wh:
        assert wh.models(tainted=True).height == 0


def test_rank_pages_and_date_filter_agree_with_the_whole_ranking(zoo: Zoo, monkeypatch: pytest.MonkeyPatch) -> None:
    from cmfq.warehouse import analytics

    with zoo.wh as wh:
        whole = wh.rank_models("roc_auc", exclude_tainted=False)
        pages = [wh.rank_models("roc_auc", exclude_tainted=False, limit=2, offset=o) for o in range(0, whole.height + 2, 2)]
        worst = wh.rank_models("roc_auc", exclude_tainted=False, ascending=True)
        # Batches of one model: the date filter then ranks again and again to fill a page.
        monkeypatch.setattr(analytics, "RANK_BATCH", 1)
        cutoff = sorted(whole["newest_data"].drop_nulls())[0]
        newer = whole.filter(pl.col("newest_data") > cutoff)
        after = [wh.rank_models("roc_auc", exclude_tainted=False, data_after=cutoff, limit=1, offset=o)
                 for o in range(newer.height + 1)]
    assert whole.height >= 4 and whole["roc_auc"].is_sorted(descending=True)
    assert pl.concat(pages).equals(whole)
    assert worst["hash"].to_list() == whole.sort("roc_auc", "hash", descending=[False, False])["hash"].to_list()
    assert 0 < newer.height < whole.height and pl.concat(after).equals(newer)


def test_best_per_dataset_and_on_one_dataset(zoo: Zoo) -> None:
    with zoo.wh as wh:
        on_r1 = wh.best("roc_auc", "raw/r1.csv", stage="train", limit=3)
        per = wh.best("roc_auc", per_dataset=True, stage="train")
        worst_first = wh.best("roc_auc", "raw/r1.csv", stage="train", ascending=True, limit=1)
    assert labels(zoo, on_r1["id"].to_list()) == ["T7", "T3", "T2"]
    assert {r["dataset_name"]: labels(zoo, [r["id"]])[0] for r in per.iter_rows(named=True)} == {
        "raw/r1.csv": "T7", "raw/r2.csv": "T6"}
    assert labels(zoo, worst_first["id"].to_list()) == ["T1"]
    with zoo.wh as wh, pytest.raises(InvalidInputError, match="not both or neither"):
        wh.best("roc_auc")


def test_feature_effect(zoo: Zoo) -> None:
    with zoo.wh as wh:
        effect = wh.feature_effect("z", metric="roc_auc")
    row = effect.row(0, named=True)
    assert row["dataset"] == "raw/r1.csv"
    assert (row["runs_with"], row["runs_without"]) == (2, 1)  # T2, T3 with z; T1 without (T4, T5 unscored)
    assert row["mean_with"] == pytest.approx(0.9) and row["mean_without"] == pytest.approx(0.8)
    assert row["delta"] == pytest.approx(0.1)


def test_techniques_datasets_and_search(zoo: Zoo) -> None:
    with zoo.wh as wh:
        tech = wh.techniques()
        assert set(tech.filter(pl.col("what") == "model type")["technique"]) == {"GBM", "Linear"}
        assert set(wh.techniques("wines")["technique"]) == {"Linear"}
        used = wh.datasets(project="tumors")
        assert set(used["name"]) == {"raw/r1.csv", "split/s1.csv"}
        import datetime as dt
        assert wh.datasets(since=dt.datetime(2999, 1, 1)).height == 0
        found = wh.search("n_est")
        assert found.filter(pl.col("entity") == "execution").height == 7
        assert wh.search(h("M6")[:6])["id"].to_list() == [h("M6")]
        with pytest.raises(InvalidInputError):
            wh.search("  ")


def test_audit_is_a_model_card(zoo: Zoo) -> None:
    with zoo.wh as wh:
        report = wh.audit("M2")
    assert [(d["name"], d["depth"]) for d in report["data"]] == [("F_b", 1), ("split/s1.csv", 2), ("raw/r1.csv", 3)]
    assert {r["stage"] for r in report["runs"]} == {"train", "featurize", "prepare"}
    assert [(e["name"], e["value"]) for e in report["evaluations"]] == [("roc_auc", 0.9)]
    assert report["trained_by"][0]["id"] == zoo.runs["T2"]
    code, out, _ = cli(zoo, "audit", "M2")
    assert code == 0 and out.startswith("# Model card: M2") and "## Data (every ancestor)" in out
    code, out, _ = cli(zoo, "audit", "M2", "-f", "json")
    assert json.loads(out)["model"]["hash"] == h("M2")


def test_deployments_and_serving(tmp_path: Path) -> None:
    root = tmp_path / "wh"
    with cmfq.Tracker("p", warehouse=root, project="shop", capture_git=False, capture_env=False) as t:
        with t.execution("train") as ex:
            model = ex.log_output(hash=h("model"), name="model.pkl", kind="model")
        dep = t.deploy(model, "production", params={"batch": 32})
        dep.log_serving_metric("latency_ms", 12.0, period_start=1_000_000)
        dep.log_serving_metric("latency_ms", 15.0, period_start=2_000_000)
        dep.set_status("archived")
        t.log_model_params(model, {"coef": [0.5, -1.0], "intercept": 0.1})
    with cmfq.Warehouse(root) as wh:
        now = wh.deployments()
        assert now.select("status", "environment", "project").rows() == [("archived", "production", "shop")]
        assert wh.deployments(history=True)["status"].to_list() == ["active", "archived"]
        assert wh.serving(dep.id[:13])["value"].to_list() == [12.0, 15.0]
        report = wh.audit("model.pkl")
        assert report["fitted_params"] == {"coef": [0.5, -1.0], "intercept": 0.1}
        assert report["deployments"][0]["status"] == "archived" and report["serving"][0]["periods"] == 2
        influence = wh.influence(model)  # a deployment of the model itself is affected by it (depth 0)
        assert influence.filter(pl.col("entity") == "deployment").select("id", "depth").rows() == [(dep.id, 0)]


def test_drift_from_recorded_statistics(tmp_path: Path) -> None:
    import random

    rng = random.Random(3)
    rows_a = [(rng.gauss(0, 1), rng.gauss(5, 2)) for _ in range(2000)]
    rows_b = [(x + 1.5, y) for x, y in ((rng.gauss(0, 1), rng.gauss(5, 2)) for _ in range(2000))]
    for name, rows in (("a.csv", rows_a), ("b.csv", rows_b)):
        (tmp_path / name).write_text("shifted,stable,label\n" + "".join(f"{x},{y},c{int(y) % 3}\n" for x, y in rows))
    with cmfq.Tracker("p", warehouse=tmp_path / "wh", capture_git=False, capture_env=False) as t:
        ha = t.log_dataset_stats(tmp_path / "a.csv")
        hb = t.log_dataset_stats(tmp_path / "b.csv")
    with cmfq.Warehouse(tmp_path / "wh") as wh:
        stats = wh.dataset_stats(ha)
        assert stats["column"].to_list() == ["label", "shifted", "stable"]
        label = stats.filter(pl.col("column") == "label").row(0, named=True)
        assert label["mean"] is None and label["distinct"] == 3 and label["count"] == 2000
        drift = {r["column"]: r for r in wh.drift(ha, hb).iter_rows(named=True)}
    assert drift["shifted"]["flagged"] and drift["shifted"]["psi"] > 1 and drift["shifted"]["std_mean_diff"] > 1
    assert not drift["stable"]["flagged"] and drift["stable"]["psi"] < 0.1


def test_unknown_and_ambiguous_references(zoo: Zoo, tmp_path: Path) -> None:
    with zoo.wh as wh:
        with pytest.raises(NotFoundError):
            wh.diff("ffffffff", zoo.runs["T1"])
        with pytest.raises(NotFoundError, match="statistics"):
            wh.drift("raw/r1.csv", "raw/r2.csv")
    with cmfq.Tracker("p", warehouse=tmp_path / "w", capture_git=False, capture_env=False) as t:
        with t.execution("s") as ex:
            ex.log_output(hash="abcd" + "0" * 28, name="one")
            ex.log_output(hash="abcd" + "1" * 28, name="two")
    with cmfq.Warehouse(tmp_path / "w") as wh, pytest.raises(AmbiguousError, match="abcd0000"):
        wh.influence("abcd")


def test_cli_commands(zoo: Zoo) -> None:
    code, out, _ = cli(zoo, "compare", "--stage", "train", "--metric", "roc_auc", "--where", "params.n_est >= 100",
                       "-f", "json")
    assert code == 0 and {r["id"] for r in json.loads(out)} == {zoo.runs[k] for k in ("T2", "T3", "T7")}
    code, _, err = cli(zoo, "compare", "--stage", "train", "--where", "params.n_est >")
    assert code == 1 and err.startswith("error: Cannot read the filter")
    code, out, _ = cli(zoo, "diff", zoo.runs["T2"][:24], zoo.runs["T3"][:24])
    assert code == 0 and "n_est" in out and "only in b" in out
    code, out, _ = cli(zoo, "influence", "raw/r2.csv", "-f", "csv")
    assert code == 0 and out.count("\n") == 6
    for args in (["models"], ["best", "-m", "roc_auc", "--per-dataset"], ["features", "z", "-m", "roc_auc"],
                 ["techniques"], ["datasets", "--since", "2000-01-01"], ["search", "gbm"], ["rank", "-m", "roc_auc"],
                 ["deployments"], ["serving"]):
        code, _, err = cli(zoo, *args)
        assert code == 0, (args, err)


@pytest.mark.parametrize("args", [["techniques"], ["datasets"], ["rank", "-m", "roc_auc", "--include-tainted"],
                                  ["rank", "-m", "roc_auc", "--data-after", "2000-01-01"]])
def test_listings_cut_in_duckdb_page_through_everything_once(zoo: Zoo, args: list[str]) -> None:
    code, out, _ = cli(zoo, *args, "-f", "json", "--limit", "1000")
    whole = json.loads(out)
    seen = []
    for offset in range(len(whole) + 1):
        code, out, err = cli(zoo, *args, "-f", "json", "--limit", "1", "--offset", str(offset))
        assert code == 0 and ("more rows" in err) == (offset + 1 < len(whole)), (offset, err)
        seen += json.loads(out)
    assert len(whole) >= 2 and seen == whole


def test_stats_record_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b\n1,x\n2,y\n3,x\n")
    root = tmp_path / "wh"
    assert runner.invoke(app, ["-w", str(root), "init"]).exit_code == 0
    result = runner.invoke(app, ["-w", str(root), "stats", str(tmp_path / "d.csv"), "--record", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    stats = {r["column"]: r for r in json.loads(result.stdout)}
    assert stats["a"]["mean"] == 2.0 and stats["a"]["quantiles"][0] == 1.0 and json.loads(stats["b"]["top"])[0] == ["x", 2]
    result = runner.invoke(app, ["-w", str(root), "artifacts", "-f", "json"])
    assert [a["kind"] for a in json.loads(result.stdout)] == ["dataset"]
