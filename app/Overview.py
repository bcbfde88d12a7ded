"""cmfq app, Overview page (the entry script). Start it with `cmfq ui`; pages are in pages/, data access in data.py."""

from __future__ import annotations

import streamlit as st

from cmfq.app import data

#: Search results shown at once.
SHOWN_HITS = 50

st.set_page_config(page_title="cmfq · Overview", page_icon="🗂️", layout="wide")
data.sidebar()
st.title("Overview")

info = data.get("summary")
if info["executions"] == 0:
    st.info("This warehouse is empty. Log runs with `cmfq.Tracker`, pull them with `cmfq pull`, "
            "or build the sample warehouse with `cmfq demo`.")
    st.stop()

cols = st.columns(7)
for col, (label, key) in zip(cols, [("Pipelines", "pipelines"), ("Executions", "executions"),
                                    ("Failures", "failures"), ("Artifacts", "artifacts"), ("Models", "models"),
                                    ("Sites", "sites"), ("Active deployments", "active_deployments")], strict=True):
    col.metric(label, f"{info[key]:,}")
st.caption(f"{info['partitions']:,} partitions, {info['bytes'] / 1e6:.2f} MB on disk · last sync: "
           f"{info['last_sync'] or 'never'}")

# The first thing a user looks for: a run, artifact or pipeline by name, id, hash or param.
found = st.text_input("Search", placeholder="a name, hash or id prefix, param key or value, tag...",
                      help="Searches names, ids, hashes, params and tags across every pipeline (cmfq search)")
if found.strip():
    hits = data.get("search", found, limit=SHOWN_HITS + 1)
    st.caption(f"first {SHOWN_HITS} matches; say more to narrow them" if hits.height > SHOWN_HITS
               else f"{hits.height} match(es)")
    st.dataframe(hits.head(SHOWN_HITS), hide_index=True, width="stretch")

left, right = st.columns([3, 2])
with left:
    st.subheader("Recent executions")
    pipelines = data.get("pipelines")["name"].to_list()
    chosen = st.selectbox("Pipeline", ["(all)", *pipelines], key="overview_pipeline")
    recent = data.get("executions", None if chosen == "(all)" else chosen, limit=10)
    st.dataframe(recent.select("id", "pipeline", "stage", "status", "started_at", "duration_s"), hide_index=True,
                 width="stretch")
with right:
    st.subheader("Pipelines")
    st.dataframe(data.get("pipelines").select("name", "executions", "stages", "failed", "last_run"), hide_index=True,
                 width="stretch")

st.subheader("Failures")
failed = data.get("executions", status="failed", limit=10)
interrupted = data.get("executions", status="interrupted", limit=10)
if failed.height + interrupted.height == 0:
    st.success("No failed or interrupted executions.")
else:
    import polars as pl

    problems = pl.concat([failed, interrupted]).sort("started_at", descending=True)
    details = data.get("sql", "SELECT id, error FROM executions WHERE status IN ('failed', 'interrupted')")
    st.dataframe(problems.join(details, on="id", how="left").select("id", "pipeline", "stage", "status", "started_at",
                                                                      "error"),
                 hide_index=True, width="stretch")
