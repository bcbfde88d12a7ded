"""Altair charts of the app (Altair ships with Streamlit and renders offline)."""

from __future__ import annotations

import altair as alt
import polars as pl


def curves(history: pl.DataFrame, metric: str) -> alt.Chart:
    """A metric by step, one line per run."""
    return alt.Chart(history).mark_line(point=True).encode(
        x=alt.X("step:Q", title="step"), y=alt.Y("value:Q", title=metric, scale=alt.Scale(zero=False)),
        color=alt.Color("run:N", title="run"), tooltip=["run:N", "step:Q", "value:Q"],
    ).properties(height=300)


def scatter(table: pl.DataFrame, x: str, y: str, color: str = "pipeline") -> alt.Chart:
    # Plain field names: Vega-Lite reads "params.alpha" as a nested field path.
    data = table.select(pl.col("id"), pl.col(x).alias("x"), pl.col(y).alias("y"), pl.col(color).alias("group"))
    return alt.Chart(data).mark_circle(size=110).encode(
        x=alt.X("x:Q", title=x, scale=alt.Scale(zero=False)), y=alt.Y("y:Q", title=y, scale=alt.Scale(zero=False)),
        color=alt.Color("group:N", title=color),
        tooltip=["id:N", alt.Tooltip("x:Q", title=x), alt.Tooltip("y:Q", title=y), alt.Tooltip("group:N", title=color)],
    ).properties(height=320)


def parallel(table: pl.DataFrame, columns: list[str], color: str) -> alt.Chart:
    """Parallel coordinates: every numeric column scaled to 0..1, one line per run."""
    rows = []
    for r in table.iter_rows(named=True):
        for c in columns:
            lo, hi = table[c].min(), table[c].max()
            if r[c] is None or lo is None or hi is None:
                continue
            rows.append({"id": r["id"], "axis": c, "value": r[c], "scaled": 0.5 if hi == lo else (r[c] - lo) / (hi - lo),
                         "color": r[color]})
    data = pl.DataFrame(rows, schema={"id": pl.String, "axis": pl.String, "value": pl.Float64,
                                      "scaled": pl.Float64, "color": pl.Float64})
    return alt.Chart(data).mark_line(opacity=0.7).encode(
        x=alt.X("axis:N", sort=columns, title=None), y=alt.Y("scaled:Q", axis=None),
        detail="id:N", color=alt.Color("color:Q", title=color, scale=alt.Scale(scheme="viridis")),
        tooltip=["id:N", "axis:N", "value:Q"],
    ).properties(height=300)


def distribution(scores: pl.DataFrame, metric: str) -> alt.Chart:
    """The spread of a metric per dataset: one tick per run, the best one larger."""
    return alt.Chart(scores).mark_tick(thickness=2, size=22).encode(
        x=alt.X(f"{metric}:Q", scale=alt.Scale(zero=False)), y=alt.Y("dataset:N", title=None),
        color="dataset:N", tooltip=["dataset:N", "id:N", f"{metric}:Q", "stage:N"],
    ).properties(height=max(120, 50 * scores["dataset"].n_unique()))


def timeline(spans: pl.DataFrame) -> alt.Chart:
    """Each deployment as bars: one per status, from the change into it to the next (or now)."""
    return alt.Chart(spans).mark_bar(height=18, cornerRadius=3).encode(
        x=alt.X("start:T", title=None, axis=alt.Axis(format="%b %d")), x2="end:T",
        y=alt.Y("label:N", title=None, axis=alt.Axis(labelLimit=320)),
        color=alt.Color("status:N", scale=alt.Scale(domain=["scheduled", "active", "archived", "failed"],
                                                    range=["#9ecae1", "#31a354", "#bdbdbd", "#d62728"])),
        tooltip=["label:N", "status:N", alt.Tooltip("start:T", format="%Y-%m-%d %H:%M"),
                 alt.Tooltip("end:T", format="%Y-%m-%d %H:%M")],
    ).properties(height=max(120, 44 * spans["label"].n_unique()))


def serving(metrics: pl.DataFrame) -> alt.Chart:
    return alt.Chart(metrics).mark_line(point=True).encode(
        x=alt.X("period_start:T", title="period"), y=alt.Y("value:Q", title="value", scale=alt.Scale(zero=False)),
        color=alt.Color("label:N", legend=alt.Legend(labelLimit=320, orient="bottom", columns=1)),
        strokeDash="name:N", tooltip=["label:N", "name:N", "period_start:T", "value:Q"],
    ).properties(height=300)
