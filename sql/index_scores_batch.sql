-- title: rescore one batch of the runs in scores_affected (see index_scores.sql)
DELETE FROM idx.scores WHERE execution_id IN (SELECT execution_id FROM scores_affected WHERE batch = {{batch}});

INSERT INTO idx.scores
WITH runs AS (
    SELECT execution_id FROM scores_affected WHERE batch = {{batch}}
),
own AS (
    SELECT f.execution_id, f.name, f.value, f.min_value, f.max_value FROM idx.final_metrics AS f
    WHERE f.execution_id IN (SELECT execution_id FROM runs)
),
downstream AS (
    SELECT o.execution_id, f.name, max(f.value) AS value, arg_max(f.execution_id, f.value) AS scored_by,
           min(f.min_value) AS min_value, max(f.max_value) AS max_value
    FROM idx.events AS o
    JOIN idx.events AS i ON i.node = o.node AND i.direction = 'in'
    JOIN idx.final_metrics AS f ON f.execution_id = i.execution_id
    WHERE o.direction = 'out' AND o.execution_id IN (SELECT execution_id FROM runs)
    GROUP BY o.execution_id, f.name
),
scored AS (
    SELECT coalesce(own.execution_id, d.execution_id) AS execution_id, coalesce(own.name, d.name) AS name,
           coalesce(own.value, d.value) AS value, coalesce(own.min_value, d.min_value) AS min_value,
           coalesce(own.max_value, d.max_value) AS max_value,
           CASE WHEN own.value IS NOT NULL THEN own.execution_id ELSE d.scored_by END AS scored_by
    FROM own FULL JOIN downstream AS d ON d.execution_id = own.execution_id AND d.name = own.name
),
inputs AS (
    SELECT execution_id, list(DISTINCT node ORDER BY node) AS inputs FROM idx.events
    WHERE direction = 'in' AND execution_id IN (SELECT execution_id FROM runs)
    GROUP BY execution_id
)
SELECT s.execution_id, x.stage, x.started_at, s.name, s.value, s.min_value, s.max_value, s.scored_by,
       coalesce(i.inputs, []::INTEGER[])
FROM scored AS s LEFT JOIN idx.executions AS x ON x.id = s.execution_id
LEFT JOIN inputs AS i ON i.execution_id = s.execution_id;
