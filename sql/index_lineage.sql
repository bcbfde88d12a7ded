-- title: keep events.node and lineage_graph in step with the events just merged
-- (The events were merged with the node id of their artifact: index.py, _staged_statements.)
-- An 'out' event of the chunk marks its artifact produced. The staged key is in idx.events
-- after the merge whichever row won, so this holds exactly when some 'out' event exists.
UPDATE idx.nodes SET produced = true
FROM (SELECT DISTINCT artifact_hash FROM staging_events WHERE direction = 'out') AS o
WHERE o.artifact_hash = nodes.hash AND NOT nodes.produced;

DELETE FROM idx.lineage_graph WHERE execution_id IN (SELECT DISTINCT execution_id FROM staging_events);

INSERT INTO idx.lineage_graph
SELECT i.node, o.node, i.execution_id
FROM idx.events AS i
JOIN idx.events AS o ON o.execution_id = i.execution_id AND o.direction = 'out'
WHERE i.direction = 'in' AND i.execution_id IN (SELECT DISTINCT execution_id FROM staging_events);

-- The graph changed: a new stamp, which names the adjacency-array copy of the graph that
-- walks may use (warehouse/graph_map.py). A copy made before this merge is never read again.
INSERT OR REPLACE INTO idx._cmfq_meta VALUES ('graph_stamp', uuid()::VARCHAR);
