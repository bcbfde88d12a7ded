-- title: ART indexes of the local index, created after a bulk load (faster than row by row)
-- Each hop of a lineage walk, and each lookup of a hash, is then an index probe, not a scan.
CREATE INDEX IF NOT EXISTS nodes_hash ON nodes (hash);
CREATE INDEX IF NOT EXISTS nodes_id ON nodes (id);
CREATE INDEX IF NOT EXISTS lineage_graph_child ON lineage_graph (child);
CREATE INDEX IF NOT EXISTS lineage_graph_parent ON lineage_graph (parent);
-- Who wrote or read an artifact (producers, consumers, audit): a probe, not a scan of every event.
CREATE INDEX IF NOT EXISTS events_node ON events (node);
-- Point lookups by execution id and by artifact hash (show, diff, audit, resolving names).
CREATE INDEX IF NOT EXISTS executions_id ON executions (id);
CREATE INDEX IF NOT EXISTS final_metrics_execution ON final_metrics (execution_id);
CREATE INDEX IF NOT EXISTS artifacts_hash ON artifacts (hash);
