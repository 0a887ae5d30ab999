-- incr_swap v1 (internal, issue 18 item 2): exchange tonight's
-- assignment and event_units with last night's tables of the touched units
-- (incr_other_assignment, incr_other_units; incr_events@v2), so that the
-- pinned sufstats@v3 and quality@v3 (and unit_metrics@v5's view
-- unit_values, bound by name when read) run over either. Running it twice
-- restores the tables. No parameters.
ALTER TABLE assignment RENAME TO incr_swap_assignment;

ALTER TABLE incr_other_assignment RENAME TO assignment;

ALTER TABLE incr_swap_assignment RENAME TO incr_other_assignment;

ALTER TABLE event_units RENAME TO incr_swap_units;

ALTER TABLE incr_other_units RENAME TO event_units;

ALTER TABLE incr_swap_units RENAME TO incr_other_units;
