"""The warehouse's views in Apache Spark, for warehouses that outgrow one machine.

    spark = cmfq.spark.session("local[2]")            # or your cluster's SparkSession
    cmfq.spark.register(spark, "s3://ml-metadata/team-a")
    spark.sql("SELECT pipeline, count(*) FROM executions GROUP BY 1").show()
    cmfq.spark.ancestors(spark, "<hash>").show()

Spark reads the partitions where they are (``s3://`` is read as ``s3a://``) and keeps one
row per key exactly as the DuckDB index does: the key and which copy wins come from
:mod:`cmfq.warehouse.schema`, and copies that tie on ``at`` are ordered by DuckDB's own
content digest, computed by DuckDB on the few tied rows. The user-facing views and the
one-hop lineage macros are generated from ``sql/views.sql`` and ``sql/lineage.sql`` with
sqlglot, so there is one definition of each; the index's derived tables, which DuckDB
maintains incrementally, are a short Spark file of their own (``sql/spark_index.sql``).
Lineage walks are a breadth-first frontier join: Spark's recursive CTEs allow only
``UNION ALL``, which never stops on a cycle of content hashes.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from cmfq import sql
from cmfq.errors import InvalidInputError, NotFoundError, WarehouseError
from cmfq.warehouse.schema import TABLES, TableSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from sqlglot import exp

#: Views of sql/views.sql registered in Spark. `params` is left out: its JSON paths differ
#: between engines (DuckDB quotes string values in `value`, Spark's get_json_object cannot).
VIEWS = ("executions", "artifacts", "events", "metrics", "annotations", "nodes", "lineage_graph",
         "lineage_edges", "pipelines", "stages", "final_metrics")
#: Table macros of sql/lineage.sql registered as Spark SQL table functions. The recursive ones
#: are :func:`ancestors` and :func:`descendants`; producers/consumers are left out: their
#: argument is used inside a scalar subquery, which Spark's SQL functions cannot resolve.
FUNCTIONS = ("parents", "children")
#: Above this many artifacts, a frontier is joined as a DataFrame instead of an IN list.
FRONTIER_IN_LIST = 5_000


def session(master: str = "local[2]", conf: dict[str, str] | None = None, app_name: str = "cmfq") -> SparkSession:
    """A SparkSession set up for cmfq's queries: UI off, few shuffle partitions (metadata is
    small per query), UTC, and Python workers on this interpreter (the tie-break needs duckdb)."""
    from pyspark.sql import SparkSession

    # Python workers run $PYSPARK_PYTHON (else `python3` from PATH, which may lack pyarrow and
    # duckdb); Spark reads it when the context starts, not from the session's settings.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.sql.session.timeZone", "UTC")
               # Spark's own catalog folder: never `./spark-warehouse` in the user's project.
               .config("spark.sql.warehouse.dir", os.path.join(tempfile.gettempdir(), "cmfq-spark-catalog")))
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    # Errors reach Python as exceptions, once: not also as JVM and JSON log records on stderr.
    spark.sparkContext.setLogLevel("FATAL")
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL + 1)
    return spark


def location(warehouse: str | os.PathLike[str]) -> str:
    """The URL Spark reads a warehouse at: a local folder as ``file://``, ``s3://`` as ``s3a://``
    (Hadoop's S3 connector), any other URL (``s3a://``, ``gs://``, ``abfss://``, ``hdfs://``) as is."""
    text = os.fspath(warehouse)
    if "://" in text and not text.startswith("file://"):
        return "s3a://" + text[len("s3://"):] if text.startswith("s3://") else text.rstrip("/")
    from cmfq.config import warehouse_path
    from cmfq.warehouse.layout import Layout

    layout = Layout(warehouse_path(text.removeprefix("file://"))).require()
    return layout.root.resolve().as_uri()


def register(spark: SparkSession, warehouse: str | os.PathLike[str], *, cache: bool = False) -> list[str]:
    """Register cmfq's views (:data:`VIEWS`) and one-hop lineage functions (:data:`FUNCTIONS`)
    as temporary views and functions of ``spark``, reading the warehouse folder or remote URL
    ``warehouse`` in place. Returns the names registered. Views are lazy: each query reads
    the partitions again, unless ``cache`` keeps the deduplicated tables in Spark's memory
    once the first query has read them (the way to ask many questions of one snapshot)."""
    root = location(warehouse)
    for spec in TABLES.values():
        target = "cmfq_facts_events" if spec.name == "events" else f"cmfq_idx_{spec.name}"
        deduplicate(spec, read_table(spark, root, spec)).createOrReplaceTempView(target)
    for stmt in sql.statements("spark_index"):
        spark.sql(stmt)
    if cache:
        for name in ("executions", "artifacts", "events", "metrics", "annotations", "nodes", "lineage_graph",
                     "final_metrics"):
            spark.catalog.cacheTable(f"cmfq_idx_{name}")
    return [*_register_views(spark), *_register_functions(spark)]


def read_table(spark: SparkSession, root: str, spec: TableSpec) -> DataFrame:
    """Every row of every partition of one table, in the schema of this cmfq: columns that
    older files lack read as NULL, as with DuckDB's ``union_by_name``."""
    from pyspark.errors import AnalysisException

    schema = spark_schema(spec.schema)
    try:
        # Listing the table folder (not a glob) skips hidden files: writers' `.tmp-` files.
        return (spark.read.schema(schema).option("recursiveFileLookup", "true")
                .option("pathGlobFilter", "*.parquet").parquet(f"{root}/{spec.name}"))
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" not in str(exc) and "does not exist" not in str(exc):
            raise WarehouseError(f"{root}/{spec.name}: Spark cannot read it ({str(exc).splitlines()[0]}).",
                                 hint="Check the URL and the s3a settings of the SparkSession.") from None
        return spark.createDataFrame([], schema)  # no partition of this table yet


def spark_schema(schema: pa.Schema) -> Any:
    """The Spark StructType of an Arrow schema of :mod:`cmfq.warehouse.schema`."""
    from pyspark.sql import types as T

    def convert(typ: pa.DataType) -> Any:
        if pa.types.is_string(typ):
            return T.StringType()
        if pa.types.is_int64(typ):
            return T.LongType()
        if pa.types.is_float64(typ):
            return T.DoubleType()
        if pa.types.is_boolean(typ):
            return T.BooleanType()
        if pa.types.is_timestamp(typ):
            return T.TimestampType()
        if pa.types.is_list(typ):
            return T.ArrayType(convert(typ.value_type))
        raise TypeError(f"no Spark type for {typ}")

    return T.StructType([T.StructField(f.name, convert(f.type), f.nullable) for f in schema])


def deduplicate(spec: TableSpec, rows: DataFrame) -> DataFrame:
    """One row per key, as the DuckDB index keeps it (sql/merge_dedupe.sql): the earliest or
    latest ``at`` wins, identical copies are one, and copies that still tie are ordered by
    ``md5(ROW(...)::VARCHAR)``, which only DuckDB can compute byte for byte, so DuckDB does,
    on those rows alone, in the Python workers."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first = spec.keep == "first"
    by_key = Window.partitionBy(*spec.key)
    edge = F.min("at") if first else F.max("at")
    best = rows.withColumn("_edge", edge.over(by_key)).where(F.col("at") == F.col("_edge")).drop("_edge")
    best = best.distinct().withColumn("_copies", F.count(F.lit(1)).over(by_key))
    single = best.where("_copies = 1").drop("_copies")
    tied = best.where("_copies > 1").drop("_copies")
    schema = rows.schema.add("_digest", "string")
    digested = tied.mapInArrow(_digests(spec.columns), schema)
    order = F.col("_digest").asc() if first else F.col("_digest").desc()
    winners = (digested.withColumn("_rank", F.row_number().over(by_key.orderBy(order)))
               .where("_rank = 1").drop("_rank", "_digest"))
    return single.unionByName(winners)


def _digests(columns: Sequence[str]) -> Any:
    quoted = ", ".join(f'"{c}"' for c in columns)

    def add_digest(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import duckdb

        # Default settings, like the connection that builds the local index.
        con = duckdb.connect()
        for batch in batches:
            con.register("tied", pa.Table.from_batches([batch]))
            yield from con.execute(f"SELECT *, md5(ROW({quoted})::VARCHAR) AS _digest FROM tied"
                                   ).to_arrow_table().to_batches()
        con.close()

    return add_digest


def _register_views(spark: SparkSession) -> list[str]:
    from sqlglot import exp

    done = []
    for stmt in sql.statements("views"):
        tree = _parse(stmt)
        if not isinstance(tree, exp.Create) or tree.args.get("kind") != "VIEW":
            continue
        name = tree.this.name
        if name not in VIEWS:
            continue
        spark.sql(_to_spark(tree.expression)).createOrReplaceTempView(name)
        done.append(name)
    return done


def _register_functions(spark: SparkSession) -> list[str]:
    from sqlglot import exp

    done = []
    for stmt in sql.statements("lineage"):
        tree = _parse(stmt)
        if not isinstance(tree, exp.Create) or tree.args.get("kind") != "MACRO":
            continue
        name = tree.this.this.name
        if name not in FUNCTIONS:
            continue
        params = [p.name for p in tree.this.expressions]
        body = tree.expression
        # The result's column types, from the body with NULL for every argument.
        probe = _to_spark(body.copy().transform(_null_for(params)))
        columns = ", ".join(f"{f.name} {f.dataType.simpleString().upper()}" for f in spark.sql(probe).schema)
        args = ", ".join(f"{p} STRING" for p in params)
        spark.sql(f"CREATE OR REPLACE TEMPORARY FUNCTION {name}({args}) RETURNS TABLE ({columns}) "
                  f"RETURN {_to_spark(body)}")
        done.append(name)
    return done


def _null_for(params: list[str]) -> Any:
    from sqlglot import exp

    def replace(node: exp.Expression) -> Any:
        if isinstance(node, exp.Column) and not node.table and node.name in params:
            return exp.cast(exp.null(), "STRING")
        return node

    return replace


def _parse(stmt: str) -> Any:
    import sqlglot
    from sqlglot.errors import ParseError

    try:
        return sqlglot.parse_one(stmt, read="duckdb")
    except ParseError:
        return None  # e.g. scalar macros: nothing Spark registers


def _to_spark(select: exp.Expression) -> str:
    """Spark SQL for a DuckDB query of sql/: the index catalog `idx.t` becomes the temp view
    `cmfq_idx_t`; `x::JSON` stays text (Spark has no JSON type); `list(DISTINCT x ORDER BY x)`
    becomes a sorted set; DuckDB's `date_diff` counts unit boundaries crossed, Spark's whole
    units elapsed, so milliseconds are counted as boundaries explicitly."""
    from sqlglot import exp

    def rewrite(node: exp.Expression) -> Any:
        if isinstance(node, exp.DateDiff) and node.args.get("date_part_boundary") \
                and node.text("unit").upper() == "MILLISECOND":
            def ms(ts: exp.Expression) -> Any:
                return exp.func("floor", exp.Div(this=exp.func("unix_micros", ts.copy()),
                                                  expression=exp.Literal.number(1000)))
            return exp.paren(exp.Sub(this=ms(node.this), expression=ms(node.expression)))
        if isinstance(node, exp.Table) and node.db == "idx":
            return exp.table_(f"cmfq_idx_{node.name}", alias=node.alias or None)
        if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.JSON):
            return node.this
        if isinstance(node, exp.ArrayAgg) and isinstance(node.this, exp.Order) \
                and isinstance(node.this.this, exp.Distinct):
            return exp.func("array_sort", exp.func("collect_set", node.this.this.expressions[0]))
        return node

    return select.transform(rewrite).sql(dialect="spark")


def ancestors(spark: SparkSession, artifact_hash: str, max_depth: int | None = None) -> DataFrame:
    """Every artifact upstream of ``artifact_hash`` with its distance in hops, as the DuckDB
    macro ``ancestors(hash)`` answers it (columns ``hash``, ``depth``). :func:`register` first."""
    return _walk(spark, artifact_hash, up=True, max_depth=max_depth)


def descendants(spark: SparkSession, artifact_hash: str, max_depth: int | None = None) -> DataFrame:
    """Every artifact downstream of ``artifact_hash`` with its distance in hops."""
    return _walk(spark, artifact_hash, up=False, max_depth=max_depth)


def _walk(spark: SparkSession, artifact_hash: str, *, up: bool, max_depth: int | None) -> DataFrame:
    """Breadth-first: each hop joins the frontier with the graph and keeps the artifacts not
    reached before, so every artifact gets its smallest depth and cycles end the walk. The
    frontier and the reached set are node ids on the driver; the graph stays in Spark."""
    from pyspark.sql import functions as F

    _require_registered(spark)
    start = [r[0] for r in spark.table("cmfq_idx_nodes").where(F.col("hash") == artifact_hash)
             .select("id").collect()]
    if not start:
        raise NotFoundError("artifact", artifact_hash, hint="Give a full artifact hash; "
                            "`SELECT hash, name FROM artifacts` lists them.")
    src, dst = ("child", "parent") if up else ("parent", "child")
    graph = spark.table("cmfq_idx_lineage_graph").select(F.col(src).alias("src"), F.col(dst).alias("dst"))
    depth_of: dict[int, int] = {start[0]: 0}
    frontier, depth = start, 0
    while frontier and (max_depth is None or depth < max_depth):
        depth += 1
        if len(frontier) <= FRONTIER_IN_LIST:
            hop = graph.where(F.col("src").isin(frontier))
        else:
            hop = graph.join(spark.createDataFrame([(i,) for i in frontier], "src INT"), "src")
        reached = [r[0] for r in hop.select("dst").distinct().collect()]
        frontier = [n for n in reached if n not in depth_of]
        depth_of.update((n, depth) for n in frontier)
    found = spark.createDataFrame([(n, d) for n, d in depth_of.items() if d > 0], "id INT, depth INT")
    return found.join(spark.table("cmfq_idx_nodes"), "id").select("hash", "depth")


def _require_registered(spark: SparkSession) -> None:
    if not spark.catalog.tableExists("cmfq_idx_nodes"):
        raise InvalidInputError("No cmfq warehouse is registered in this SparkSession.",
                                hint="Call cmfq.spark.register(spark, warehouse_or_url) first.")

