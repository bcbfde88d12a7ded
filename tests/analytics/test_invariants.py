"""Invariants of the analytical questions on random lineage graphs (cycles allowed)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import cmfq
from cmfq.cli.main import app

N = 10
H = [f"{i:032x}" for i in range(N)]
graphs = st.lists(st.tuples(st.sets(st.integers(0, N - 1), max_size=3), st.sets(st.integers(0, N - 1), min_size=1,
                                                                                 max_size=2)), min_size=1, max_size=10)


def _build(root: Path, graph: list[tuple[set[int], set[int]]]) -> dict[str, set[int]]:
    """Log the graph; artifacts with an odd number are models. Returns execution id -> inputs."""
    runs = {}
    with cmfq.Tracker("g", warehouse=root, capture_git=False, capture_env=False) as t:
        for ins, outs in graph:
            with t.execution("step") as ex:
                for i in sorted(ins):
                    ex.log_input(hash=H[i], name=f"n{i}", kind="model" if i % 2 else "dataset")
                for o in sorted(outs):
                    ex.log_output(hash=H[o], name=f"n{o}", kind="model" if o % 2 else "dataset")
                runs[ex.id] = ins
    return runs


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs, start=st.integers(0, N - 1))
def test_influence_is_descendants_and_their_consumers(graph: list[tuple[set[int], set[int]]], start: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runs = _build(Path(tmp), graph)
        if not any(start in ins | outs for ins, outs in graph):
            return
        with cmfq.Warehouse(Path(tmp)) as wh:
            down = set(wh.descendants(H[start])["hash"])
            table = wh.influence(H[start])
            # Row for row (labels, depths, order) what the SQL macro answers over the views.
            macro = wh.sql("SELECT * FROM influence(?) ORDER BY depth, entity, name, id", [H[start]])
            assert table.rows() == macro.rows() and table.dtypes == macro.dtypes
        reached = {i for i in range(N) if H[i] in down} | {start}
        assert set(table.filter(pl.col("entity") == "artifact")["id"]) == down
        consumers = {x for x, ins in runs.items() if ins & reached}
        assert set(table.filter(pl.col("entity") == "execution")["id"]) == consumers


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs, bad=st.integers(0, N - 1))
def test_taint_marks_exactly_the_models_downstream(graph: list[tuple[set[int], set[int]]], bad: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _build(Path(tmp), graph)
        if not any(bad in ins | outs for ins, outs in graph):
            return
        assert CliRunner().invoke(app, ["-w", tmp, "taint", H[bad], "--reason", "r"]).exit_code == 0
        with cmfq.Warehouse(Path(tmp)) as wh:
            downstream = set(wh.descendants(H[bad])["hash"]) | {H[bad]}
            models = set(wh.models()["hash"])
            assert set(wh.models(tainted=True)["hash"]) == models & downstream
            assert set(wh.models(tainted=False)["hash"]) == models - downstream
            # The model card says the same, from the model's ancestors rather than the taint's descendants.
            for model in models:
                expected = [{"source": H[bad], "reason": "r"}] if model in downstream else []
                assert wh.audit(model)["tainted_by"] == expected
