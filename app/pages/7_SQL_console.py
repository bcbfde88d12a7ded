"""SQL console: read-only SQL over the views, results to download as CSV or Parquet."""

from __future__ import annotations

import io

import streamlit as st

from cmfq.app import data

st.set_page_config(page_title="cmfq · SQL console", page_icon="🗂️", layout="wide")
data.sidebar()
st.title("SQL console")

VIEWS = {
    "executions": "one row per execution: id, pipeline, stage, status, started_at, duration_s, params (JSON), git_*",
    "artifacts": "one row per distinct content: hash, kind, name, uri, size, properties (JSON)",
    "events": "execution × artifact × direction (in/out), with the name the run used",
    "metrics": "every metric point: execution_id, name, step (NULL = final), value",
    "final_metrics": "one value per execution and metric, with min, max and last step",
    "params": "parameters in long form: execution_id, key, value_text, value_num",
    "lineage_edges": "input → output pairs of every execution",
    "models": "model artifacts with the run that made them",
    "deployments / deployment_history / serving_metrics": "deployments now, their status changes, serving per period",
    "dataset_stats / taints / tainted / annotations": "column statistics, bad data and what it reached, tags and notes",
    "ancestors(hash) / descendants(hash)": "all hops up or down, with depth (macros)",
    "run_scores(metric) / influence(hash) / drift(a, b) / search(text)": "the analytical questions as macros",
}
left, right = st.columns([3, 2])
with right:
    st.markdown("**Views and macros**")
    for name, doc in VIEWS.items():
        st.markdown(f"- `{name}`: {doc}")
with left:
    query = st.text_area("SQL", height=160, value="SELECT pipeline, stage, status, count(*) AS runs\n"
                                                  "FROM executions GROUP BY ALL ORDER BY runs DESC")
    run = st.button("Run", type="primary")
if run or "sql_result" not in st.session_state:
    st.session_state["sql_result"] = data.get("sql", query)
result = st.session_state["sql_result"]
st.caption(f"{result.height} rows")
st.dataframe(result, hide_index=True, width="stretch")
csv = result.write_csv()
parquet = io.BytesIO()
result.write_parquet(parquet)
d1, d2 = st.columns(2)
d1.download_button("Download CSV", csv, file_name="result.csv", mime="text/csv")
d2.download_button("Download Parquet", parquet.getvalue(), file_name="result.parquet",
                   mime="application/octet-stream")
