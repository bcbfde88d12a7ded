"""`cmfq spark-sql`: the same views queried through Apache Spark (the `spark` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from cmfq.cli.main import WarehouseOpt, app, warehouse_of
from cmfq.cli.render import Format


@app.command("spark-sql")
def spark_sql(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="The Spark SQL to run over the views.")],
    warehouse: WarehouseOpt = None,
    remote: Annotated[str | None, typer.Option(
        "--remote", "-r", help="Read a remote in place instead: a saved remote's name or a URL "
        "(s3:// is read as s3a://; give its settings with --conf).")] = None,
    master: Annotated[str, typer.Option("--master", help="Spark master: local[N], spark://host:7077, yarn...")
                      ] = "local[2]",
    conf: Annotated[list[str] | None, typer.Option(
        "--conf", "-c", help="A Spark setting key=value, e.g. spark.hadoop.fs.s3a.endpoint=http://... "
        "(repeatable).")] = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output: a table for people, json/csv for scripts.")
                      ] = Format.table,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Rows shown in table format.")] = 1000,
) -> None:
    """Run SQL through Apache Spark over the same views as `cmfq sql`: executions, artifacts,
    events, metrics, final_metrics, annotations, lineage_edges, nodes, lineage_graph, pipelines,
    stages; table functions parents(hash), children(hash), producers(hash), consumers(hash).

    Spark reads the partitions in place and deduplicates them like the local index. Needs
    `pip install 'cmfq[spark]'` and Java 17+.

    Example: `cmfq spark-sql "SELECT pipeline, count(*) FROM executions GROUP BY 1" --master local[4]`
    """
    import polars as pl

    from cmfq.cli.render import emit
    from cmfq.errors import InvalidInputError, QueryError

    try:
        import pyspark  # noqa: F401
        from pyspark.errors import PySparkException
    except ImportError:
        raise InvalidInputError("Spark is not installed.",
                                hint="Install it with `pip install 'cmfq[spark]'` (and Java 17+).") from None
    from cmfq.warehouse import spark as cspark

    settings = {}
    for item in conf or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--conf {item!r} is not key=value.",
                                    hint="Write it as --conf spark.some.key=value.")
        settings[key.strip()] = value
    target = _target(ctx, warehouse, remote)
    session = cspark.session(master, settings)
    try:
        cspark.register(session, target)
        df = session.sql(query)
        rows = df.limit(limit + 1) if format is Format.table else df
        frame = pl.from_arrow(rows.toArrow())
    except PySparkException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QueryError(f"Spark refused the query: {first}",
                         hint="Run `cmfq spark-sql \"SHOW VIEWS\"` to see the views you can query.") from None
    assert isinstance(frame, pl.DataFrame)
    if format is Format.table and frame.height > limit:
        emit(frame.head(limit), format, total=frame.height)
    else:
        emit(frame, format)


def _target(ctx: typer.Context, warehouse: WarehouseOpt, remote: str | None) -> str:
    """The folder or URL Spark reads: a saved remote's URL by name, else the warehouse."""
    from pathlib import Path

    from cmfq.config import warehouse_path

    if remote is None:
        return str(warehouse_path(warehouse_of(ctx, warehouse)))
    if "://" in remote or "/" in remote or Path(remote).is_dir():
        return remote
    from cmfq.warehouse.layout import Layout
    from cmfq.warehouse.remote_config import get_remote

    return get_remote(Layout(warehouse_path(warehouse_of(ctx, warehouse))).require(), remote).url
