-- title: the best 3 models of every raw dataset, in SQL that DuckDB and Spark both run
-- The same question as topk_per_dataset.sql, without DuckDB's shortcuts (integer node ids,
-- min_by(..., 3), unnest): the `spark` benchmark runs it in both engines and checks both
-- against the generator's truth. Hashes are joined through lineage_edges; ties on roc_auc go
-- to the smaller model hash.
WITH scored AS (
    SELECT i.artifact_hash AS model, max(m.value) AS roc_auc
    FROM metrics AS m
    JOIN events AS i ON i.execution_id = m.execution_id AND i.direction = 'in'
    JOIN artifacts AS a ON a.hash = i.artifact_hash AND a.kind = 'model'
    WHERE m.name = 'roc_auc' AND m.step IS NULL
      AND m.execution_id NOT IN (SELECT id FROM executions WHERE status <> 'completed')
    GROUP BY i.artifact_hash
),
origin AS (
    SELECT DISTINCT s.model, s.roc_auc, g1.execution_id AS train_id, g3.parent_hash AS dataset
    FROM scored AS s
    JOIN lineage_edges AS g1 ON g1.child_hash = s.model
    JOIN lineage_edges AS g2 ON g2.child_hash = g1.parent_hash
    JOIN lineage_edges AS g3 ON g3.child_hash = g2.parent_hash
    WHERE g3.parent_hash NOT IN (SELECT child_hash FROM lineage_edges)
),
ranked AS (
    SELECT dataset, model, roc_auc, train_id,
           row_number() OVER (PARTITION BY dataset ORDER BY roc_auc DESC, model) AS rank
    FROM origin
)
SELECT r.dataset, r.rank, r.roc_auc, r.model, r.train_id, t.params
FROM ranked AS r
JOIN executions AS t ON t.id = r.train_id AND t.status = 'completed'
WHERE r.rank <= 3
