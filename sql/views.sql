-- title: the views users query: deduplicated facts, latest state wins
-- They read the `idx` catalog: the local index, or Parquet partitions read in place.

-- A JSONPath for any key, dots and quotes included: json_extract(params, json_key_path(k)).
CREATE OR REPLACE MACRO json_key_path(k) AS '$."' || replace(k, '"', '\"') || '"';

CREATE OR REPLACE VIEW executions AS
SELECT id, pipeline, stage, status, started_at, ended_at,
       date_diff('millisecond', started_at, ended_at) / 1000.0 AS duration_s,
       params::JSON AS params, type, project, site, host, "user", parent_id, error, cmd,
       git_repo, git_commit, git_branch, git_dirty, env_hash, properties::JSON AS properties,
       "at" AS updated_at
FROM idx.executions;

CREATE OR REPLACE VIEW artifacts AS
SELECT hash, kind, name, uri, size, properties::JSON AS properties, site, "at" AS first_seen_at
FROM idx.artifacts;

-- `node` is the artifact's integer id in `nodes`: join it with `lineage_graph` when speed matters.
CREATE OR REPLACE VIEW events AS
SELECT execution_id, artifact_hash, direction, role, name, "at", node FROM idx.events;

CREATE OR REPLACE VIEW metrics AS
SELECT execution_id, name, step, value, "at" FROM idx.metrics;

-- Annotations currently in force (a NULL value removed the key).
CREATE OR REPLACE VIEW annotations AS
SELECT entity_kind, entity_id, key, value, "at" FROM idx.annotations WHERE value IS NOT NULL;

-- Every artifact hash with a dense integer id (local to this warehouse's index) and its labels.
CREATE OR REPLACE VIEW nodes AS SELECT id, hash, kind, name, size FROM idx.nodes;

-- The lineage graph on those integer ids: the fast way to join lineage in big analytics.
CREATE OR REPLACE VIEW lineage_graph AS SELECT parent, child, execution_id FROM idx.lineage_graph;

-- One row per (input, output) pair of an execution: the edges lineage walks follow.
CREATE OR REPLACE VIEW lineage_edges AS
SELECT np.hash AS parent_hash, nc.hash AS child_hash, g.execution_id
FROM idx.lineage_graph AS g
JOIN idx.nodes AS np ON np.id = g.parent
JOIN idx.nodes AS nc ON nc.id = g.child;

CREATE OR REPLACE VIEW pipelines AS
SELECT pipeline AS name,
       count(*) AS executions,
       count(DISTINCT stage) AS stages,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       min(started_at) AS first_run,
       max(started_at) AS last_run,
       list(DISTINCT site ORDER BY site) AS sites
FROM idx.executions
GROUP BY pipeline;

CREATE OR REPLACE VIEW stages AS
SELECT pipeline, stage,
       count(*) AS executions,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       max(started_at) AS last_run
FROM idx.executions
GROUP BY pipeline, stage;

-- Parameters in long form, one row per (execution, key): easy to filter, pivot and compare.
CREATE OR REPLACE VIEW params AS
SELECT e.id AS execution_id, e.pipeline, e.stage, k.key,
       json_extract(e.params, json_key_path(k.key)) AS value,
       json_extract_string(e.params, json_key_path(k.key)) AS value_text,
       TRY_CAST(json_extract_string(e.params, json_key_path(k.key)) AS DOUBLE) AS value_num
FROM idx.executions AS e, unnest(json_keys(e.params)) AS k(key);

-- One value per (execution, metric): the coarse value when logged, else the last step's.
CREATE OR REPLACE VIEW final_metrics AS
SELECT execution_id, name, value, last_step, min_value, max_value FROM idx.final_metrics;
