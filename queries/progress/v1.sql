-- progress v1: lets duckdb_query_progress report the running statement's
-- percentage (pipeline/progress.go reads it from another goroutine). The
-- progress bar is refreshed, never printed, and changes no result.
SET enable_progress_bar = true;
SET enable_progress_bar_print = false;
SET progress_bar_time = 0;
