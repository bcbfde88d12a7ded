-- title: lineage edges computed on the fly when there is no local index
CREATE OR REPLACE VIEW idx.lineage_edges AS
SELECT i.artifact_hash AS parent_hash, o.artifact_hash AS child_hash, i.execution_id
FROM idx.events AS i
JOIN idx.events AS o ON o.execution_id = i.execution_id AND o.direction = 'out'
WHERE i.direction = 'in';
