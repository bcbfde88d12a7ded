-- title: the best 3 models of every raw dataset, with the parameters they were trained with
-- Plain SQL over the public views (sql/views.sql), run with wh.sql(...). The pipeline shape
-- it assumes is CMF's:
--   raw dataset -prepare-> train split -featurize-> featureset -train-> model -evaluate-> roc_auc
-- No stage names are used: an evaluation is a completed execution that read a model and logged
-- a coarse `roc_auc` (step NULL); the model's training is the execution of its lineage edge from
-- the featureset; its raw dataset is three lineage hops up and was written by no execution.
-- A model evaluated twice counts with its best score. Ties on roc_auc are broken by model hash,
-- so the answer is deterministic.
--
-- Shaped for speed: lineage is followed on the integer graph (lineage_graph, events.node)
-- instead of 32-character hashes; the coarse metric is read from `metrics` (final_metrics
-- would aggregate every metric of every execution first); the status filter anti-joins the
-- few executions that did not complete instead of semi-joining the million that did; the top
-- 3 are picked with min_by(..., 3), a hash aggregate, not a sort of every model; and params
-- are joined for the winners only.
WITH scored AS (          -- every evaluated model and its best roc_auc
    SELECT i.node AS model, any_value(i.artifact_hash) AS model_hash, max(m.value) AS roc_auc
    FROM metrics AS m
    JOIN events AS i ON i.execution_id = m.execution_id AND i.direction = 'in'
    WHERE m.name = 'roc_auc' AND m.step IS NULL
      AND m.execution_id NOT IN (SELECT id FROM executions WHERE status <> 'completed')
      AND i.node IN (SELECT id FROM nodes WHERE kind = 'model')
    GROUP BY i.node
),
origin AS (               -- model <-train- featureset <- split <- raw dataset
    SELECT DISTINCT s.model_hash, s.roc_auc, g1.execution_id AS train_id, g3.parent AS dataset
    FROM scored AS s
    JOIN lineage_graph AS g1 ON g1.child = s.model
    JOIN lineage_graph AS g2 ON g2.child = g1.parent
    JOIN lineage_graph AS g3 ON g3.child = g2.parent
    WHERE NOT EXISTS (SELECT 1 FROM lineage_graph AS p WHERE p.child = g3.parent)
),
best AS (                 -- per dataset, the 3 smallest (-roc_auc, model): best score first
    SELECT dataset, min_by({'roc_auc': roc_auc, 'model': model_hash, 'train_id': train_id},
                           {'neg_auc': -roc_auc, 'model': model_hash}, 3) AS top
    FROM origin
    GROUP BY dataset
),
ranked AS (
    SELECT dataset, unnest(top, recursive := true), generate_subscripts(top, 1) AS rank FROM best
)
SELECT d.hash AS dataset, d.name AS dataset_name, r.rank, r.roc_auc, r.model, r.train_id,
       t.params->>'n_est' AS n_est, t.params->>'min_split' AS min_split, t.params->>'lr' AS lr,
       t.params->>'features' AS features, t.params::VARCHAR AS params
FROM ranked AS r
JOIN executions AS t ON t.id = r.train_id AND t.status = 'completed'
JOIN nodes AS d ON d.id = r.dataset
ORDER BY d.hash, r.rank;
