-- title: collapse rows of a staged chunk that share a key (only run when some do)
-- The {{keep}} row by `at` wins; ties are broken by content, so every site and every load
-- order picks the same row.
CREATE OR REPLACE TEMP TABLE staging_{{table}} AS
SELECT * FROM staging_{{table}}
QUALIFY row_number() OVER (PARTITION BY {{key}} ORDER BY "at" {{dir}}, md5(ROW({{columns}})::VARCHAR) {{dir}}) = 1;
