-- file_check v1: decode every column of one Parquet file, to find which
-- file of a failed scan is damaged (run only after a scan failed).
-- Parameters: file.
SELECT count(*) AS n, min(COLUMNS(*))
FROM read_parquet($file, hive_partitioning = false)
