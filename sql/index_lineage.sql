-- title: keep events.node and lineage_graph in step with the events just merged
-- (index_nodes.sql has given every hash of the chunk a node id already.)
UPDATE idx.events SET node = n.id
FROM idx.nodes AS n
WHERE events.node IS NULL AND n.hash = events.artifact_hash;

DELETE FROM idx.lineage_graph WHERE execution_id IN (SELECT DISTINCT execution_id FROM staging_events);

INSERT INTO idx.lineage_graph
SELECT i.node, o.node, i.execution_id
FROM idx.events AS i
JOIN idx.events AS o ON o.execution_id = i.execution_id AND o.direction = 'out'
WHERE i.direction = 'in' AND i.execution_id IN (SELECT DISTINCT execution_id FROM staging_events);
