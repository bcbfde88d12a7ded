-- title: bring scores up to date for the runs merged since the last refresh
-- A run's score changes when its own final metrics change, when it wrote new outputs, or when
-- a run that read one of its outputs changed. Each merged chunk notes its runs in
-- _cmfq_scores_dirty (in the chunk's transaction, so a crash loses no note); at the end of a
-- refresh those runs and the producers of what they read are rescored, in batches of
-- {{batch_size}} runs so that a rebuild of a large index stays within DuckDB's memory limit.
CREATE OR REPLACE TEMP TABLE scores_affected AS
WITH dirty AS (SELECT DISTINCT execution_id FROM idx._cmfq_scores_dirty),
affected AS (
    SELECT execution_id FROM dirty
    UNION
    SELECT o.execution_id FROM idx.events AS i
    JOIN idx.events AS o ON o.node = i.node AND o.direction = 'out'
    WHERE i.direction = 'in' AND i.execution_id IN (SELECT execution_id FROM dirty)
)
SELECT execution_id, (row_number() OVER () - 1) // {{batch_size}} AS batch FROM affected;
