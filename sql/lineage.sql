-- title: lineage macros, walking artifact -> execution -> artifact edges
-- The walk runs on integer node ids (see index_schema.sql). `USING KEY (id)` keeps one row
-- per artifact, so deep chains stay linear; the `recurring` check stops at artifacts already
-- reached (content hashes can form cycles) and so keeps the smallest depth, as a
-- breadth-first walk would.

-- Every artifact upstream of artifact `h`, with its distance in hops (1 = a direct input).
CREATE OR REPLACE MACRO ancestors(h) AS TABLE
WITH RECURSIVE walk(id, depth) USING KEY (id) AS (
    SELECT id, 0 FROM idx.nodes WHERE hash = h
    UNION
    SELECT g.parent, w.depth + 1
    FROM walk AS w JOIN idx.lineage_graph AS g ON g.child = w.id
    WHERE NOT EXISTS (SELECT 1 FROM recurring.walk AS r WHERE r.id = g.parent)
)
SELECT n.hash, w.depth FROM walk AS w JOIN idx.nodes AS n ON n.id = w.id WHERE w.depth > 0;

-- Every artifact downstream of artifact `h`, with its distance in hops.
CREATE OR REPLACE MACRO descendants(h) AS TABLE
WITH RECURSIVE walk(id, depth) USING KEY (id) AS (
    SELECT id, 0 FROM idx.nodes WHERE hash = h
    UNION
    SELECT g.child, w.depth + 1
    FROM walk AS w JOIN idx.lineage_graph AS g ON g.parent = w.id
    WHERE NOT EXISTS (SELECT 1 FROM recurring.walk AS r WHERE r.id = g.child)
)
SELECT n.hash, w.depth FROM walk AS w JOIN idx.nodes AS n ON n.id = w.id WHERE w.depth > 0;

-- One hop up: the inputs of the executions that produced `h`.
CREATE OR REPLACE MACRO parents(h) AS TABLE
SELECT DISTINCT parent_hash AS hash, execution_id FROM lineage_edges WHERE child_hash = h;

-- One hop down: the outputs of the executions that consumed `h`.
CREATE OR REPLACE MACRO children(h) AS TABLE
SELECT DISTINCT child_hash AS hash, execution_id FROM lineage_edges WHERE parent_hash = h;

-- The executions that wrote artifact `h` (usually one; the same bytes may be made twice).
-- Matched on the integer node id: a scan of integers, not of 32-character strings.
CREATE OR REPLACE MACRO producers(h) AS TABLE
SELECT execution_id FROM idx.events
WHERE node = (SELECT id FROM idx.nodes WHERE hash = h) AND direction = 'out';

-- The executions that read artifact `h`.
CREATE OR REPLACE MACRO consumers(h) AS TABLE
SELECT execution_id FROM idx.events
WHERE node = (SELECT id FROM idx.nodes WHERE hash = h) AND direction = 'in';

-- Internal to the query API: the edges (node ids, src -> dst) of the cone upstream of node
-- `start` (cone_up) or downstream of it (cone_down). A set-semantics UNION over edges ends on
-- cycles without the `recurring` check, which makes it about three times faster on deep
-- chains; the API derives depths with a breadth-first walk over the returned edges.
CREATE OR REPLACE MACRO cone_up(start) AS TABLE
WITH RECURSIVE walk(src, dst) AS (
    SELECT child, parent FROM idx.lineage_graph WHERE child = start
    UNION
    SELECT g.child, g.parent FROM walk AS w JOIN idx.lineage_graph AS g ON g.child = w.dst
)
SELECT src, dst FROM walk;

CREATE OR REPLACE MACRO cone_down(start) AS TABLE
WITH RECURSIVE walk(src, dst) AS (
    SELECT parent, child FROM idx.lineage_graph WHERE parent = start
    UNION
    SELECT g.parent, g.child FROM walk AS w JOIN idx.lineage_graph AS g ON g.parent = w.dst
)
SELECT src, dst FROM walk;
