-- file_schema v1: the columns of one Parquet file as DuckDB reads them.
-- Parameters: file.
SELECT column_name, column_type
FROM (DESCRIBE SELECT * FROM read_parquet($file, hive_partitioning = false))
ORDER BY column_name
