"""Artifacts: search by name, hash, kind or tag; open one (producer, consumers, statistics)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from cmfq.app import data

st.set_page_config(page_title="cmfq · Artifacts", page_icon="🗂️", layout="wide")
data.sidebar()
st.title("Artifacts")

c1, c2 = st.columns([3, 1])
text = c1.text_input("Search", placeholder="a name, a hash prefix, a tag, a parameter...")
kinds = data.get("sql", "SELECT DISTINCT kind FROM artifacts ORDER BY 1")["kind"].to_list()
kind = c2.selectbox("Kind", ["(all)", *kinds])
table = data.get("artifacts", None if kind == "(all)" else kind, limit=2000)
if text.strip():
    hits = data.get("search", text.strip())
    ids = set(hits.filter(pl.col("entity") == "artifact")["id"].to_list())
    table = table.filter(pl.col("hash").is_in(ids) | pl.col("name").str.contains(text.strip(), literal=True))
st.caption(f"{table.height} artifacts")
st.dataframe(table.select("name", "kind", "hash", "size", "first_seen_at"), hide_index=True,
             width="stretch")
if table.is_empty():
    st.stop()

st.divider()
chosen = st.selectbox("Artifact", table["hash"].to_list(),
                      format_func=lambda h: f"{table.filter(pl.col('hash') == h)['name'][0]}  ·  {h[:12]}")
info = data.get("artifact", chosen)
left, right = st.columns([1, 1])
with left:
    st.subheader(info.get("name", chosen))
    st.write({k: info.get(k) for k in ("hash", "kind", "size", "uri", "site", "first_seen_at")})
    if info.get("properties"):
        st.markdown("**Properties**")
        st.json(info["properties"], expanded=False)
    tags = data.get("sql", "SELECT key, value, \"at\" FROM annotations WHERE entity_kind = 'artifact' AND entity_id = ?",
                    [chosen])
    if tags.height:
        st.markdown("**Annotations**")
        st.dataframe(tags, hide_index=True)
with right:
    st.markdown("**Produced by**")
    st.dataframe(pl.DataFrame(info["producers"]) if info["producers"] else pl.DataFrame(), hide_index=True)
    st.markdown("**Used by**")
    st.dataframe(pl.DataFrame(info["consumers"]) if info["consumers"] else pl.DataFrame(), hide_index=True)
stats = data.get("sql", "SELECT count(*) AS n FROM dataset_stats WHERE artifact_hash = ?", [chosen])["n"][0]
if stats:
    st.markdown("**Column statistics**")
    st.dataframe(data.get("dataset_stats", chosen), hide_index=True, width="stretch")
