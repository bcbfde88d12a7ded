-- title: Spark's version of the index's derived tables (see index_nodes.sql, index_lineage.sql, index_final_metrics.sql)
-- Spark SQL, not DuckDB: run by cmfq.warehouse.spark over the deduplicated facts (cmfq_idx_<table>).
-- DuckDB keeps these tables up to date chunk by chunk as partitions load; Spark derives them
-- whole from the facts on every query, so each is one plain view. Node ids are local here too
-- (dense, in hash order); tests/spark checks every view against DuckDB's answer.

CREATE OR REPLACE TEMPORARY VIEW cmfq_idx_nodes AS
SELECT CAST(row_number() OVER (ORDER BY h.hash) AS INT) AS id, h.hash, a.kind, a.name, a.size
FROM (SELECT hash FROM cmfq_idx_artifacts UNION SELECT artifact_hash FROM cmfq_facts_events) AS h
LEFT JOIN cmfq_idx_artifacts AS a ON a.hash = h.hash;

CREATE OR REPLACE TEMPORARY VIEW cmfq_idx_events AS
SELECT e.*, n.id AS node FROM cmfq_facts_events AS e JOIN cmfq_idx_nodes AS n ON n.hash = e.artifact_hash;

-- Each input x each output of an execution, on node ids.
CREATE OR REPLACE TEMPORARY VIEW cmfq_idx_lineage_graph AS
SELECT i.node AS parent, o.node AS child, i.execution_id
FROM cmfq_idx_events AS i
JOIN cmfq_idx_events AS o ON o.execution_id = i.execution_id AND o.direction = 'out'
WHERE i.direction = 'in';

-- The coarse value when logged, else the last step's (DuckDB: arg_max over the same tuple).
CREATE OR REPLACE TEMPORARY VIEW cmfq_idx_final_metrics AS
SELECT execution_id, name,
       max_by(value, struct(step IS NULL, coalesce(step, 0), `at`)) AS value,
       max(step) AS last_step, min(value) AS min_value, max(value) AS max_value
FROM cmfq_idx_metrics
GROUP BY execution_id, name;
