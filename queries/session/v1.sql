-- session v1: settings applied to every DuckDB session before any input is
-- read. read_parquet(union_by_name) casts a TIMESTAMP column to TIMESTAMPTZ
-- through the session time zone when one file of a glob has each type, so
-- the zone is pinned to UTC (the contract's zone for naive timestamps).
SET TimeZone = 'UTC'
