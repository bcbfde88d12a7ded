"""Deployments: what runs where, how it got there, and how it performs in service."""

from __future__ import annotations

import datetime as dt

import polars as pl
import streamlit as st

from cmfq.app import charts, data


def _model(name: str) -> str:
    """A model's name without the folders every model of a pipeline shares."""
    return name.removeprefix("artifacts/").replace("/model/", "/")


st.set_page_config(page_title="cmfq · Deployments", page_icon="🗂️", layout="wide")
data.sidebar()
st.title("Deployments")

projects = data.get("sql", "SELECT DISTINCT project FROM deployments WHERE project IS NOT NULL ORDER BY 1")
project = st.selectbox("Project", ["(all)", *projects["project"].to_list()])
chosen = None if project == "(all)" else project
table = data.get("deployments", chosen)
if table.is_empty():
    st.info("No deployments recorded. Record one with `tracker.deploy(model, 'production')` or `cmfq deploy`.")
    st.stop()
names = data.get("sql", "SELECT hash, name FROM artifacts WHERE kind = 'model'")
table = table.join(names.rename({"hash": "model_hash", "name": "model"}), on="model_hash", how="left")
st.dataframe(table.select("environment", "status", "model", "model_hash", "project", "created_at", "updated_at", "id"),
             hide_index=True, width="stretch")
labels = {r["id"]: f"{r['environment']} · {_model(r['model'] or r['model_hash'])} · {r['id'][:8]}"
          for r in table.iter_rows(named=True)}

st.subheader("Status timeline")
history = data.get("deployments", chosen, history=True).sort(["deployment_id", "at"])
spans = history.with_columns(
    pl.col("deployment_id").replace_strict(labels, default="?").alias("label"), pl.col("at").alias("start"),
    pl.col("at").shift(-1).over("deployment_id").fill_null(pl.lit(dt.datetime.now(dt.UTC)).cast(history.schema["at"]))
    .alias("end"))
st.altair_chart(charts.timeline(spans), width="stretch")

st.subheader("Serving performance")
served = data.get("serving")
served = served.filter(pl.col("deployment_id").is_in(list(labels)))
if served.is_empty():
    st.info("No serving metrics logged (deployment.log_serving_metric(...)).")
else:
    st.altair_chart(charts.serving(served.with_columns(pl.col("deployment_id").replace_strict(labels, default="?")
                                                       .alias("label"))), width="stretch")
