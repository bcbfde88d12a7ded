-- title: analytics views and macros: the cross-pipeline questions, in SQL anyone can call

-- Deployments as they stand now (the latest status of each), and every step they took.
CREATE OR REPLACE VIEW deployments AS
SELECT id, model_hash, project, environment, status, featureset_hash, params::JSON AS params,
       properties::JSON AS properties, site,
       min("at") OVER (PARTITION BY id) AS created_at, "at" AS updated_at
FROM idx.deployments
QUALIFY row_number() OVER (PARTITION BY id ORDER BY "at" DESC) = 1;

CREATE OR REPLACE VIEW deployment_history AS
SELECT id AS deployment_id, model_hash, project, environment, status, "at" FROM idx.deployments;

CREATE OR REPLACE VIEW serving_metrics AS
SELECT s.deployment_id, d.model_hash, d.environment, s.name, s.period_start, s.period_end, s.value
FROM idx.serving_metrics AS s LEFT JOIN deployments AS d ON d.id = s.deployment_id;

CREATE OR REPLACE VIEW dataset_stats AS
SELECT artifact_hash, "column", dtype, "count", nulls, mean, std, "min", "max", quantiles, "distinct",
       top::JSON AS top, "at" FROM idx.dataset_stats;

-- A model's fitted/optimizer parameters (annotation `model_params`), one row per parameter.
CREATE OR REPLACE VIEW model_params AS
SELECT a.entity_id AS model_hash, k.key, json_extract(a.value::JSON, json_key_path(k.key)) AS value
FROM annotations AS a, unnest(json_keys(a.value::JSON)) AS k(key)
WHERE a.entity_kind = 'artifact' AND a.key = 'model_params';

-- Artifacts marked as bad, with the reason.
CREATE OR REPLACE VIEW taints AS
SELECT entity_id AS hash, value AS reason, "at" FROM annotations WHERE entity_kind = 'artifact' AND key = 'taint';

-- Projects: the names executions carry, with what ran in them.
CREATE OR REPLACE VIEW projects AS
SELECT project AS name, count(*) AS executions, count(DISTINCT pipeline) AS pipelines,
       min(started_at) AS first_run, max(started_at) AS last_run
FROM idx.executions WHERE project IS NOT NULL GROUP BY project;

-- Models: every model artifact with the run that produced it (its pipeline, project, params).
CREATE OR REPLACE VIEW models AS
SELECT a.hash, a.name, a.first_seen_at, a.properties, x.id AS run_id, x.pipeline, x.stage, x.project,
       x.params, x.git_commit, x.started_at AS trained_at
FROM artifacts AS a
LEFT JOIN events AS e ON e.artifact_hash = a.hash AND e.direction = 'out'
LEFT JOIN executions AS x ON x.id = e.execution_id
WHERE a.kind = 'model'
QUALIFY row_number() OVER (PARTITION BY a.hash ORDER BY x.started_at NULLS LAST, x.id) = 1;

-- A score per execution for a metric: its own final value, or else the best value logged by an
-- execution that consumed one of its outputs (a train run scored by its evaluation). The index
-- keeps every run's scores in step (sql/index_scores.sql); `in_stage` keeps one stage's runs.
CREATE OR REPLACE MACRO run_scores(metric, in_stage := NULL) AS TABLE
SELECT execution_id, value AS score, scored_by, started_at FROM idx.scores
WHERE name = metric AND value IS NOT NULL AND (in_stage IS NULL OR stage = in_stage);

-- The best run of every raw dataset (an artifact nothing produced, of kind dataset): among the
-- runs that read it directly or through derived data, the best score of `metric` (run_scores),
-- ties to the latest run, then the smallest id. `in_stage` keeps runs of one stage (NULL: all);
-- `lowest_first` ranks the smallest score first. A run's rank is a struct compared field by
-- field (score, then lateness, then id), so no global sort is needed: each input keeps the
-- best of the runs that read it, and each raw dataset the best of the inputs below it. The
-- runs' inputs come with their scores (scores.inputs) and raw datasets are read off
-- nodes.produced, both kept by the index; the walk's pairs are narrowed to raw datasets
-- before the ranks are compared.
CREATE OR REPLACE MACRO best_per_dataset(metric, in_stage := NULL, lowest_first := false) AS TABLE
WITH RECURSIVE inputs AS (
    SELECT s.node, min({key: CASE WHEN lowest_first THEN s.value ELSE -s.value END,
                        late: coalesce(-epoch_us(s.started_at), 9223372036854775807),
                        id: s.execution_id, score: s.value, scored_by: s.scored_by}) AS best
    FROM (SELECT execution_id, value, started_at, scored_by, unnest(inputs) AS node FROM idx.scores
          WHERE name = metric AND value IS NOT NULL AND (in_stage IS NULL OR stage = in_stage)) AS s
    GROUP BY s.node
),
up(start, node) AS (
    SELECT node, node FROM inputs
    UNION
    SELECT u.start, g.parent FROM up AS u JOIN idx.lineage_graph AS g ON g.child = u.node
),
raw AS (
    SELECT u.start, n.id, n.hash, n.name FROM up AS u JOIN idx.nodes AS n ON n.id = u.node
    WHERE coalesce(n.kind, 'dataset') = 'dataset' AND NOT n.produced
),
reached AS (
    SELECT r.id, any_value(r.hash) AS hash, any_value(r.name) AS name, min(i.best) AS best
    FROM raw AS r JOIN inputs AS i ON i.node = r.start GROUP BY r.id
)
SELECT r.hash AS dataset, r.name AS dataset_name, r.best.id AS execution_id, r.best.score AS score,
       r.best.scored_by AS scored_by
FROM reached AS r;

-- Everything downstream of a tainted artifact is tainted; the reason travels with it.
CREATE OR REPLACE VIEW tainted AS
SELECT t.hash AS source, t.reason, t.hash, 0 AS depth FROM taints AS t
UNION ALL
SELECT t.hash AS source, t.reason, d.hash, d.depth FROM taints AS t, descendants(t.hash) AS d;

-- The sphere of influence of artifact `h`: every downstream artifact, execution and
-- deployment, with its distance (executions: the hop of the artifact they consumed, plus one).
CREATE OR REPLACE MACRO influence(h) AS TABLE
WITH reached AS (SELECT h::VARCHAR AS hash, 0 AS depth UNION ALL SELECT hash, depth FROM descendants(h))
SELECT 'artifact' AS entity, r.hash AS id, a.kind AS kind, a.name AS name, NULL::VARCHAR AS pipeline, r.depth
FROM reached AS r LEFT JOIN artifacts AS a ON a.hash = r.hash WHERE r.depth > 0
UNION ALL
SELECT 'execution', x.id, x.stage, x.status, x.pipeline, min(r.depth) + 1
FROM reached AS r JOIN events AS e ON e.artifact_hash = r.hash AND e.direction = 'in'
JOIN executions AS x ON x.id = e.execution_id
GROUP BY x.id, x.stage, x.status, x.pipeline
UNION ALL
SELECT 'deployment', d.id, d.environment, d.status, d.project, r.depth
FROM reached AS r JOIN deployments AS d ON d.model_hash = r.hash;

-- Two executions side by side. Parameters: every key of either, and whether it changed.
CREATE OR REPLACE MACRO diff_params(a, b) AS TABLE
SELECT coalesce(pa.key, pb.key) AS key, pa.value_text AS a, pb.value_text AS b,
       pa.value_text IS DISTINCT FROM pb.value_text AS changed
FROM (SELECT key, value_text FROM params WHERE execution_id = a) AS pa
FULL JOIN (SELECT key, value_text FROM params WHERE execution_id = b) AS pb ON pa.key = pb.key;

-- Metrics: final value, min, max and last step of each, for both.
CREATE OR REPLACE MACRO diff_metrics(a, b) AS TABLE
SELECT coalesce(ma.name, mb.name) AS name, ma.value AS a, mb.value AS b, mb.value - ma.value AS delta,
       ma.min_value AS a_min, mb.min_value AS b_min, ma.max_value AS a_max, mb.max_value AS b_max,
       ma.last_step AS a_last_step, mb.last_step AS b_last_step
FROM (SELECT * FROM final_metrics WHERE execution_id = a) AS ma
FULL JOIN (SELECT * FROM final_metrics WHERE execution_id = b) AS mb ON ma.name = mb.name;

-- Inputs and outputs, matched by the name (or role) each run used: same or different content.
CREATE OR REPLACE MACRO diff_artifacts(a, b) AS TABLE
SELECT coalesce(ea.direction, eb.direction) AS direction, coalesce(ea.label, eb.label) AS name,
       ea.artifact_hash AS a, eb.artifact_hash AS b,
       CASE WHEN ea.artifact_hash IS NULL THEN 'only in b' WHEN eb.artifact_hash IS NULL THEN 'only in a'
            WHEN ea.artifact_hash = eb.artifact_hash THEN 'same' ELSE 'different' END AS change
FROM (SELECT direction, artifact_hash, coalesce(role, name, artifact_hash) AS label FROM events WHERE execution_id = a) AS ea
FULL JOIN (SELECT direction, artifact_hash, coalesce(role, name, artifact_hash) AS label FROM events
           WHERE execution_id = b) AS eb ON ea.direction = eb.direction AND ea.label = eb.label;

-- The packages of an environment artifact, as name and version.
CREATE OR REPLACE MACRO env_packages(h) AS TABLE
SELECT split_part(p, '==', 1) AS package, split_part(p, '==', 2) AS version
FROM (SELECT unnest(json_extract_string(properties, '$.packages[*]')) AS p FROM artifacts WHERE hash = h);

-- The cumulative distribution at x of a column whose deciles are qs (linear between deciles).
CREATE OR REPLACE MACRO decile_cdf(qs, x) AS
CASE WHEN x <= qs[1] THEN 0.0 WHEN x >= qs[11] THEN 1.0
     ELSE (len(list_filter(qs, v -> v <= x)) - 1
           + (x - qs[len(list_filter(qs, v -> v <= x))])
             / greatest(qs[len(list_filter(qs, v -> v <= x)) + 1] - qs[len(list_filter(qs, v -> v <= x))], 1e-300)
          ) / 10.0 END;

-- Covariate shift of each numeric column from dataset a to dataset b, from stored statistics:
-- the difference of means in pooled standard deviations, and the population stability index
-- over a's deciles (b's share of each decile bin read off b's own deciles). Deciles of a column
-- with few distinct values (a label, a flag) are mostly ties, so PSI is left out for those.
CREATE OR REPLACE MACRO drift(a, b) AS TABLE
WITH sa AS (SELECT * FROM dataset_stats WHERE artifact_hash = a),
     sb AS (SELECT * FROM dataset_stats WHERE artifact_hash = b),
     bins AS (
        SELECT sa."column", sa.mean AS mean_a, sb.mean AS mean_b, sa.std AS std_a, sb.std AS std_b,
               least(sa."distinct", sb."distinct") >= 10 AS binnable,
               list_transform(range(1, 11), i -> greatest(
                   decile_cdf(sb.quantiles, sa.quantiles[i + 1]) - decile_cdf(sb.quantiles, sa.quantiles[i]),
                   0.001)) AS share_b
        FROM sa JOIN sb ON sa."column" = sb."column"
        WHERE sa.quantiles IS NOT NULL AND sb.quantiles IS NOT NULL)
SELECT "column", mean_a, mean_b,
       (mean_b - mean_a) / nullif(sqrt((std_a * std_a + std_b * std_b) / 2), 0) AS std_mean_diff,
       CASE WHEN binnable THEN list_sum(list_transform(share_b, p -> (p - 0.1) * ln(p / 0.1))) END AS psi
FROM bins;

-- Anything whose name, id, tag, parameter or pipeline mentions `q` (case-insensitive).
CREATE OR REPLACE MACRO search(q) AS TABLE
SELECT 'artifact' AS entity, hash AS id, name AS label, 'name' AS field, name AS "match"
FROM artifacts WHERE contains(lower(name), lower(q)) OR starts_with(hash, lower(q))
UNION
SELECT 'artifact', e.artifact_hash, e.name, 'name used', e.name FROM events AS e
WHERE contains(lower(e.name), lower(q))
UNION
SELECT 'execution', id, stage, 'pipeline/stage', pipeline || '/' || stage FROM executions
WHERE contains(lower(pipeline), lower(q)) OR contains(lower(stage), lower(q)) OR starts_with(id, lower(q))
UNION
SELECT 'execution', execution_id, stage, 'param ' || key, key || '=' || value_text FROM params
WHERE contains(lower(key), lower(q)) OR contains(lower(value_text), lower(q))
UNION
SELECT entity_kind, entity_id, key, 'annotation', key || '=' || coalesce(value, '') FROM annotations
WHERE contains(lower(key), lower(q)) OR contains(lower(coalesce(value, '')), lower(q));

-- The first n rows of search(q) in the order (entity, label, id, field, match): each part keeps
-- only its own first n before they are merged, so a page of a common word ("train") never
-- holds every match. The same rows as search(q) ORDER BY entity, label, id, field, "match" LIMIT n.
CREATE OR REPLACE MACRO search_top(q, n) AS TABLE
-- Artifacts (one row per hash) and executions (one per id) need no DISTINCT, so each part is
-- a top-n that keeps n rows, not every match; params are unnested in SELECT, which streams.
(SELECT 'artifact' AS entity, hash AS id, name AS label, 'name' AS field, name AS "match"
 FROM artifacts WHERE contains(lower(name), lower(q)) OR starts_with(hash, lower(q))
 ORDER BY entity, label, id, field, "match" LIMIT n)
UNION
(SELECT DISTINCT 'artifact', e.artifact_hash, e.name, 'name used', e.name FROM events AS e
 WHERE contains(lower(e.name), lower(q))
 ORDER BY 1, 3, 2, 4, 5 LIMIT n)
UNION
(SELECT 'execution', id, stage, 'pipeline/stage', pipeline || '/' || stage FROM executions
 WHERE contains(lower(pipeline), lower(q)) OR contains(lower(stage), lower(q)) OR starts_with(id, lower(q))
 ORDER BY 1, 3, 2, 4, 5 LIMIT n)
UNION
(SELECT 'execution', id, stage, 'param ' || key, key || '=' || value_text
 FROM (SELECT id, stage, key, json_extract_string(params, json_key_path(key)) AS value_text
       FROM (SELECT id, stage, params, unnest(json_keys(params)) AS key FROM idx.executions))
 WHERE contains(lower(key), lower(q)) OR contains(lower(value_text), lower(q))
 ORDER BY 1, 3, 2, 4, 5 LIMIT n)
UNION
(SELECT DISTINCT entity_kind, entity_id, key, 'annotation', key || '=' || coalesce(value, '') FROM annotations
 WHERE contains(lower(key), lower(q)) OR contains(lower(coalesce(value, '')), lower(q))
 ORDER BY 1, 3, 2, 4, 5 LIMIT n);
