-- title: bookkeeping tables of the local index (_cache/index.duckdb)
-- The fact tables themselves are created from the Arrow schemas in warehouse/schema.py.
CREATE TABLE IF NOT EXISTS _cmfq_meta (key VARCHAR PRIMARY KEY, value VARCHAR);

-- Every partition whose rows are in the index, and the compacted ones that replaced others.
CREATE TABLE IF NOT EXISTS _cmfq_partitions (name VARCHAR, tbl VARCHAR, rows BIGINT, loaded_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS _cmfq_replaced (name VARCHAR, by_name VARCHAR);

-- Artifact -> artifact edges through an execution (inputs x outputs), kept in step with
-- events so that lineage walks one join per hop. The ART indexes make each hop a lookup.
CREATE TABLE IF NOT EXISTS lineage_edges (parent_hash VARCHAR, child_hash VARCHAR, execution_id VARCHAR);
CREATE INDEX IF NOT EXISTS lineage_edges_child ON lineage_edges (child_hash);
CREATE INDEX IF NOT EXISTS lineage_edges_parent ON lineage_edges (parent_hash);
