"""Lineage: the graph around an artifact or an execution; click a node to recenter on it."""

from __future__ import annotations

import streamlit as st

from cmfq.app import data, graph

st.set_page_config(page_title="cmfq · Lineage", page_icon="🗂️", layout="wide")
data.sidebar()
st.title("Lineage")

models = data.get("sql", "SELECT hash, name FROM models ORDER BY trained_at DESC NULLS LAST LIMIT 1")
default = models["hash"][0] if models.height else ""
if "lineage_next" in st.session_state:  # a node was clicked in the last run: recenter on it
    st.session_state["lineage_ref"] = st.session_state.pop("lineage_next")
if "lineage_ref" not in st.session_state:
    st.session_state["lineage_ref"] = st.query_params.get("ref", default)
c1, c2, c3 = st.columns([3, 1, 1])
ref = c1.text_input("Artifact or execution", key="lineage_ref",
                    help="A hash or hash prefix, an artifact name (latest version), or an execution id")
direction = c2.radio("Direction", ["up", "down", "both"], horizontal=True, index=2)
depth = c3.slider("Depth", 1, 50, 10, help="Hops from the center")
if not ref.strip():
    st.info("Nothing logged yet: no artifact to center on.")
    st.stop()

lineage = data.get("lineage", ref.strip(), direction, depth)
tainted = set(data.get("sql", "SELECT DISTINCT hash FROM tainted")["hash"].to_list())
drawing = graph.draw(lineage, tainted)
executions = lineage.nodes.filter(lineage.nodes["type"] == "execution").height
st.caption(f"{drawing.shown} nodes ({lineage.nodes.height - executions} artifacts, {executions} executions)"
           + (f" · the {drawing.total - drawing.shown} farthest are not drawn: lower the depth or recenter"
              if drawing.total > drawing.shown else "") + " · click a node to recenter on it")
event = st.altair_chart(drawing.chart, width="stretch", on_select="rerun", key="lineage_graph")
picked = (event.get("selection", {}).get("node") or []) if isinstance(event, dict) else []
if picked and picked[0].get("id") and picked[0]["id"] != ref.strip():
    st.session_state["lineage_next"] = picked[0]["id"]
    st.rerun()

with st.expander("Nodes"):
    st.dataframe(lineage.nodes, hide_index=True, width="stretch")
with st.expander("Mermaid (paste into Markdown)"):
    st.code(lineage.to_mermaid(), language="text")
