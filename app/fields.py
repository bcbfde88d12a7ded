"""A record's fields as a two-column table of plain text (not a dict dump with reprs)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl
import streamlit as st


def text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def show(record: Mapping[str, Any], keys: Iterable[str]) -> None:
    keys = list(keys)
    st.dataframe(pl.DataFrame({"field": keys, "value": [text(record.get(k)) for k in keys]}),
                 hide_index=True, width="stretch")
