-- incr_compact v1 (internal, issue 18 item 2): rewrite the state's
-- per-unit tables whole, as one generation, from the generations listed
-- ($st_units, $st_unitev; tonight's delta among them): per (experiment,
-- unit) the row of the newest generation holding it, and that
-- generation's unitev rows of the unit (a generation holds every unitev
-- row of each unit it holds). Every row gets $gen_no. The caller runs it
-- when the deltas pile up (incrementalCompactAfter generations, or more
-- delta rows than the base holds), so that a night reads a bounded number
-- of files. Parameters: st_units, st_unitev, gen_no, out_units, out_unitev.
CREATE TEMP TABLE incr_latest AS
SELECT exp_no, unit_id, min_var, max_var, exposure_us, persona, gen_no
FROM (
    SELECT s.*, row_number() OVER (PARTITION BY s.exp_no, s.unit_id ORDER BY s.gen_no DESC) AS latest
    FROM read_parquet($st_units) AS s
)
WHERE latest = 1;

COPY (
    SELECT exp_no, unit_id, min_var, max_var, exposure_us, persona, CAST($gen_no AS BIGINT) AS gen_no
    FROM incr_latest
    ORDER BY exp_no, unit_id
) TO $out_units (FORMAT parquet);

COPY (
    SELECT e.* EXCLUDE (gen_no), CAST($gen_no AS BIGINT) AS gen_no
    FROM read_parquet($st_unitev) AS e
    SEMI JOIN incr_latest AS l ON l.exp_no = e.exp_no AND l.unit_id = e.unit_id AND l.gen_no = e.gen_no
    ORDER BY e.win_no, e.exp_no, e.unit_id
) TO $out_unitev (FORMAT parquet);

INSERT INTO incr_checks
SELECT 'fact: units compacted', count(*) FROM incr_latest;

DROP TABLE incr_latest;
