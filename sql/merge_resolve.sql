-- title: merge a staged chunk whose keys are partly in the index already
DELETE FROM idx.{{table}} AS t USING staging_{{table}} AS s
WHERE {{key_match}}
  AND (s."at" {{op}} t."at" OR (s."at" = t."at" AND md5(ROW({{s_columns}})::VARCHAR) {{op}} md5(ROW({{t_columns}})::VARCHAR)));

INSERT INTO idx.{{table}} ({{insert_columns}})
SELECT s.* FROM staging_{{table}} AS s ANTI JOIN idx.{{table}} AS t ON {{key_match}};
