-- title: give new artifact hashes of the staged chunk a node id, and refresh their labels
-- {{source}} is a staged relation with a column {{column}} holding artifact hashes.
-- Nodes that exist already: copy the labels the chunk changed. Only changed rows are
-- updated: an UPDATE holds every row it touches in memory until the commit, and a rebuild
-- would otherwise rewrite millions of labels that were right.
UPDATE idx.nodes SET kind = a.kind, name = a.name, size = a.size
FROM idx.artifacts AS a
WHERE a.hash = nodes.hash AND a.hash IN (SELECT DISTINCT {{column}} FROM {{source}})
  AND (nodes.kind IS DISTINCT FROM a.kind OR nodes.name IS DISTINCT FROM a.name OR nodes.size IS DISTINCT FROM a.size);

-- New hashes: a node each, labelled as it is inserted (unlabelled when its artifact row has
-- not arrived yet: the chunk that brings it labels the node above). An empty OVER () streams;
-- ordering the ids by hash held every new hash in memory.
INSERT INTO idx.nodes
SELECT (SELECT coalesce(max(id), 0) FROM idx.nodes) + row_number() OVER ()::INTEGER,
       fresh.h, a.kind, a.name, a.size, false
FROM (SELECT DISTINCT src.{{column}} AS h FROM {{source}} AS src
      ANTI JOIN idx.nodes AS n ON n.hash = src.{{column}}) AS fresh
LEFT JOIN idx.artifacts AS a ON a.hash = fresh.h;
