"""The cross-pipeline questions: compare, diff, influence, best, audit, features, drift, search.

Mixed into :class:`cmfq.Warehouse`; every method is parameterized SQL over the views of
sql/views.sql and sql/analytics.sql, and returns polars frames (or a dict of them). A metric
"score" of an execution is its own final value, or else the best value logged by an execution
that consumed one of its outputs: a train run is scored by its evaluation (see run_scores).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from cmfq.errors import InvalidInputError, NotFoundError
from cmfq.warehouse.filters import compile_where

if TYPE_CHECKING:
    from cmfq.warehouse.query import Warehouse

#: The LIMIT of a query asked for every row (DuckDB's LIMIT takes a number, not NULL).
NO_LIMIT = 2**62

#: For each execution id in $ids: the raw datasets upstream of its inputs (artifacts nothing
#: produced, kind dataset). Set semantics over (execution, node) pairs end on cycles.
ROOTS_SQL = """
WITH RECURSIVE up(execution_id, node) AS (
    SELECT e.execution_id, e.node FROM idx.events AS e
    WHERE e.direction = 'in' AND e.execution_id IN (SELECT unnest($ids::VARCHAR[]))
    UNION
    SELECT u.execution_id, g.parent FROM up AS u JOIN idx.lineage_graph AS g ON g.child = u.node
)
SELECT DISTINCT u.execution_id, n.hash AS dataset, n.name AS dataset_name
FROM up AS u JOIN idx.nodes AS n ON n.id = u.node
WHERE coalesce(n.kind, 'dataset') = 'dataset' AND NOT n.produced
"""

#: The scores of the runs in relation {runs} (a column ``id``) for each metric in the list
#: {names}: a run's own final value, else the best value of a direct consumer of one of its
#: outputs (a train run scored by its evaluation), as the index keeps them (index_scores.sql).
SCORE_CTES = """
scores AS (SELECT s.execution_id, s.name, s.value, s.min_value, s.max_value, s.scored_by FROM idx.scores AS s
           WHERE s.execution_id IN (SELECT id FROM {runs}) AND list_contains({names}, s.name))"""

#: Scores of the executions in $ids for each metric in $names (see SCORE_CTES).
SCORES_SQL = ("WITH ids AS (SELECT unnest($ids::VARCHAR[]) AS id), "
              + SCORE_CTES.format(runs="ids", names="$names") + "\nSELECT * FROM scores")

#: compare(): the runs of a stage/pipeline (?, ?) where {early} holds, scored on the metrics in
#: the list (?), kept where {late} holds. NOT MATERIALIZED: each CTE is read where it is used,
#: with only the columns used there (a CTE used twice is otherwise held whole in memory).
COMPARE_RUNS_SQL = """
WITH sel AS NOT MATERIALIZED (
    SELECT * FROM executions
    WHERE (?::VARCHAR IS NULL OR stage = ?) AND (?::VARCHAR IS NULL OR pipeline = ?) AND ({early})),
""" + SCORE_CTES.replace("scores AS (", "scores AS NOT MATERIALIZED (").format(runs="sel", names="?::VARCHAR[]") + """,
kept AS NOT MATERIALIZED (SELECT * FROM sel WHERE {late})
"""
#: ... and those runs (COMPARE_RUNS_SQL) with the chosen metric (the last ?). Columns: the run,
#: its params as text, and value/min/max/scored_by of the metric.
COMPARE_SQL = COMPARE_RUNS_SQL + """
SELECT k.id, k.pipeline, k.stage, k.status, k.started_at, k.params::VARCHAR AS params, k.git_commit,
       s.value, s.min_value, s.max_value, s.scored_by
FROM kept AS k LEFT JOIN scores AS s ON s.execution_id = k.id AND s.name = ?
"""
_RUN_COLUMNS = ("id, pipeline, stage, status, params::VARCHAR AS params, git_commit, git_dirty, started_at")
SCORE_COLUMNS = ("value", "min_value", "max_value", "scored_by")
_SCORE_OF = "(SELECT s.value FROM scores AS s WHERE s.execution_id = {id} AND s.name = ?)"

#: The params keys of the runs in ``kept`` (COMPARE_RUNS_SQL, given as {runs}) whose value is
#: not the same in all of them (absent counts as a value of its own). One streaming aggregate:
#: more than one distinct value is min <> max, and a key some runs lack is found fewer times
#: than there are runs.
VARYING_KEYS_SQL = """
{runs},
pairs AS (SELECT unnest(json_keys(params)) AS k, params FROM kept),  -- in SELECT: a lateral unnest would not stream
vals AS (SELECT k, json_extract(params, '/' || replace(replace(k, '~', '~0'), '/', '~1'))::VARCHAR AS v FROM pairs)
SELECT k FROM vals GROUP BY k
HAVING min(v) <> max(v) OR count(v) < (SELECT count(*) FROM kept) ORDER BY k
"""


#: One page of models() ($3 rows from row $4), the same rows as the `models` view gives: each
#: model's producer (the earliest run, then the smallest id) found by one aggregate of narrow
#: rows, sorted and cut, and only that page joined to names and params (the view's window over
#: every model and its params is what a page must not pay for).
MODEL_RUNS_CTES = """
WITH prod AS (
    SELECT a.hash, min({no_start: x.started_at IS NULL, started_at: coalesce(x.started_at, '-infinity'::TIMESTAMPTZ),
                        no_run: x.id IS NULL, id: coalesce(x.id, ''), project: x.project}) AS p
    FROM artifacts AS a
    LEFT JOIN events AS e ON e.artifact_hash = a.hash AND e.direction = 'out'
    LEFT JOIN executions AS x ON x.id = e.execution_id
    WHERE a.kind = 'model'
    GROUP BY a.hash
),
t AS (SELECT hash, string_agg(DISTINCT reason, '; ') AS taint FROM tainted GROUP BY hash)"""
MODELS_PAGE_SQL = MODEL_RUNS_CTES + """,
page AS (
    SELECT prod.hash, CASE WHEN NOT p.no_start THEN p.started_at END AS trained_at,
           CASE WHEN NOT p.no_run THEN p.id END AS run_id, p.project, t.taint
    FROM prod LEFT JOIN t ON t.hash = prod.hash
    WHERE ($1::BOOLEAN IS NULL OR (t.hash IS NOT NULL) = $1) AND ($2::VARCHAR IS NULL OR p.project = $2)
    ORDER BY trained_at DESC NULLS LAST, prod.hash LIMIT $3 OFFSET $4
)
SELECT page.hash, a.name, x.pipeline, page.project, page.run_id, page.trained_at, x.params::VARCHAR AS params,
       page.taint
FROM page
LEFT JOIN (SELECT hash, name FROM artifacts WHERE kind = 'model') AS a ON a.hash = page.hash
LEFT JOIN executions AS x ON x.id = page.run_id
ORDER BY page.trained_at DESC NULLS LAST, page.hash
"""
#: rank_models(): models (tainted: $1 as in models(), of project $2) whose run has a score for
#: metric $3, best first ({dir}), rows $5 to $5 + $4. Only the page is labelled and given
#: its params: ranking reads one row per model and one score each.
RANK_PAGE_SQL = MODEL_RUNS_CTES + """,
page AS (
    SELECT prod.hash, p.id AS run_id, p.started_at AS trained_at, p.project, t.taint, s.value
    FROM prod LEFT JOIN t ON t.hash = prod.hash
    JOIN idx.scores AS s ON s.execution_id = p.id AND s.name = $3
    WHERE NOT p.no_run AND ($1::BOOLEAN IS NULL OR (t.hash IS NOT NULL) = $1) AND ($2::VARCHAR IS NULL OR p.project = $2)
    ORDER BY s.value {dir} NULLS LAST, prod.hash LIMIT $4 OFFSET $5
)
SELECT page.hash, a.name, x.pipeline, page.project, page.run_id, x.started_at AS trained_at,
       x.params::VARCHAR AS params, page.taint, page.value
FROM page
LEFT JOIN (SELECT hash, name FROM artifacts WHERE kind = 'model') AS a ON a.hash = page.hash
LEFT JOIN executions AS x ON x.id = page.run_id
ORDER BY page.value {dir} NULLS LAST, page.hash
"""
#: Models ranked per query while rank_models(data_after=...) fills a page (it filters after ranking).
RANK_BATCH = 2_000


@dataclass(frozen=True)
class Diff:
    """Two executions side by side, one frame per aspect."""

    a: dict[str, Any]
    b: dict[str, Any]
    params: pl.DataFrame
    metrics: pl.DataFrame
    artifacts: pl.DataFrame
    code: pl.DataFrame
    environment: pl.DataFrame


class Analytics:
    """The analytical questions of cmfq.Warehouse (mixed in)."""

    # -- diff and compare -----------------------------------------------------------------------

    def diff(self: Warehouse, a: str, b: str, *, all: bool = False) -> Diff:
        """Parameters (only the changed ones unless ``all``), metrics, inputs/outputs, code and
        environment of two executions."""
        ia, ib = self.resolve_execution(a), self.resolve_execution(b)
        params = self.sql("SELECT * FROM diff_params(?, ?) WHERE ? OR changed ORDER BY key", [ia, ib, all])
        metrics = self.sql("SELECT * FROM diff_metrics(?, ?) ORDER BY name", [ia, ib])
        artifacts = self.sql("SELECT * FROM diff_artifacts(?, ?) WHERE ? OR change <> 'same' "
                             "ORDER BY direction, name", [ia, ib, all])
        fields = ["git_repo", "git_commit", "git_branch", "git_dirty", "cmd", "host", "site", "user", "env_hash"]
        rows = {x["id"]: x for x in self.sql(f"SELECT id, {', '.join(f'{f}::VARCHAR AS {f}' for f in fields)} "
                                             "FROM executions WHERE id IN (?, ?)", [ia, ib]).to_dicts()}
        code = pl.DataFrame([{"field": f, "a": rows[ia][f], "b": rows[ib][f], "changed": rows[ia][f] != rows[ib][f]}
                             for f in fields if all or rows[ia][f] != rows[ib][f]],
                            schema={"field": pl.String, "a": pl.String, "b": pl.String, "changed": pl.Boolean})
        environment = self.sql(
            """SELECT coalesce(pa.package, pb.package) AS package, pa.version AS a, pb.version AS b,
                      CASE WHEN pa.package IS NULL THEN 'added' WHEN pb.package IS NULL THEN 'removed'
                           ELSE 'changed' END AS change
               FROM env_packages(?) AS pa FULL JOIN env_packages(?) AS pb ON pa.package = pb.package
               WHERE pa.version IS DISTINCT FROM pb.version ORDER BY package""",
            [rows[ia]["env_hash"] or "", rows[ib]["env_hash"] or ""])
        return Diff(self.execution(ia), self.execution(ib), params, metrics, artifacts, code, environment)

    def compare(self: Warehouse, stage: str | None = None, metric: str | None = None, *,
                pipeline: str | None = None, where: str | None = None, by: str | None = None,
                step: int | None = None, ascending: bool = False, limit: int | None = None,
                offset: int = 0) -> pl.DataFrame:
        """Executions as one table: the params that vary among them, the ``metric`` (final,
        min, max, at ``step``) and who scored it, best first. ``where`` filters with AND, OR,
        NOT over params.<key>, metrics.<name> and fields; ``by="dataset"`` adds the raw
        dataset each run descends from (one row per run and dataset). ``limit`` and
        ``offset`` cut one page of that table."""
        if by not in (None, "dataset"):
            raise InvalidInputError(f"--by takes 'dataset', not {by!r}.")
        limit = limit or None  # as before: limit=0 means no limit
        names = sorted({*([metric] if metric else []), *_metric_names(where)}) or [""]
        compiled = compile_where(where, metric_sql=_SCORE_OF) if where else None
        # A filter on params and fields only narrows the runs before they are scored; one that
        # mentions metrics needs the scores, so it applies after.
        early = compiled if compiled and not compiled.metrics else None
        late = compiled if compiled and compiled.metrics else None
        filters = {"early": early.sql if early else "TRUE", "late": late.sql if late else "TRUE"}
        args: list[Any] = [stage, stage, pipeline, pipeline, *(early.args if early else ()), names,
                           *(late.args if late else ())]
        # Two streaming queries, no run held in memory: the varying params keys (an aggregate
        # per key), then the page, sorted and cut in DuckDB (a top-N, not a sort of every run).
        keys = [r[0] for r in self._rows(VARYING_KEYS_SQL.format(runs=COMPARE_RUNS_SQL.format(**filters)), args)]
        order = ("value DESC NULLS LAST" if not ascending else "value ASC NULLS LAST") if metric else "TRUE"
        args.append(metric or "")
        page = f"SELECT * FROM ({COMPARE_SQL.format(**filters)}) ORDER BY {order}, started_at DESC, id"
        if by is None and (limit is not None or offset):
            page += " LIMIT ? OFFSET ?"
            args += [NO_LIMIT if limit is None else limit, offset]
        frame = _spread_params(self.sql(page, args), keys)
        spread = [f"params.{k}" for k in keys]
        frame = frame.select([*(c for c in frame.columns if c not in spread and c not in SCORE_COLUMNS), *spread,
                              *SCORE_COLUMNS])
        ids = frame["id"].to_list()
        if metric:
            frame = frame.rename({"value": metric, "min_value": f"{metric}_min", "max_value": f"{metric}_max"})
            if step is not None:
                at = self.sql("SELECT execution_id AS id, value FROM metrics WHERE name = ? AND step = ? "
                              "AND execution_id IN (SELECT unnest(?::VARCHAR[]))", [metric, step, ids])
                frame = frame.join(at.rename({"value": f"{metric}_at_{step}"}), on="id", how="left",
                                   maintain_order="left")
        else:
            frame = frame.drop("value", "min_value", "max_value", "scored_by")
        if by == "dataset":
            roots = self.sql(ROOTS_SQL, {"ids": ids}).rename({"execution_id": "id"})
            frame = roots.join(frame, on="id", how="right").select(["dataset_name", "dataset", *frame.columns])
            frame = frame.sort(["dataset_name", *([metric] if metric else [])],
                               descending=[False, *([not ascending] if metric else [])], nulls_last=True)
            frame = frame.slice(offset, limit)
        return frame

    # -- influence, taint, models ---------------------------------------------------------------------

    def influence(self: Warehouse, ref: str) -> pl.DataFrame:
        """Everything downstream of an artifact (a corrupted dataset, say): artifacts,
        executions, models and deployments, with their distance and pipeline."""
        digest = self.resolve_artifact(ref)
        start, depth = self._cone("down", digest)
        labelled = self._labelled(depth)  # (depth, hash, kind, name, size, node) from idx.nodes
        # The reached nodes go to DuckDB as one Arrow table (thousands of list parameters cost
        # more than the query); consumers are found on integer node ids, not 32-character
        # hashes, and the artifacts come labelled from the walk: no join to the artifacts.
        import pyarrow as pa

        reached = pa.table({
            "node": pa.array([start, *(r[5] for r in labelled)], pa.int32()),
            "hash": pa.array([digest, *(r[1] for r in labelled)], pa.string()),
            "kind": pa.array([None, *(r[2] for r in labelled)], pa.string()),
            "name": pa.array([None, *(r[3] for r in labelled)], pa.string()),
            "depth": pa.array([0, *(r[0] for r in labelled)], pa.int32())})
        table = f"_cmfq_reached_{uuid.uuid4().hex}"
        self._con.register(table, reached)
        try:
            return self.sql(
                f"""WITH consumed AS (SELECT e.execution_id, min(r.depth) + 1 AS depth
                                      FROM {table} AS r JOIN idx.events AS e ON e.node = r.node AND e.direction = 'in'
                                      GROUP BY e.execution_id)
                    SELECT 'artifact' AS entity, r.hash AS id, r.kind, r.name, NULL::VARCHAR AS pipeline, r.depth
                    FROM {table} AS r WHERE r.depth > 0
                    UNION ALL
                    SELECT 'execution', x.id, x.stage, x.status, x.pipeline, c.depth
                    FROM consumed AS c JOIN idx.executions AS x ON x.id = c.execution_id
                    UNION ALL
                    SELECT 'deployment', d.id, d.environment, d.status, d.project, r.depth
                    FROM {table} AS r JOIN deployments AS d ON d.model_hash = r.hash
                    ORDER BY depth, entity, name, id""")
        finally:
            self._con.unregister(table)

    def models(self: Warehouse, *, tainted: bool | None = None, project: str | None = None,
               limit: int | None = None, offset: int = 0) -> pl.DataFrame:
        """Model artifacts with the run that made them; ``tainted=True`` lists only those
        downstream of a tainted artifact (with the reason), ``False`` only the others.
        ``limit`` and ``offset`` cut one page, without reading every model's params."""
        if limit is not None or offset:
            return self.sql(MODELS_PAGE_SQL, [tainted, project, NO_LIMIT if limit is None else limit, offset])
        return self.sql(
            """WITH t AS (SELECT hash, string_agg(DISTINCT reason, '; ') AS taint FROM tainted GROUP BY hash)
               SELECT m.hash, m.name, m.pipeline, m.project, m.run_id, m.trained_at, m.params::VARCHAR AS params,
                      t.taint
               FROM models AS m LEFT JOIN t ON t.hash = m.hash
               WHERE ($1::BOOLEAN IS NULL OR (t.hash IS NOT NULL) = $1)
                 AND ($2::VARCHAR IS NULL OR m.project = $2)
               ORDER BY m.trained_at DESC NULLS LAST, m.hash""", [tainted, project])

    # -- best runs -------------------------------------------------------------------------------------

    def best(self: Warehouse, metric: str, dataset: str | None = None, *, per_dataset: bool = False,
             stage: str | None = None, ascending: bool = False, limit: int | None = 10) -> pl.DataFrame:
        """Which runs used a dataset (directly or through derived data) and how they scored,
        best first, with params and code version; ``per_dataset`` gives the best run of every
        raw dataset across all pipelines."""
        if per_dataset == (dataset is not None):
            raise InvalidInputError("Give a dataset, or per_dataset=True (--per-dataset), not both or neither.")
        if per_dataset:
            from cmfq.warehouse.query import in_list

            best = self.sql("SELECT * FROM best_per_dataset(?, in_stage := ?, lowest_first := ?)",
                            [metric, stage, ascending]).rename({"execution_id": "id", "score": metric})
            # A few hundred ids: probes of the executions_id index, not a scan of every run.
            runs_in, run_args = in_list("id", best["id"].to_list())
            runs = self.sql(f"SELECT {_RUN_COLUMNS} FROM executions WHERE {runs_in}", run_args)
            return best.join(runs, on="id").select(
                "dataset", "dataset_name", *runs.columns, metric, "scored_by").sort("dataset_name", "dataset")
        ids = self.influence(dataset).filter(pl.col("entity") == "execution")["id"].to_list()
        scores = self.sql(SCORES_SQL, {"ids": sorted(set(ids)), "names": [metric]}).select(
            pl.col("execution_id").alias("id"), pl.col("value").alias(metric), "scored_by")
        runs = self.sql(f"SELECT {_RUN_COLUMNS} FROM executions WHERE id IN (SELECT unnest(?::VARCHAR[])) "
                        "AND (?::VARCHAR IS NULL OR stage = ?)",
                        [scores["id"].to_list(), stage, stage]).join(scores, on="id")
        return runs.sort([metric, "started_at"], descending=[not ascending, True]).head(limit or runs.height)

    # -- audit -------------------------------------------------------------------------------------------

    def audit(self: Warehouse, model: str) -> dict[str, Any]:
        """Everything about a model: its data (every ancestor, by hash), the code and
        environment of every run upstream, params, fitted params, dev metrics, deployments and
        serving performance, and who ran what where. ``to_markdown(audit)`` is a model card."""
        # A score of index probes and scans of a few rows: one thread runs them faster.
        with self._threads(1):
            return self._audit(model)

    def _audit(self: Warehouse, model: str) -> dict[str, Any]:
        digest = self.resolve_artifact(model)
        info = self.artifact(digest)
        start, depth = self._cone("up", digest)
        ancestors = self._label(depth)
        # Producers of the model and of its ancestors, found on integer node ids.
        nodes = [start, *depth]
        from cmfq.warehouse.query import in_list

        runs_in, run_args = in_list("id", self._event_executions(nodes, "out"))
        runs = self.sql(
            f"""SELECT id, pipeline, stage, status, started_at, params::VARCHAR AS params, git_repo, git_commit,
                       git_branch, git_dirty, env_hash, host, site, "user"
                FROM executions WHERE {runs_in}
                ORDER BY started_at""", run_args)
        eval_ids = sorted(c["id"] for c in info["consumers"])  # artifact() found them already
        x_in, x_args = in_list("id", eval_ids)
        f_in, f_args = in_list("execution_id", eval_ids)
        # Both sides narrowed to the consumers first, each in a CTE of its own: joined, DuckDB
        # scans all of final_metrics (60 ms on 1M runs) instead of probing its index.
        evaluations = self.sql(
            f"""WITH f AS MATERIALIZED (SELECT execution_id, name, value FROM idx.final_metrics WHERE {f_in}),
                     x AS MATERIALIZED (SELECT id, stage FROM idx.executions WHERE {x_in})
                SELECT f.execution_id, x.stage, f.name, f.value FROM f JOIN x ON x.id = f.execution_id
                ORDER BY f.execution_id, f.name""", [*f_args, *x_args])
        own_in, own_args = in_list("execution_id", [p["id"] for p in info["producers"]])
        own = self.sql("SELECT execution_id, name, value, min_value, max_value, last_step FROM final_metrics "
                       f"WHERE {own_in} ORDER BY name", own_args)
        return {
            "model": {k: info.get(k) for k in ("hash", "kind", "name", "size", "uri", "first_seen_at", "properties")},
            "fitted_params": {r["key"]: json.loads(r["value"]) for r in self.sql(
                "SELECT key, value::VARCHAR AS value FROM model_params WHERE model_hash = ?", [digest]).to_dicts()},
            # Tainted by every taint on the model or upstream of it: the ancestors are known
            # already, so no walk down from every taint (what the `tainted` view does).
            "tainted_by": self.sql("SELECT DISTINCT hash AS source, reason FROM taints WHERE hash IN "
                                   "(SELECT unnest(?::VARCHAR[])) ORDER BY ALL",
                                   [[digest, *ancestors["hash"].to_list()]]).to_dicts(),
            "trained_by": info["producers"],
            "data": ancestors.to_dicts(),
            "runs": runs.to_dicts(),
            "code": runs.select("git_repo", "git_commit", "git_branch", "git_dirty").unique().to_dicts(),
            "environments": self.sql(
                "SELECT hash, name, json_extract_string(properties, '$.python') AS python, "
                "json_array_length(properties, '$.packages') AS packages FROM artifacts "
                "WHERE hash IN (SELECT unnest(?::VARCHAR[]))", [[e for e in runs["env_hash"].to_list() if e]]).to_dicts(),
            "metrics": own.to_dicts(),
            "evaluations": evaluations.to_dicts(),
            "deployments": self.sql("SELECT * EXCLUDE (params, properties), params::VARCHAR AS params FROM deployments "
                                    "WHERE model_hash = ? ORDER BY created_at", [digest]).to_dicts(),
            "serving": self.sql("SELECT deployment_id, name, count(*) AS periods, avg(value) AS mean, min(value) AS min, "
                                "max(value) AS max, max(period_start) AS last_period FROM serving_metrics "
                                "WHERE model_hash = ? GROUP BY ALL ORDER BY ALL", [digest]).to_dicts(),
        }

    # -- features, techniques, datasets ------------------------------------------------------------------

    def feature_effect(self: Warehouse, feature: str, *, metric: str, stage: str = "train") -> pl.DataFrame:
        """Did adding ``feature`` help? Runs of ``stage`` whose input featureset lists it versus
        those whose featureset does not, per raw dataset: runs, mean and best score, and the
        difference of the means."""
        runs = self.sql(
            """SELECT DISTINCT e.execution_id AS id,
                      list_contains(json_extract_string(a.properties, '$.features[*]'), ?) AS with_feature
               FROM events AS e JOIN executions AS x ON x.id = e.execution_id AND x.stage = ?
               JOIN artifacts AS a ON a.hash = e.artifact_hash AND a.kind = 'featureset'
               WHERE e.direction = 'in'""", [feature, stage])
        if runs.is_empty():
            raise NotFoundError("run of stage with a featureset input", stage,
                                hint="Log featuresets with kind='featureset' and properties={'features': [...]}.")
        scores = self.sql(SCORES_SQL, {"ids": runs["id"].to_list(), "names": [metric]}).select(
            pl.col("execution_id").alias("id"), pl.col("value").alias("score"))
        roots = self.sql(ROOTS_SQL, {"ids": runs["id"].to_list()}).rename({"execution_id": "id"})
        table = roots.join(runs, on="id").join(scores, on="id")
        per = table.group_by(["dataset_name", "with_feature"]).agg(
            pl.len().alias("runs"), pl.col("score").mean().alias("mean"), pl.col("score").max().alias("best"))
        wide = per.pivot(on="with_feature", index="dataset_name", values=["runs", "mean", "best"])
        for col in ("runs_true", "runs_false", "mean_true", "mean_false", "best_true", "best_false"):
            if col not in wide.columns:
                wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(col))
        return wide.select(
            pl.col("dataset_name").alias("dataset"), pl.col("runs_true").alias("runs_with"),
            pl.col("runs_false").alias("runs_without"), pl.col("mean_true").alias("mean_with"),
            pl.col("mean_false").alias("mean_without"),
            (pl.col("mean_true") - pl.col("mean_false")).alias("delta"),
            pl.col("best_true").alias("best_with"), pl.col("best_false").alias("best_without"),
        ).sort("dataset")

    def techniques(self: Warehouse, project: str | None = None, *, limit: int | None = None,
                   offset: int = 0) -> pl.DataFrame:
        """Which model types and which feature transformations each project and pipeline used
        (``limit`` rows from row ``offset``)."""
        return self.sql(
            """SELECT x.project, x.pipeline, CASE a.kind WHEN 'model' THEN 'model type' ELSE 'transformation' END AS what,
                      coalesce(json_extract_string(a.properties, '$.model_type'),
                               json_extract_string(a.properties, '$.transformation')) AS technique,
                      count(DISTINCT a.hash) AS artifacts, count(DISTINCT x.id) AS runs
               FROM artifacts AS a JOIN events AS e ON e.artifact_hash = a.hash AND e.direction = 'out'
               JOIN executions AS x ON x.id = e.execution_id
               WHERE a.kind IN ('model', 'featureset') AND technique IS NOT NULL
                 AND ($1::VARCHAR IS NULL OR x.project = $1)
               GROUP BY ALL ORDER BY x.project, x.pipeline, what, runs DESC, technique
               LIMIT $2 OFFSET $3""", [project, NO_LIMIT if limit is None else limit, offset])

    def datasets(self: Warehouse, project: str | None = None, since: dt.datetime | None = None, *,
                 limit: int | None = None, offset: int = 0) -> pl.DataFrame:
        """Datasets that runs used (read) in a time window, optionally of one project
        (``limit`` rows from row ``offset``)."""
        return self.sql(
            """SELECT a.hash, a.name, count(DISTINCT x.id) AS runs, count(DISTINCT x.pipeline) AS pipelines,
                      min(x.started_at) AS first_used, max(x.started_at) AS last_used
               FROM events AS e JOIN executions AS x ON x.id = e.execution_id
               JOIN artifacts AS a ON a.hash = e.artifact_hash AND a.kind = 'dataset'
               WHERE e.direction = 'in' AND ($1::VARCHAR IS NULL OR x.project = $1)
                 AND ($2::TIMESTAMPTZ IS NULL OR x.started_at >= $2)
               GROUP BY ALL ORDER BY last_used DESC, a.name, a.hash
               LIMIT $3 OFFSET $4""", [project, _utc(since), NO_LIMIT if limit is None else limit, offset])

    # -- drift, serving, search ---------------------------------------------------------------------------

    def dataset_stats(self: Warehouse, ref: str) -> pl.DataFrame:
        digest = self.resolve_artifact(ref)
        return self.sql("SELECT * EXCLUDE (artifact_hash, \"at\", top), top::VARCHAR AS top FROM dataset_stats "
                        "WHERE artifact_hash = ? ORDER BY \"column\"", [digest])

    def drift(self: Warehouse, a: str, b: str, *, psi_threshold: float = 0.2,
              mean_threshold: float = 0.5) -> pl.DataFrame:
        """Covariate shift from dataset ``a`` to ``b`` per numeric column, from their stored
        statistics: difference of means in pooled std units and the population stability
        index; ``flagged`` when either is over its threshold."""
        ha, hb = self.resolve_artifact(a), self.resolve_artifact(b)
        for h, ref in ((ha, a), (hb, b)):
            if not self._rows("SELECT 1 FROM dataset_stats WHERE artifact_hash = ? LIMIT 1", [h]):
                raise NotFoundError("statistics for dataset", ref,
                                    hint="Record them with tracker.log_dataset_stats(path) or `cmfq stats PATH --record`.")
        return self.sql("SELECT *, coalesce(psi > ?, false) OR coalesce(abs(std_mean_diff) > ?, false) AS flagged "
                        "FROM drift(?, ?) ORDER BY psi DESC NULLS LAST, \"column\"",
                        [psi_threshold, mean_threshold, ha, hb])

    def rank_models(self: Warehouse, metric: str, *, project: str | None = None, exclude_tainted: bool = True,
                    data_after: dt.datetime | None = None, ascending: bool = False,
                    limit: int | None = None, offset: int = 0) -> pl.DataFrame:
        """Candidate models for deployment, best dev score first: not tainted (by default),
        optionally only those whose newest raw dataset was first seen after ``data_after``;
        ``limit`` of them from row ``offset``. Ranking happens in DuckDB; only the rows kept
        are labelled and walked up to their raw data."""
        query = RANK_PAGE_SQL.replace("{dir}", "ASC" if ascending else "DESC")
        tainted = False if exclude_tainted else None
        after = _utc(data_after)
        if after is None:
            page = self.sql(query, [tainted, project, metric, NO_LIMIT if limit is None else limit, offset])
            return self._with_newest_data(page, metric)
        # The date filter needs each model's raw data: rank in batches until the page is full.
        wanted = None if limit is None else offset + limit
        kept: list[pl.DataFrame] = []
        start, found = 0, 0
        while wanted is None or found < wanted:
            batch = self._with_newest_data(self.sql(query, [tainted, project, metric, RANK_BATCH, start]), metric)
            # Compared as naive UTC: polars refuses to compare zones named differently (Etc/UTC, UTC).
            fresh = batch.filter(pl.col("newest_data").dt.convert_time_zone("UTC").dt.replace_time_zone(None)
                                 > after.astimezone(dt.UTC).replace(tzinfo=None))
            kept.append(fresh)
            found += fresh.height
            start += RANK_BATCH
            if batch.height < RANK_BATCH:
                break
        ranked = pl.concat(kept)
        return ranked.slice(offset, limit)

    def _with_newest_data(self: Warehouse, page: pl.DataFrame, metric: str) -> pl.DataFrame:
        """``page`` (RANK_PAGE_SQL) with its score named ``metric`` and the first-seen time
        of the newest raw dataset upstream of each model's run."""
        newest = self.sql(
            "WITH roots AS (" + ROOTS_SQL + ") SELECT r.execution_id AS run_id, max(a.first_seen_at) AS newest_data "
            "FROM roots AS r LEFT JOIN artifacts AS a ON a.hash = r.dataset GROUP BY ALL",
            {"ids": page["run_id"].unique().to_list()})
        return page.rename({"value": metric}).join(newest, on="run_id", how="left", maintain_order="left")

    def deployments(self: Warehouse, project: str | None = None, *, history: bool = False) -> pl.DataFrame:
        """Deployments as they stand (or every status change, with ``history``)."""
        if history:
            return self.sql("SELECT * FROM deployment_history WHERE ($1::VARCHAR IS NULL OR project = $1) "
                            "ORDER BY deployment_id, \"at\"", [project])
        return self.sql("SELECT id, model_hash, project, environment, status, created_at, updated_at, "
                        "params::VARCHAR AS params FROM deployments WHERE ($1::VARCHAR IS NULL OR project = $1) "
                        "ORDER BY created_at DESC", [project])

    def serving(self: Warehouse, deployment: str | None = None, name: str | None = None) -> pl.DataFrame:
        """Serving performance over time, per deployment and metric."""
        dep = self.resolve_deployment(deployment) if deployment else None
        return self.sql("SELECT * FROM serving_metrics WHERE ($1::VARCHAR IS NULL OR deployment_id = $1) "
                        "AND ($2::VARCHAR IS NULL OR name = $2) ORDER BY deployment_id, name, period_start",
                        [dep, name])

    def resolve_deployment(self: Warehouse, ref: str) -> str:
        found = [r[0] for r in self._rows("SELECT id FROM deployments WHERE starts_with(id, ?) ORDER BY id LIMIT 21",
                                          [ref])]
        if len(found) == 1:
            return str(found[0])
        from cmfq.errors import AmbiguousError

        if found:
            raise AmbiguousError("deployment", ref, found)
        raise NotFoundError("deployment", ref, hint="`cmfq deployments` lists them.")

    def search(self: Warehouse, text: str, *, limit: int = 100, offset: int = 0) -> pl.DataFrame:
        """Artifacts, executions and annotations whose names, hashes, ids, params or tags mention
        ``text``: ``limit`` of them from row ``offset`` (search_top cuts each kind of match first)."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("Search for some text.")
        return self.sql("SELECT * FROM search_top(?, ?) ORDER BY entity, label, id, field, \"match\" LIMIT ? OFFSET ?",
                        [text.strip(), offset + limit, limit, offset])


def to_markdown(audit: dict[str, Any]) -> str:
    """A model card from :meth:`Analytics.audit`."""
    m = audit["model"]
    lines = [f"# Model card: {m['name']}", "", f"- **hash**: `{m['hash']}`", f"- **size**: {m['size']} bytes",
             f"- **first seen**: {m['first_seen_at']}"]
    if audit["tainted_by"]:
        lines.append("- **TAINTED**: " + "; ".join(f"{t['reason']} (`{t['source'][:12]}`)" for t in audit["tainted_by"]))
    for title, rows, cols in (
        ("Trained by", audit["trained_by"], ["id", "pipeline", "stage", "status", "params"]),
        ("Metrics (development)", audit["metrics"], ["name", "value", "min_value", "max_value", "last_step"]),
        ("Evaluations", audit["evaluations"], ["execution_id", "stage", "name", "value"]),
        ("Data (every ancestor)", audit["data"], ["depth", "kind", "name", "hash"]),
        ("Runs upstream", audit["runs"], ["stage", "pipeline", "git_commit", "git_dirty", "host", "site", "user"]),
        ("Environments", audit["environments"], ["hash", "python", "packages"]),
        ("Deployments", audit["deployments"], ["id", "environment", "status", "created_at", "updated_at"]),
        ("Serving", audit["serving"], ["deployment_id", "name", "periods", "mean", "min", "max"]),
    ):
        lines += ["", f"## {title}", ""]
        if not rows:
            lines.append("(none)")
            continue
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        lines += ["| " + " | ".join(_md(r.get(c)) for c in cols) + " |" for r in rows]
    if audit["fitted_params"]:
        lines += ["", "## Fitted parameters", ""] + [f"- `{k}` = {json.dumps(v)}" for k, v in audit["fitted_params"].items()]
    return "\n".join(lines) + "\n"


def _md(value: Any) -> str:
    text = "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _metric_names(where: str | None) -> set[str]:
    """Metric names an expression mentions (metrics.<name>), so their scores are computed."""
    return set(compile_where(where).metrics) if where else set()


def _spread_params(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Spread the params JSON into a column ``params.<key>`` per key in ``keys``."""
    parsed = [json.loads(p) for p in frame["params"].to_list()]
    out = frame.drop("params")
    for k in keys:
        values = [None if k not in p else p[k] if isinstance(p[k], str | int | float | bool) else json.dumps(p[k])
                  for p in parsed]
        out = out.with_columns(pl.Series(f"params.{k}", values, dtype=_dtype(values), strict=False))
    return out


def _dtype(values: list[Any]) -> pl.DataType:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pl.Boolean()
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pl.Float64()
    return pl.String()


def _utc(when: dt.datetime | None) -> dt.datetime | None:
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
