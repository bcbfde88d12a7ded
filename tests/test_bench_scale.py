"""The scale generator (bench/synth_scale.py) at a tiny size: the warehouse it writes opens
and verifies, holds exactly the counts its manifest promises, links lineage from models back
to raw datasets, and is the same bytes every time."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import cmfq
from cmfq.cli.main import app
from cmfq.warehouse.layout import Layout

BENCH = Path(__file__).resolve().parents[1] / "bench"
TINY: dict[str, Any] = {"executions": 1_500, "pipelines": 3, "points_per_file": 25_000, "chain_depth": 7,
                        "raw_snapshots": 3}


@pytest.fixture(scope="module")
def synth_scale() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        import synth_scale as module
    finally:
        sys.path.remove(str(BENCH))
    return module


@pytest.fixture(scope="module")
def generated(synth_scale: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("scale") / "wh"
    return root, synth_scale.generate(synth_scale.ScaleParams(**TINY), root, progress=False)


def test_counts_in_the_index_are_the_manifest(generated: tuple[Path, dict[str, Any]]) -> None:
    root, m = generated
    assert 1_400 <= m["executions"] <= 1_700 and m["failed"] > 0
    # The shapes of the full size: ~10 events and ~100 metric points per execution.
    assert 9 <= m["events"] / m["executions"] <= 11 and 80 <= m["metrics"] / m["executions"] <= 120
    with cmfq.Warehouse(root) as wh:
        assert not wh.problems
        got = wh.sql("""SELECT (SELECT count(*) FROM executions) AS executions, (SELECT count(*) FROM events) AS events,
                               (SELECT count(*) FROM metrics) AS metrics, (SELECT count(*) FROM artifacts) AS artifacts,
                               (SELECT count(*) FROM lineage_edges) AS lineage_edges,
                               (SELECT count(*) FROM executions WHERE status = 'failed') AS failed""").row(0, named=True)
        assert got == {k: m[k] for k in got}
        # Every input but a raw dataset (or a deep-chain config) is something an execution wrote.
        orphans = wh.sql("""SELECT count(*) FROM events AS i WHERE i.direction = 'in' AND NOT EXISTS
                              (SELECT 1 FROM events AS o WHERE o.direction = 'out' AND o.artifact_hash = i.artifact_hash)
                            AND i.name NOT LIKE 'data/raw/%' AND i.name NOT LIKE 'configs/%'""").item()
        assert orphans == 0
        # Every artifact an event names has its row (kind, name) in artifacts.
        assert wh.sql("SELECT count(*) FROM events ANTI JOIN artifacts ON hash = artifact_hash").item() == 0


def test_partitions_verify_and_are_sized_by_metric_points(generated: tuple[Path, dict[str, Any]]) -> None:
    root, m = generated
    result = CliRunner().invoke(app, ["-w", str(root), "verify"])
    assert result.exit_code == 0, result.output
    names = list(Layout(root).partitions())
    assert len(names) == m["files"]
    points = [pq.ParquetFile(Layout(root).path(n)).metadata.num_rows for n in names if n.table == "metrics"]
    # A flush ends with the group that passes points_per_file: never more than a group beyond.
    assert max(points) <= TINY["points_per_file"] + 4 * 110 * 8 + 100
    assert sum(points) == m["metrics"]


def test_lineage_reaches_raw_data_and_metric_points_are_queryable(generated: tuple[Path, dict[str, Any]]) -> None:
    root, m = generated
    sample = m["sample"]
    with cmfq.Warehouse(root) as wh:
        ancestors = wh.ancestors(sample["model"])
        assert sample["raw"] in ancestors["hash"].to_list()
        assert ancestors.filter(ancestors["hash"] == sample["raw"])["depth"].item() == 3  # features, splits, raw
        history = wh.metric_history(sample["train_id"])
        assert history.height == sample["train_points"]
        assert set(history["name"]) == {"loss", "val_loss", "accuracy", "learning_rate"}
        assert history.filter(history["name"] == "loss")["step"].to_list() == list(range(sample["train_points"] // 4))
        deep = wh.ancestors(m["deep_model"])
        assert deep.height == m["deep_ancestors"] and deep["depth"].max() == m["deep_depth"]
        assert wh.descendants(m["shared_dataset"]).height == m["shared_descendants"]
        scored = wh.sql("SELECT count(*) FROM final_metrics WHERE name = 'roc_auc'").item()
        evaluated = wh.sql("SELECT count(*) FROM executions WHERE stage = 'evaluate' AND status = 'completed'").item()
        assert scored == evaluated > 0


def test_same_parameters_same_bytes(synth_scale: Any, generated: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, m = generated
    again = synth_scale.generate(synth_scale.ScaleParams(**TINY), tmp_path / "wh", progress=False)
    assert sorted(map(str, Layout(tmp_path / "wh").partitions())) == sorted(map(str, Layout(root).partitions()))
    assert json.dumps(again, sort_keys=True) == json.dumps(m, sort_keys=True)
    other = synth_scale.ScaleParams(**{**TINY, "seed": 7})
    assert other.key() != synth_scale.ScaleParams(**TINY).key()
