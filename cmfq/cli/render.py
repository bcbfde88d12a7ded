"""Turning query results into what the terminal shows: rich tables, JSON or CSV."""

from __future__ import annotations

import datetime as dt
import json
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cmfq.warehouse.text import printable

if TYPE_CHECKING:
    from collections.abc import Iterable

    import polars as pl
    import pyarrow as pa

#: Columns holding JSON text: JSON output nests them as objects instead of strings.
JSON_COLUMNS = {"params", "properties", "value"}
#: Columns holding content hashes: tables show a prefix (any 4+ characters resolve back).
HASH_COLUMNS = {"hash", "artifact_hash", "parent_hash", "child_hash", "env_hash"}
HASH_SHOWN = 12


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def out() -> Console:
    # Piped into a file or another program, a table must not wrap at 80 columns.
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 4096)


def err() -> Console:
    return Console(stderr=True, soft_wrap=True)


def emit(df: pl.DataFrame, fmt: Format, *, title: str | None = None, total: int | None = None) -> None:
    """Print ``df`` to stdout. ``total`` (rows before a limit) adds a "more" hint to tables."""
    if fmt is Format.json:
        sys.stdout.write(json.dumps([_json_row(r) for r in df.iter_rows(named=True)], indent=2,
                                    default=_default, ensure_ascii=False) + "\n")
    elif fmt is Format.csv:
        sys.stdout.write(df.with_columns(_stringified(df)).write_csv())
    else:
        console = out()
        if df.height == 0:
            console.print("[dim](no rows)[/dim]")
            return
        table = Table(title=title, header_style="bold", show_edge=False, pad_edge=False)
        for name in df.columns:
            numeric = df.schema[name].is_numeric()
            table.add_column(name, justify="right" if numeric else "left", overflow="fold")
        for row in df.iter_rows(named=True):
            table.add_row(*[_cell(k, v) for k, v in row.items()])
        console.print(table)
        if total is not None and total > df.height:
            err().print(f"[dim]… {total - df.height} more rows; raise --limit or use --format json|csv[/dim]")


def emit_batches(batches: Iterable[pa.RecordBatch], schema: pa.Schema, fmt: Format) -> None:
    """Print a result as JSON or CSV a batch at a time: the same text as :func:`emit` of the
    whole frame, without ever holding the whole frame (``cmfq sql -f csv`` of a million rows)."""
    import polars as pl

    first = True
    if fmt is Format.json:
        sys.stdout.write("[")
    for batch in batches:
        df = pl.from_arrow(batch)
        assert isinstance(df, pl.DataFrame)
        if fmt is Format.json:
            for r in df.iter_rows(named=True):
                # An element of json.dumps(rows, indent=2): each line two spaces further in.
                text = json.dumps(_json_row(r), indent=2, default=_default, ensure_ascii=False)
                sys.stdout.write(("\n" if first else ",\n") + "\n".join("  " + line for line in text.split("\n")))
                first = False
        elif df.height or first:
            sys.stdout.write(df.with_columns(_stringified(df)).write_csv(include_header=first))
            first = False
    if fmt is Format.json:
        sys.stdout.write("]\n" if first else "\n]\n")
    elif first:  # no batch at all: the header alone, as emit() writes it
        empty = pl.from_arrow(schema.empty_table())
        assert isinstance(empty, pl.DataFrame)
        sys.stdout.write(empty.with_columns(_stringified(empty)).write_csv())


def emit_page(df: pl.DataFrame, fmt: Format, limit: int, offset: int = 0, *, counted: bool = True,
              paged: bool = False) -> None:
    """Print rows ``offset`` to ``offset + limit`` of ``df`` and, on stderr, how to see the rest.
    ``counted=False``: ``df`` was fetched with ``LIMIT offset + limit + 1`` (so the number of
    rows left is unknown, only that there are more). ``paged=True``: ``df`` is the page itself,
    fetched with ``LIMIT limit + 1 OFFSET offset`` (the query skipped the first rows)."""
    start = 0 if paged else offset
    shown = df.slice(start, limit)
    emit(shown, fmt)
    left = df.height - start - shown.height
    if left > 0:
        count = f"{left} more rows" if counted and not paged else "more rows"
        err().print(f"[dim]… {count}; see them with --offset {offset + limit}, or raise --limit[/dim]",
                    highlight=False)


def emit_record(record: dict[str, Any], fmt: Format) -> None:
    """Print one nested record (``cmfq show``) as JSON or as an indented listing."""
    if fmt is Format.json:
        sys.stdout.write(json.dumps(record, indent=2, default=_default, ensure_ascii=False) + "\n")
        return
    console = out()
    for key, value in record.items():
        if isinstance(value, list):
            console.print(f"[bold]{key}[/bold] ({len(value)})")
            for item in value:
                console.print("  " + _inline(item), highlight=False, markup=False)
        elif isinstance(value, dict):
            console.print(f"[bold]{key}[/bold]")
            for k, v in value.items():
                console.print(f"  {printable(str(k))} = {_inline(v)}", highlight=False, markup=False)
        else:
            console.print(f"[bold]{key}[/bold]: {escape(_inline(value))}", highlight=False)


def _inline(value: Any) -> str:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return "  ".join(f"{printable(str(k))}={_inline(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, dt.datetime):
        return _when(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return printable(json.dumps(value, ensure_ascii=False) if isinstance(value, list) else str(value))


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column in HASH_COLUMNS and isinstance(value, str) and len(value) > HASH_SHOWN:
        return value[:HASH_SHOWN]
    if isinstance(value, dt.datetime):
        return _when(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return escape(printable(", ".join(str(v) for v in value)))
    return escape(printable(str(value)))


def _when(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    for key in JSON_COLUMNS & row.keys():
        if isinstance(row[key], str):
            try:
                row[key] = json.loads(row[key])
            except ValueError:
                pass
    return row


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _stringified(df: pl.DataFrame) -> list[pl.Expr]:
    # CSV has no lists or structs: show them as JSON text.
    import polars as pl

    return [pl.col(n).map_elements(lambda v: json.dumps(v, default=str), return_dtype=pl.String)
            for n, t in df.schema.items() if isinstance(t, pl.List | pl.Struct)]
