-- file_metadata v1: row count and writer of one Parquet file, from its footer.
-- Parameters: file.
SELECT CAST(num_rows AS BIGINT) AS num_rows, coalesce(created_by, '') AS created_by
FROM parquet_file_metadata($file)
