"""Per-column summary statistics of a tabular dataset (CSV, TSV or Parquet), with polars.

They are stored as facts (table ``dataset_stats``) so that datasets can be compared and
covariate shift measured later without the data at hand.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from cmfq.errors import InvalidInputError

QUANTILES = [i / 10 for i in range(11)]
TOP = 5


def read_table(path: str | Path) -> Any:
    """A polars DataFrame from a CSV, TSV or Parquet file (or a folder of Parquet files)."""
    import polars as pl

    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if p.is_dir():
            return pl.read_parquet(str(p / "**" / "*.parquet"))
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(p)
        if suffix in (".csv", ".tsv", ".txt"):
            return pl.read_csv(p, separator="\t" if suffix == ".tsv" else ",", infer_schema_length=10_000)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InvalidInputError(f"{p} cannot be read as a table ({exc}).") from None
    raise InvalidInputError(f"{p}: statistics are computed for .csv, .tsv and .parquet files.",
                            hint="Convert the dataset, or log it without statistics.")


def column_stats(df: Any) -> list[dict[str, Any]]:
    """One row per column: dtype, count, nulls, and for numbers mean, std, min, max and deciles;
    distinct values and the most frequent ones for every column."""
    rows = []
    for name in df.columns:
        col = df[name]
        numeric = col.dtype.is_numeric()
        values = col.drop_nulls()
        if numeric:
            values = values.cast(float)
            values = values.filter(values.is_finite())
        stat: dict[str, Any] = {
            "column": name, "dtype": str(col.dtype), "count": df.height, "nulls": col.null_count(),
            "mean": None, "std": None, "min": None, "max": None, "quantiles": None,
            "distinct": col.n_unique(),
        }
        if numeric and len(values):
            stat.update(mean=_num(values.mean()), std=_num(values.std()), min=_num(values.min()),
                        max=_num(values.max()),
                        quantiles=[_num(values.quantile(q, "linear")) for q in QUANTILES])
        counts = col.drop_nulls().value_counts(sort=True).head(TOP)
        stat["top"] = json.dumps([[str(v), int(c)] for v, c in counts.iter_rows()])
        rows.append(stat)
    return rows


def _num(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None
