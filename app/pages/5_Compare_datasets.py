"""Compare datasets: which runs used each and how they did, column statistics, drift."""

from __future__ import annotations

import polars as pl
import streamlit as st

from cmfq.app import charts, data

st.set_page_config(page_title="cmfq · Compare datasets", page_icon="🗂️", layout="wide")
data.sidebar()
st.title("Compare datasets")

sets = data.get("sql", """SELECT a.hash, a.name,
                                 (SELECT count(*) FROM dataset_stats s WHERE s.artifact_hash = a.hash) > 0 AS has_stats,
                                 NOT EXISTS (SELECT 1 FROM events e WHERE e.artifact_hash = a.hash
                                             AND e.direction = 'out') AS raw
                          FROM artifacts a WHERE a.kind IN ('dataset', 'dataslice')
                          ORDER BY has_stats DESC, raw DESC, a.name""")
if sets.is_empty():
    st.info("No datasets logged yet.")
    st.stop()
names = {r["hash"]: f"{r['name']} · {r['hash'][:8]}" + ("" if r["has_stats"] else " (no statistics)")
         for r in sets.iter_rows(named=True)}
with_stats = [h for h in sets.filter(pl.col("has_stats"))["hash"].to_list()]
chosen = st.multiselect("Datasets", list(names), default=with_stats[:2] or list(names)[:2], format_func=names.get)
metrics = data.get("sql", "SELECT DISTINCT name FROM final_metrics WHERE last_step IS NULL ORDER BY 1")["name"].to_list()
if len(chosen) < 1 or not metrics:
    st.stop()
c1, c2 = st.columns(2)
metric = c1.selectbox("Metric", metrics, index=metrics.index("roc_auc") if "roc_auc" in metrics else 0)
stages = sorted(set(data.get("stages")["stage"].to_list()))
stage = c2.selectbox("Runs of stage", stages, index=stages.index("train") if "train" in stages else 0)

st.subheader("Runs on each dataset")
frames = []
for h in chosen:
    runs = data.get("best", metric, h, stage=stage, limit=None)
    frames.append(runs.with_columns(pl.lit(names[h].split(" · ")[0]).alias("dataset")))
scores = pl.concat([f for f in frames if f.height]) if any(f.height for f in frames) else pl.DataFrame()
if scores.height:
    best = scores.sort(metric, descending=True).group_by("dataset", maintain_order=True).head(1)
    st.dataframe(best.select("dataset", "pipeline", "stage", metric, "params", "git_commit"), hide_index=True,
                 width="stretch")
    st.altair_chart(charts.distribution(scores, metric), width="stretch")
else:
    st.info(f"No run downstream of these datasets logged {metric}.")

st.subheader("Column statistics")
stats = [data.get("dataset_stats", h).with_columns(pl.lit(names[h].split(" · ")[0] + " " + h[:6]).alias("dataset"))
         for h in chosen if h in with_stats]
if stats:
    side = pl.concat(stats).select("dataset", "column", "dtype", "count", "nulls", "mean", "std", "min", "max",
                                   "distinct")
    st.dataframe(side.sort(["column", "dataset"]), hide_index=True, width="stretch")
if len([h for h in chosen if h in with_stats]) >= 2:
    a, b = [h for h in chosen if h in with_stats][:2]
    st.subheader(f"Drift from {names[a]} to {names[b]}")
    st.dataframe(data.get("drift", a, b), hide_index=True, width="stretch")
elif len(chosen) >= 2:
    st.info("Drift needs column statistics of both datasets: `cmfq stats PATH --record`.")
