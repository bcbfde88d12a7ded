-- title: keep final_metrics in step with the metrics just merged
-- Recomputed from every metric row of the executions the chunk touched: a late step or a
-- re-logged value from another site changes the final value, never an untouched run.
DELETE FROM idx.final_metrics WHERE execution_id IN (SELECT DISTINCT execution_id FROM staging_metrics);

INSERT INTO idx.final_metrics
SELECT execution_id, name,
       arg_max(value, (step IS NULL, coalesce(step, 0), "at")),
       max(step), min(value), max(value)
FROM idx.metrics
WHERE execution_id IN (SELECT DISTINCT execution_id FROM staging_metrics)
GROUP BY execution_id, name;
