package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/queries"
)

// TestNoSwapTemplates checks traces@v8 and events@v7 (issue 18): each is
// the previous release's statements, unchanged, between a statement that
// disables DuckDB's build/probe side swap and one that resets it; run the
// way the pipeline runs a template (statement by statement on the
// session's connection), the setting takes effect (a join's plan changes)
// and is gone afterwards (the same plan as a fresh session's, and
// current_setting back to empty), so no later template is affected.
func TestNoSwapTemplates(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ name, version, previous string }{
		{"traces", "v8", "v7"},
		{"events", "v7", "v6"},
	} {
		t.Run(c.name+"@"+c.version, func(t *testing.T) {
			tmpl, err := queries.Load(queries.FS(), c.name, c.version)
			if err != nil {
				t.Fatal(err)
			}
			prev, err := queries.Load(queries.FS(), c.name, c.previous)
			if err != nil {
				t.Fatal(err)
			}
			stmts, before := Statements(tmpl.Text), Statements(prev.Text)
			if len(stmts) != len(before)+2 {
				t.Fatalf("%d statements, want %s@%s's %d + SET + RESET", len(stmts), c.name, c.previous, len(before))
			}
			for i, s := range before {
				if stmts[i+1] != s {
					t.Errorf("statement %d differs from %s@%s's statement %d", i+2, c.name, c.previous, i+1)
				}
			}
			set, reset := codeOf(stmts[0]), codeOf(stmts[len(stmts)-1])
			if set != "SET disabled_optimizers = 'build_side_probe_side';" || reset != "RESET disabled_optimizers;" {
				t.Fatalf("first and last statements %q, %q; want the SET and the RESET", set, reset)
			}
			checkSetAndReset(ctx, t, stmts[0], stmts[len(stmts)-1], "build_side_probe_side")
		})
	}
}

// TestJoinOrderTemplates checks events@v12 and v13 (issue 18, part 5):
// events@v12 is events@v7 with its SET disabling the join order optimizer
// as well (the same code in every other statement), events@v13 is
// events@v4's statements between that SET and a RESET; the setting takes
// effect and is gone after the RESET, as for TestNoSwapTemplates.
func TestJoinOrderTemplates(t *testing.T) {
	ctx := context.Background()
	const set = "SET disabled_optimizers = 'build_side_probe_side,join_order';"
	for _, c := range []struct {
		version, previous string
		wrapped           bool // previous has no SET/RESET of its own
	}{
		{"v12", "v7", false},
		{"v13", "v4", true},
	} {
		t.Run("events@"+c.version, func(t *testing.T) {
			tmpl, err := queries.Load(queries.FS(), "events", c.version)
			if err != nil {
				t.Fatal(err)
			}
			prev, err := queries.Load(queries.FS(), "events", c.previous)
			if err != nil {
				t.Fatal(err)
			}
			stmts, before := Statements(tmpl.Text), Statements(prev.Text)
			if c.wrapped {
				before = append(append([]string{set}, before...), "RESET disabled_optimizers;")
			}
			if len(stmts) != len(before) {
				t.Fatalf("%d statements, want %d", len(stmts), len(before))
			}
			for i := 1; i < len(stmts); i++ {
				if codeOf(stmts[i]) != codeOf(before[i]) {
					t.Errorf("statement %d differs from events@%s's", i+1, c.previous)
				}
			}
			if codeOf(stmts[0]) != set || codeOf(stmts[len(stmts)-1]) != "RESET disabled_optimizers;" {
				t.Fatalf("first and last statements %q, %q; want %q and the RESET", codeOf(stmts[0]), codeOf(stmts[len(stmts)-1]), set)
			}
			checkSetAndReset(ctx, t, stmts[0], stmts[len(stmts)-1], "join_order,build_side_probe_side") // as DuckDB lists them
		})
	}
}

// codeOf returns a statement without its comment lines, trimmed.
func codeOf(stmt string) string {
	var code []string
	for _, line := range strings.Split(stmt, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		if strings.TrimSpace(line) != "" {
			code = append(code, strings.TrimSpace(line))
		}
	}
	return strings.Join(code, " ")
}

// checkSetAndReset runs set and reset on a session's connection and checks
// that a join whose text puts the large table on the build side is planned
// differently in between, and as in a fresh session after the reset.
func checkSetAndReset(ctx context.Context, t *testing.T, set, reset, want string) {
	t.Helper()
	s, err := OpenSession(ctx, Engine{Threads: 1}, queries.FS())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, q := range []string{
		"CREATE TEMP TABLE small AS SELECT range AS k FROM range(10)",
		"CREATE TEMP TABLE big AS SELECT range % 1000 AS k FROM range(100000)",
	} {
		if _, err := s.Conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	plan := func() (string, string) {
		t.Helper()
		var setting, p, kind string
		if err := s.Conn.QueryRowContext(ctx, "SELECT current_setting('disabled_optimizers')").Scan(&setting); err != nil {
			t.Fatal(err)
		}
		// The right child of a hash join is its build side.
		if err := s.Conn.QueryRowContext(ctx, "EXPLAIN SELECT count(*) FROM small JOIN big USING (k)").Scan(&kind, &p); err != nil {
			t.Fatal(err)
		}
		return setting, p
	}
	setting0, plan0 := plan()
	if setting0 != "" {
		t.Fatalf("a fresh session has disabled_optimizers %q", setting0)
	}
	if _, err := s.Conn.ExecContext(ctx, set); err != nil {
		t.Fatalf("%q: %v", set, err)
	}
	setting1, plan1 := plan()
	if setting1 != want {
		t.Errorf("after the SET: disabled_optimizers %q", setting1)
	}
	if plan1 == plan0 {
		t.Errorf("the SET did not change the plan of a join with the large table on the build side:\n%s", plan1)
	}
	if _, err := s.Conn.ExecContext(ctx, reset); err != nil {
		t.Fatalf("%q: %v", reset, err)
	}
	setting2, plan2 := plan()
	if setting2 != "" || plan2 != plan0 {
		t.Errorf("after the RESET: disabled_optimizers %q, plan changed: %v", setting2, plan2 != plan0)
	}
}
