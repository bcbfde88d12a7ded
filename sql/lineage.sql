-- title: lineage macros, walking artifact -> execution -> artifact edges
-- `USING KEY (hash)` keeps one row per artifact, so deep chains stay linear; the
-- `recurring` check stops at artifacts already reached (content hashes can form cycles)
-- and keeps the smallest depth, as a breadth-first walk would.

-- Every artifact upstream of artifact `h`, with its distance in hops (1 = a direct input).
CREATE OR REPLACE MACRO ancestors(h) AS TABLE
WITH RECURSIVE walk(hash, depth) USING KEY (hash) AS (
    SELECT h::VARCHAR, 0
    UNION
    SELECT DISTINCT ON (e.parent_hash) e.parent_hash, w.depth + 1
    FROM walk AS w JOIN idx.lineage_edges AS e ON e.child_hash = w.hash
    WHERE NOT EXISTS (SELECT 1 FROM recurring.walk AS r WHERE r.hash = e.parent_hash)
)
SELECT hash, depth FROM walk WHERE depth > 0;

-- Every artifact downstream of artifact `h`, with its distance in hops.
CREATE OR REPLACE MACRO descendants(h) AS TABLE
WITH RECURSIVE walk(hash, depth) USING KEY (hash) AS (
    SELECT h::VARCHAR, 0
    UNION
    SELECT DISTINCT ON (e.child_hash) e.child_hash, w.depth + 1
    FROM walk AS w JOIN idx.lineage_edges AS e ON e.parent_hash = w.hash
    WHERE NOT EXISTS (SELECT 1 FROM recurring.walk AS r WHERE r.hash = e.child_hash)
)
SELECT hash, depth FROM walk WHERE depth > 0;

-- One hop up: the inputs of the executions that produced `h`.
CREATE OR REPLACE MACRO parents(h) AS TABLE
SELECT DISTINCT parent_hash AS hash, execution_id FROM idx.lineage_edges WHERE child_hash = h;

-- One hop down: the outputs of the executions that consumed `h`.
CREATE OR REPLACE MACRO children(h) AS TABLE
SELECT DISTINCT child_hash AS hash, execution_id FROM idx.lineage_edges WHERE parent_hash = h;

-- The executions that wrote artifact `h` (usually one; the same bytes may be made twice).
CREATE OR REPLACE MACRO producers(h) AS TABLE
SELECT execution_id FROM idx.events WHERE artifact_hash = h AND direction = 'out';

-- The executions that read artifact `h`.
CREATE OR REPLACE MACRO consumers(h) AS TABLE
SELECT execution_id FROM idx.events WHERE artifact_hash = h AND direction = 'in';
