"""Every page of the app through Streamlit's AppTest: widgets, data, and bad warehouses."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

MAIN = str(resources.files("cmfq.app").joinpath("Overview.py"))


@pytest.fixture
def app(demo_warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("CMFQ_WAREHOUSE", str(demo_warehouse))
    return AppTest.from_file(MAIN, default_timeout=60)


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_overview(app: AppTest) -> None:
    at = _ok(app.run())
    values = {m.label: m.value for m in at.metric}
    assert values["Pipelines"] == "3" and values["Executions"] == "29" and values["Failures"] == "1"
    assert values["Active deployments"] == "2"
    assert at.dataframe[0].value.shape[0] == 10  # recent executions
    assert "min_samples_split" in at.dataframe[-1].value["error"].to_list()[0]  # the failure, with its error
    at.selectbox(key="overview_pipeline").select("wine-classifier").run()
    recent = _ok(at).dataframe[0].value
    assert recent.shape[0] == 7 and set(recent["pipeline"]) == {"wine-classifier"}  # its 7 runs
    at.text_input[0].input("wine-classifier/features/test.parquet").run()
    hits = _ok(at).dataframe[0].value
    assert set(hits["entity"]) == {"artifact"} and len(hits) >= 1
    assert all("wine-classifier/features/test.parquet" in m for m in hits["match"])


def test_executions_filter_detail_and_diff(app: AppTest) -> None:
    at = _ok(app.run())
    at = _ok(at.switch_page("pages/1_Executions.py").run())
    assert at.dataframe[0].value.shape[0] == 29
    at.selectbox[1].select("train").run()
    at.text_input[0].input("params.n_est >= 100").run()
    _ok(at)
    assert at.dataframe[0].value.shape[0] == 5  # tumor: 100 (x2), 150, the failed 100; wine: 100
    at.button[-1].click().run()  # diff the first with the second
    _ok(at)
    assert any("Parameters" in m.value for m in at.markdown)


def test_artifacts_search_and_detail(app: AppTest) -> None:
    at = _ok(app.switch_page("pages/2_Artifacts.py").run())
    at.selectbox[0].select("model").run()
    assert set(at.dataframe[0].value["kind"]) == {"model"}
    at.text_input[0].input("breast_cancer").run()
    _ok(at)
    assert at.dataframe[0].value["name"].to_list() == []  # a model is not named breast_cancer
    at.selectbox[0].select("(all)").run()
    _ok(at)
    assert at.dataframe[0].value["name"].to_list() == ["data/breast_cancer.csv"]
    assert any("Column statistics" in m.value for m in at.markdown)  # the demo recorded them


def test_lineage_graph(app: AppTest) -> None:
    at = _ok(app.switch_page("pages/3_Lineage.py").run())
    assert any("nodes" in c.value for c in at.caption)
    at.text_input[0].input("data/wine.csv").run()
    at.radio[0].set_value("down").run()
    _ok(at)
    caption = next(c.value for c in at.caption if "nodes" in c.value)
    assert caption.startswith("18 nodes (11 artifacts, 7 executions)")  # wine.csv and all it fed


def test_compare_models(app: AppTest) -> None:
    at = _ok(app.switch_page("pages/4_Compare_models.py").run())
    assert at.dataframe[0].value.shape[0] == 10  # the ten train runs
    at.text_input[0].input("params.alpha < 0.005").run()
    _ok(at)
    assert at.dataframe[0].value.shape[0] == 2


def test_compare_datasets(app: AppTest) -> None:
    at = _ok(app.switch_page("pages/5_Compare_datasets.py").run())
    assert len(at.multiselect[0].value) == 2
    assert any(h.value.startswith("Drift from") for h in at.subheader)


def test_deployments(app: AppTest) -> None:
    at = _ok(app.switch_page("pages/6_Deployments.py").run())
    table = at.dataframe[0].value
    assert sorted(table["status"].to_list()) == ["active", "active", "archived"]


def test_sql_console(app: AppTest) -> None:
    at = _ok(app.switch_page("pages/7_SQL_console.py").run())
    assert at.dataframe[0].value.shape[0] > 0
    at.text_area[0].input("SELECT count(*) AS n FROM executions").run()
    at.button[0].click().run()
    _ok(at)
    assert at.dataframe[0].value["n"].to_list() == [29]
    at.text_area[0].input("COPY (SELECT 1) TO '/tmp/cmfq-app-escape.csv'").run()
    at.button[0].click().run()
    assert at.error and "cmfq SQL is read-only: COPY statements are not run" in at.error[0].value
    assert not Path("/tmp/cmfq-app-escape.csv").exists()


def test_missing_empty_and_corrupt_warehouses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMFQ_WAREHOUSE", str(tmp_path / "nowhere"))
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    assert not at.exception and at.error and "No cmfq warehouse at" in at.error[0].value
    from cmfq.warehouse.layout import Layout
    from tests.conftest import make_chain

    Layout(tmp_path / "empty").init("x")
    monkeypatch.setenv("CMFQ_WAREHOUSE", str(tmp_path / "empty"))
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    assert not at.exception and at.info and "empty" in at.info[0].value
    make_chain(tmp_path / "bad", "p", ["a", "b"])
    victim = sorted(Layout(tmp_path / "bad").partitions(["executions"]))[0]
    Layout(tmp_path / "bad").path(victim).write_bytes(b"garbage")
    monkeypatch.setenv("CMFQ_WAREHOUSE", str(tmp_path / "bad"))
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    assert not at.exception and at.warning and "partition(s) skipped" in at.warning[0].value
    assert {m.label: m.value for m in at.metric}["Executions"] == "1"


def test_lineage_of_a_300_deep_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The end of a 300-step chain: the page draws the nearest hops (depth slider, at most 50)
    # instead of walking and drawing all 600 nodes.
    import cmfq

    wh = tmp_path / ".cmfq"
    previous = "0" * 32
    with cmfq.Tracker("deep", warehouse=wh, capture_git=False, capture_env=False) as t:
        for i in range(300):
            with t.execution(f"step{i % 3}") as ex:
                ex.log_input(hash=previous, name=f"a{i}")
                previous = f"{i + 1:032x}"
                ex.log_output(hash=previous, name=f"a{i + 1}")
    monkeypatch.setenv("CMFQ_WAREHOUSE", str(wh))
    at = AppTest.from_file(MAIN, default_timeout=60).switch_page("pages/3_Lineage.py").run()
    at.text_input[0].input(previous).run()
    at.radio[0].set_value("up").run()
    at.slider[0].set_value(50).run()
    _ok(at)
    caption = next(c.value for c in at.caption if "nodes" in c.value)
    # 50 hops up: the center and 50 ancestors, and the 51 runs that made them (not 600 nodes).
    assert caption.startswith("102 nodes (51 artifacts, 51 executions)"), caption
    with cmfq.Warehouse(wh) as w:
        assert w.lineage(previous, "up", 50).nodes.height == 102
