"""Artifacts: search by name, hash, kind or tag; open one (producer, consumers, statistics)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from cmfq.app import data, fields

#: Rows listed at once (newest first); search reaches the rest.
SHOWN = 1000

st.set_page_config(page_title="cmfq · Artifacts", page_icon="🗂️", layout="wide")
data.sidebar()
st.title("Artifacts")

c1, c2 = st.columns([3, 1])
text = c1.text_input("Search", placeholder="a name, a hash prefix, a tag, a parameter...")
kinds = data.get("sql", "SELECT DISTINCT kind FROM artifacts ORDER BY 1")["kind"].to_list()
kind = c2.selectbox("Kind", ["(all)", *kinds])
chosen_kind = None if kind == "(all)" else kind
if text.strip():
    # A name match anywhere (not only among the newest), plus what search finds by hash, tag, param.
    by_name = data.get("artifacts", chosen_kind, name=text.strip(), limit=SHOWN)
    hits = data.get("search", text.strip())
    found = sorted(set(hits.filter(pl.col("entity") == "artifact")["id"].to_list()))
    others = data.get("sql", "SELECT hash, kind, name, size, first_seen_at, uri FROM artifacts "
                             "WHERE hash IN (SELECT unnest(?::VARCHAR[])) AND (?::VARCHAR IS NULL OR kind = ?)",
                      [found, chosen_kind, chosen_kind])
    table = pl.concat([by_name, others]).unique("hash", keep="first", maintain_order=True)
else:
    table = data.get("artifacts", chosen_kind, limit=SHOWN)
st.caption(f"the newest {SHOWN} artifacts; search to find others" if table.height >= SHOWN and not text.strip()
           else f"{table.height} artifacts")
st.dataframe(table.select("name", "kind", "hash", "size", "first_seen_at"), hide_index=True,
             width="stretch")
if table.is_empty():
    st.stop()

st.divider()
names = dict(zip(table["hash"].to_list(), table["name"].to_list(), strict=True))
chosen = st.selectbox("Artifact", table["hash"].to_list(), format_func=lambda h: f"{names[h]}  ·  {h[:12]}")
info = data.get("artifact", chosen)
left, right = st.columns([1, 1])
with left:
    st.subheader(info.get("name", chosen))
    fields.show(info, ("hash", "kind", "size", "uri", "site", "first_seen_at"))
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
