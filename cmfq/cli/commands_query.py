"""Commands that ask questions: listings, details, lineage and SQL."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from cmfq.cli.main import LimitOpt, OffsetOpt, WarehouseOpt, app, open_warehouse
from cmfq.cli.render import Format

if TYPE_CHECKING:
    from cmfq.warehouse.query import Warehouse

#: Rows per batch when `cmfq sql` writes JSON or CSV.
SQL_BATCH_ROWS = 50_000

FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output: a table for people, json/csv for scripts.")]


@app.command()
def pipelines(ctx: typer.Context, warehouse: WarehouseOpt = None, format: FormatOpt = Format.table,
              limit: LimitOpt = 100, offset: OffsetOpt = 0) -> None:
    """List pipelines with their run counts, failures and sites, the latest run first."""
    from cmfq.cli.render import emit_page

    with open_warehouse(ctx, warehouse) as wh:
        emit_page(wh.pipelines(), format, limit, offset)


@app.command()
def stages(ctx: typer.Context, pipeline: Annotated[str | None, typer.Option("--pipeline", "-p")] = None,
           warehouse: WarehouseOpt = None, format: FormatOpt = Format.table, limit: LimitOpt = 100,
           offset: OffsetOpt = 0) -> None:
    """List the stages of all pipelines (or of one)."""
    from cmfq.cli.render import emit_page

    with open_warehouse(ctx, warehouse) as wh:
        emit_page(wh.stages(pipeline), format, limit, offset)


@app.command()
def executions(
    ctx: typer.Context,
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p", help="Only this pipeline.")] = None,
    stage: Annotated[str | None, typer.Option("--stage", "-s", help="Only this stage.")] = None,
    status: Annotated[str | None, typer.Option(help="completed, failed, running or interrupted.")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="Filter on a parameter, e.g. --param n_est>=100 (repeatable, all must hold).")] = None,
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", help="Filter on a final metric, e.g. --metric 'roc_auc>0.9' (repeatable).")] = None,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    warehouse: WarehouseOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """List executions, newest first, a page at a time (--limit, --offset).

    Example: `cmfq executions --stage train --param n_est>=100 --metric 'roc_auc>0.9'`
    """
    from cmfq.cli.render import emit_page

    with open_warehouse(ctx, warehouse) as wh:
        rows = wh.executions(pipeline, stage, status=status, params=param or [], metrics=metric or [],
                             limit=offset + limit + 1)
        emit_page(rows, format, limit, offset, counted=False)


@app.command()
def show(ctx: typer.Context,
         ref: Annotated[str, typer.Argument(help="An execution id (or prefix), an artifact hash (or prefix) or name.")],
         warehouse: WarehouseOpt = None,
         format: Annotated[Format, typer.Option("--format", "-f", help="table or json.")] = Format.table) -> None:
    """Everything about one execution (params, metrics, inputs, outputs, code, environment)
    or one artifact (producer, consumers, properties)."""
    from cmfq.cli.render import emit_record
    from cmfq.errors import NotFoundError

    with open_warehouse(ctx, warehouse) as wh:
        try:
            record = wh.execution(ref)
        except NotFoundError:
            record = wh.artifact(ref)
        emit_record(record, format)


@app.command()
def metrics(ctx: typer.Context,
            execution: Annotated[str, typer.Argument(help="Execution id or prefix.")],
            name: Annotated[str | None, typer.Option("--name", help="Only this metric.")] = None,
            warehouse: WarehouseOpt = None, format: FormatOpt = Format.table, limit: LimitOpt = 1000,
            offset: OffsetOpt = 0) -> None:
    """The metric history of one execution, step by step."""
    from cmfq.cli.render import emit_page

    with open_warehouse(ctx, warehouse) as wh:
        emit_page(wh.metric_history(execution, name), format, limit, offset)


class Direction(StrEnum):
    up = "up"
    down = "down"
    both = "both"


class GraphFormat(StrEnum):
    tree = "tree"
    json = "json"
    dot = "dot"
    mermaid = "mermaid"


@app.command()
def lineage(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Artifact hash, hash prefix or name (latest version); or an execution id.")],
    direction: Annotated[Direction, typer.Option("--direction", "-d",
                                                 help="up: what it came from; down: what it fed.")] = Direction.up,
    depth: Annotated[int | None, typer.Option("--depth", min=1, help="Stop after this many hops.")] = None,
    warehouse: WarehouseOpt = None,
    format: Annotated[GraphFormat, typer.Option("--format", "-f", help="tree, json, dot (Graphviz) or mermaid.")
                      ] = GraphFormat.tree,
) -> None:
    """Show the lineage of an artifact: the executions and artifacts upstream and/or downstream.

    Example: `cmfq lineage artifacts/model/model.pkl --format mermaid`
    """
    with open_warehouse(ctx, warehouse) as wh:
        graph = wh.lineage(ref, direction.value, max_depth=depth)
    if format is GraphFormat.tree:
        text = graph.to_tree(direction.value)
    elif format is GraphFormat.json:
        text = graph.to_json() + "\n"
    elif format is GraphFormat.dot:
        text = graph.to_dot()
    else:
        text = graph.to_mermaid()
    sys.stdout.write(text)


@app.command("sql")
def sql_command(
    ctx: typer.Context,
    query: Annotated[str | None, typer.Argument(help="The SQL to run; without it, an interactive prompt.")] = None,
    warehouse: WarehouseOpt = None,
    format: FormatOpt = Format.table,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Rows shown in table format.")] = 1000,
    remote: Annotated[str | None, typer.Option(
        "--remote", "-r", help="Query a remote in place (a saved remote's name, or a URL) instead.")] = None,
) -> None:
    """Run read-only SQL over the views: executions, artifacts, events, metrics, final_metrics,
    params, annotations, lineage_edges, pipelines, stages; macros ancestors(hash),
    descendants(hash), parents(hash), children(hash), producers(hash), consumers(hash).

    Example: `cmfq sql "SELECT stage, count(*) FROM executions GROUP BY stage"`
    """
    with open_warehouse(ctx, warehouse, remote) as wh:
        if query is not None:
            _run_sql(wh, query, format, limit)
            return
        _repl(wh, format, limit)


def _run_sql(wh: Warehouse, query: str, format: Format, limit: int) -> None:
    import polars as pl
    import pyarrow as pa

    from cmfq.cli.render import emit, emit_batches

    result = wh.relation(query)
    if result.description is None:
        return  # a statement without rows (SET, a comment...)
    if format is not Format.table:
        # Written a batch at a time: `sql -f csv` of a million rows never holds them all.
        rows = result.to_arrow_reader(SQL_BATCH_ROWS)
        emit_batches(rows, rows.schema, format)
        return
    # Tables read only what they show: a huge result streams in batches and stops early.
    reader = result.to_arrow_reader(limit + 1)
    batches, rows = [], 0
    while rows <= limit:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        batches.append(batch)
        rows += batch.num_rows
    df = pl.from_arrow(pa.Table.from_batches(batches, schema=reader.schema))
    assert isinstance(df, pl.DataFrame)
    emit(df.head(limit), format, total=rows if rows > limit else None)


def _repl(wh: Warehouse, format: Format, limit: int) -> None:
    from cmfq.cli.render import err
    from cmfq.errors import CmfqError

    try:
        import readline  # noqa: F401 - line editing and history in input()
    except ImportError:
        pass
    console = err()
    console.print(f"cmfq SQL on {wh.root}. End statements with ';'. Ctrl-D to quit. "
                  "Try: SELECT * FROM pipelines;")
    buffer: list[str] = []
    while True:
        try:
            line = input("cmfq> " if not buffer else "  ..> ")
        except EOFError:
            console.print()
            return
        if not buffer and line.strip() in {".exit", ".quit", "exit", "quit"}:
            return
        buffer.append(line)
        text = "\n".join(buffer).strip()
        if not text.endswith(";"):
            continue
        buffer = []
        try:
            _run_sql(wh, text.rstrip(";"), format, limit)
        except CmfqError as exc:
            console.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
