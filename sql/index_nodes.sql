-- title: give new artifact hashes of the staged chunk a node id, and refresh their labels
-- {{source}} is a staged relation with a column {{column}} holding artifact hashes.
INSERT INTO idx.nodes
SELECT (SELECT coalesce(max(id), 0) FROM idx.nodes) + row_number() OVER (ORDER BY h)::INTEGER,
       h, NULL, NULL, NULL, false
FROM (SELECT DISTINCT {{column}} AS h FROM {{source}}) AS fresh
ANTI JOIN idx.nodes AS n ON n.hash = fresh.h;

UPDATE idx.nodes SET kind = a.kind, name = a.name, size = a.size
FROM idx.artifacts AS a
WHERE a.hash = nodes.hash AND a.hash IN (SELECT DISTINCT {{column}} FROM {{source}});
