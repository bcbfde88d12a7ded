-- title: bookkeeping and lineage tables of the local index (_cache/index.duckdb)
-- The fact tables themselves are created from the Arrow schemas in warehouse/schema.py.
CREATE TABLE IF NOT EXISTS _cmfq_meta (key VARCHAR PRIMARY KEY, value VARCHAR);

-- Every partition whose rows are in the index, and the compacted ones that replaced others.
CREATE TABLE IF NOT EXISTS _cmfq_partitions (name VARCHAR, tbl VARCHAR, rows BIGINT, loaded_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS _cmfq_replaced (name VARCHAR, by_name VARCHAR);

-- Every artifact hash (from artifacts or events) gets a dense integer id, local to this index.
-- Lineage walks join integers, several times faster than 32-character hashes; kind, name and
-- size are copied from artifacts so that a walk's answer is labelled without a second join.
-- `produced`: some execution wrote it (an 'out' event), set in the transaction that merges the
-- event (index_lineage.sql). Events are never taken back, so once true it stays true; a raw
-- dataset is a node of kind dataset (or unknown) that is not produced, read off one column
-- instead of an anti-join over every event.
CREATE TABLE IF NOT EXISTS nodes (id INTEGER, hash VARCHAR, kind VARCHAR, name VARCHAR, size BIGINT,
                                  produced BOOLEAN);

-- The final value of every metric of every execution (the last coarse value, else the value
-- at the last step) with its min and max: kept in step at each merge, so that scoring runs
-- reads one row per metric instead of aggregating every step of every run.
CREATE TABLE IF NOT EXISTS final_metrics (execution_id VARCHAR, name VARCHAR, value DOUBLE, last_step BIGINT,
                                          min_value DOUBLE, max_value DOUBLE);

-- The score of every run for every metric it has one for: its own final value, else the best
-- final value of a run that read one of its outputs (a train run scored by its evaluation),
-- with the run's stage and start, kept in step at each merge (index_scores.sql). Comparing
-- and ranking runs then read one row per run instead of joining every event twice. `inputs`
-- holds the node ids the run read (its 'in' events): best_per_dataset starts its walk from
-- them without joining hundreds of thousands of runs to the events on their string ids. A
-- run's new events mark it for rescoring, so the list is rebuilt whenever it could change.
CREATE TABLE IF NOT EXISTS _cmfq_scores_dirty (execution_id VARCHAR);
CREATE TABLE IF NOT EXISTS scores (execution_id VARCHAR, stage VARCHAR, started_at TIMESTAMPTZ, name VARCHAR,
                                   value DOUBLE, min_value DOUBLE, max_value DOUBLE, scored_by VARCHAR,
                                   inputs INTEGER[]);

-- Artifact -> artifact edges through an execution (each input x each output), by node id.
CREATE TABLE IF NOT EXISTS lineage_graph (parent INTEGER, child INTEGER, execution_id VARCHAR);
-- (The events table also carries each artifact's node id, in a column `node`.)
