-- settings v1: the DuckDB version and every setting Verity applies, for the
-- manifest. Parameters: names (the settings to report).
SELECT 'version' AS name, library_version AS value FROM pragma_version()
UNION ALL
SELECT name, value FROM duckdb_settings() WHERE list_contains($names, name)
ORDER BY name
