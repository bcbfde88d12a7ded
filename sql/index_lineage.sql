-- title: keep lineage_edges in step with the executions whose events were just merged
DELETE FROM idx.lineage_edges WHERE execution_id IN (SELECT execution_id FROM staged_events);

INSERT INTO idx.lineage_edges
SELECT i.artifact_hash, o.artifact_hash, i.execution_id
FROM idx.events AS i
JOIN idx.events AS o ON o.execution_id = i.execution_id AND o.direction = 'out'
WHERE i.direction = 'in' AND i.execution_id IN (SELECT execution_id FROM staged_events);
