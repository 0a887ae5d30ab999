package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestProgressLines: the terminal display of the shared SQL pass's records
// (as pipeline logs them) names the experiments, the step, the template
// statement, the percentage and the estimates.
func TestProgressLines(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(&progressHandler{w: &buf}).With("run_id", "r1", "experiments", []string{"a", "b"})
	log.Info("sql statement", "phase", "sql", "step", 3, "of", 16, "statement", "sql events@v5 1/2", "estimate_s", 12.5)
	log.Info("sql progress", "phase", "sql", "step", 3, "of", 16, "statement", "sql events@v5 1/2", "percent", 47.5, "rows_processed", 10, "rows_total", 20, "statement_left_s", 3.1)
	log.Info("sql statement done", "phase", "sql", "step", 3, "of", 16, "statement", "sql events@v5 1/2", "ms", 812.5)
	log.Info("sql statement", "phase", "sql", "step", 4, "of", 16, "statement", "sql unit_metrics@v5 1/1")
	log.Info("sql progress", "phase", "sql", "step", 4, "of", 16, "statement", "sql unit_metrics@v5 1/1", "percent", 0.4, "rows_processed", 1, "rows_total", 250)
	log.Info("sql pass", "phase", "sql", "of", 16, "statements", []string{"sql traces@v6 1/4"})
	log.Info("sql statement", "phase", "sql", "stage", "incremental pass", "step", 2, "statement", "sql incr_load@v3 2/9")
	log.Info("sql progress", "phase", "sql", "stage", "incremental pass", "step", 2, "statement", "sql incr_load@v3 2/9", "percent", 12.5, "rows_processed", 1, "rows_total", 8)
	log.Info("sql statement done", "phase", "sql", "stage", "incremental state save", "step", 1, "statement", "sql incr_carry@v2 1/11", "ms", 5.5)
	want := []string{
		"▸ a b                      sql              3/16 events@v5 1/2 (about 12.5 s left in the pass, from the previous night)",
		"▸ a b                      sql              3/16 events@v5 1/2 47.5% (about 3.1 s left in it)",
		"▸ a b                      sql              3/16 events@v5 1/2 done in 812.5 ms",
		"▸ a b                      sql              4/16 unit_metrics@v5 1/1",
		"▸ a b                      sql              4/16 unit_metrics@v5 1/1 0.4%",
		"▸ a b                      sql              16 statements",
		"▸ a b                      sql              incremental pass, step 2: incr_load@v3 2/9",
		"▸ a b                      sql              incremental pass, step 2: incr_load@v3 2/9 12.5%",
		"▸ a b                      sql              incremental state save, step 1: incr_carry@v2 1/11 done in 5.5 ms",
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
