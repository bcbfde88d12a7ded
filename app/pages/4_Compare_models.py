"""Compare models: runs of a stage side by side, scatter, parallel coordinates, metric curves."""

from __future__ import annotations

import polars as pl
import streamlit as st

from cmfq.app import charts, data

#: Runs compared at once (the best ones): enough for any plot, quick on a 100k-run warehouse.
SHOWN = 500

st.set_page_config(page_title="cmfq · Compare models", page_icon="🗂️", layout="wide")
data.sidebar()
st.title("Compare models")

stages = sorted(set(data.get("stages")["stage"].to_list()))
metrics = data.get("sql", "SELECT DISTINCT name FROM final_metrics WHERE last_step IS NULL ORDER BY 1")["name"].to_list()
if not stages or not metrics:
    st.info("No runs with metrics yet.")
    st.stop()
c1, c2, c3 = st.columns([1, 1, 2])
stage = c1.selectbox("Stage", stages, index=stages.index("train") if "train" in stages else 0)
metric = c2.selectbox("Metric", metrics, index=metrics.index("roc_auc") if "roc_auc" in metrics else 0)
where = c3.text_input("Filter", placeholder="params.n_est >= 100 OR params.alpha < 0.005")
table = data.get("compare", stage, metric, where=where.strip() or None, limit=SHOWN + 1)
more = table.height > SHOWN
table = table.head(SHOWN)
scored = table.filter(pl.col(metric).is_not_null())
st.caption(f"the best {SHOWN} runs of {stage} on {metric}; narrow the filter to see others" if more else
           f"{table.height} runs of {stage}, {scored.height} scored on {metric} (a run without its own value is "
           f"scored by the run that evaluated its output)")
st.dataframe(table, hide_index=True, width="stretch")
if scored.is_empty():
    st.stop()

numeric = [c for c in scored.columns if c.startswith("params.") and scored.schema[c].is_numeric()]
left, right = st.columns(2)
with left:
    st.subheader("Parameter vs metric")
    if numeric:
        x = st.selectbox("Parameter", numeric)
        st.altair_chart(charts.scatter(scored.filter(pl.col(x).is_not_null()), x, metric), width="stretch")
    else:
        st.info("No numeric parameter varies among these runs.")
with right:
    st.subheader("Parallel coordinates")
    if numeric:
        st.altair_chart(charts.parallel(scored, [*numeric, metric], metric), width="stretch")

st.subheader("Metric curves")
steps = data.get("sql", "SELECT DISTINCT name FROM metrics WHERE step IS NOT NULL ORDER BY 1")["name"].to_list()
pipeline_of = dict(zip(scored["id"].to_list(), scored["pipeline"].to_list(), strict=True))
runs = st.multiselect("Runs", scored["id"].to_list(), default=scored["id"].to_list()[:5],
                      format_func=lambda i: f"{i[:13]} · {pipeline_of[i]}")
if steps and runs:
    curve = st.selectbox("Curve", steps)
    frames = [data.get("metric_history", r, curve).with_columns(pl.lit(r[:13]).alias("run")) for r in runs]
    history = pl.concat([f for f in frames if f.height]) if any(f.height for f in frames) else None
    if history is not None:
        st.altair_chart(charts.curves(history, curve), width="stretch")
    else:
        st.info(f"These runs logged no {curve} by step.")
