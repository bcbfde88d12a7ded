-- title: one table read straight from its Parquet partitions, deduplicated like the index
-- Used when there is no local index (a remote queried in place, or the index is busy).
CREATE OR REPLACE VIEW idx.{{table}} AS
SELECT {{columns}} FROM read_parquet({{files}}, union_by_name = true)
QUALIFY row_number() OVER (PARTITION BY {{key}} ORDER BY "at" {{dir}}, md5(ROW({{columns}})::VARCHAR) {{dir}}) = 1;
