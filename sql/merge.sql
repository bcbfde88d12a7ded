-- title: merge staged rows of one keyed table into the index
-- Rows with the same key resolve to one: the {{keep}} by `at`, ties broken by content so that
-- every site and every load order picks the same row.
CREATE OR REPLACE TEMP TABLE staged_{{table}} AS
SELECT * FROM staging_{{table}}
QUALIFY row_number() OVER (PARTITION BY {{key}} ORDER BY "at" {{dir}}, md5(ROW({{columns}})::VARCHAR) {{dir}}) = 1;

DELETE FROM idx.{{table}} AS t USING staged_{{table}} AS s
WHERE {{key_match}}
  AND (s."at" {{op}} t."at" OR (s."at" = t."at" AND md5(ROW({{s_columns}})::VARCHAR) {{op}} md5(ROW({{t_columns}})::VARCHAR)));

INSERT INTO idx.{{table}}
SELECT s.* FROM staged_{{table}} AS s ANTI JOIN idx.{{table}} AS t ON {{key_match}};
