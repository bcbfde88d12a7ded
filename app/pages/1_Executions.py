"""Executions: filter runs, open one, diff it with another."""

from __future__ import annotations

import json

import polars as pl
import streamlit as st

from cmfq.app import charts, data, fields

#: Rows shown at once: a page of a 100k-run warehouse must stay quick to send and to draw.
SHOWN = 500


def _labels(frame: pl.DataFrame) -> dict[str, str]:
    """id -> a one-line description, for the pickers (built once, not searched per option)."""
    labels = {}
    for row in frame.iter_rows(named=True):
        params = {k.removeprefix("params."): v for k, v in row.items() if k.startswith("params.") and v is not None}
        labels[row["id"]] = f"{row['id']}  ·  {row['pipeline']} / {row['stage']} · {row['status']} · " \
                            f"{json.dumps(params)[:60]}"
    return labels


st.set_page_config(page_title="cmfq · Executions", page_icon="🗂️", layout="wide")
data.sidebar()
st.title("Executions")

pipelines = data.get("pipelines")["name"].to_list()
stages = sorted(set(data.get("stages")["stage"].to_list()))
c1, c2, c3 = st.columns(3)
pipeline = c1.selectbox("Pipeline", ["(all)", *pipelines])
stage = c2.selectbox("Stage", ["(all)", *stages])
status = c3.selectbox("Status", ["(all)", "completed", "failed", "running", "interrupted"])
where = st.text_input("Filter", placeholder="params.n_est >= 100 AND (metrics.roc_auc > 0.9 OR status = failed)",
                      help="params.<key>, metrics.<name>, stage, status... with = != < <= > >=, AND, OR, NOT, ( )")
conditions = [w for w in [where.strip(), f"status = '{status}'" if status != "(all)" else ""] if w]
table = data.get("compare", None if stage == "(all)" else stage, None,
                 pipeline=None if pipeline == "(all)" else pipeline,
                 where=" AND ".join(f"({c})" for c in conditions) or None, limit=SHOWN + 1)
more = table.height > SHOWN
table = table.head(SHOWN)
st.caption(f"the latest {SHOWN} executions that match; narrow the filter to see others" if more
           else f"{table.height} executions")
st.dataframe(table, hide_index=True, width="stretch")
if table.is_empty():
    st.stop()

st.divider()
ids = table["id"].to_list()
labels = _labels(table)
chosen = st.selectbox("Execution", ids, format_func=labels.__getitem__)
run = data.get("execution", chosen)
a, b = st.columns([1, 1])
with a:
    st.subheader(f"{run['stage']} · {run['status']}")
    fields.show(run, ("pipeline", "started_at", "duration_s", "site", "host", "user", "cmd"))
    st.markdown("**Code**")
    fields.show(run, ("git_repo", "git_commit", "git_branch", "git_dirty", "env_hash"))
    if run.get("reproduce"):
        st.caption("To get this run's code and inputs back")
        st.code("\n".join(run["reproduce"]), language="bash")
    if run["error"]:
        st.error(run["error"])
with b:
    st.markdown("**Parameters**")
    st.json(run["params"], expanded=True)
    st.markdown("**Metrics**")
    st.dataframe(pl.DataFrame(run["metrics"]) if run["metrics"] else pl.DataFrame(), hide_index=True)
st.markdown("**Inputs**")
st.dataframe(pl.DataFrame(run["inputs"]) if run["inputs"] else pl.DataFrame(), hide_index=True,
             width="stretch")
st.markdown("**Outputs**")
st.dataframe(pl.DataFrame(run["outputs"]) if run["outputs"] else pl.DataFrame(), hide_index=True,
             width="stretch")
history = data.get("metric_history", chosen)
stepped = history.filter(pl.col("step").is_not_null())
if stepped.height:
    name = st.selectbox("Metric curve", sorted(set(stepped["name"])))
    st.altair_chart(charts.curves(stepped.filter(pl.col("name") == name).with_columns(pl.lit(chosen[:13]).alias("run")),
                                  name), width="stretch")

st.divider()
other = st.selectbox("Diff with", [i for i in ids if i != chosen] or ["(no other execution)"],
                     format_func=lambda i: labels.get(i, i))
if st.button("Diff", disabled=other == "(no other execution)"):
    d = data.get("diff", chosen, other)
    for title, frame in (("Parameters", d.params), ("Metrics", d.metrics), ("Inputs and outputs", d.artifacts),
                         ("Code", d.code), ("Environment", d.environment)):
        st.markdown(f"**{title}**" + ("" if frame.height else " — no difference"))
        if frame.height:
            st.dataframe(frame, hide_index=True, width="stretch")
