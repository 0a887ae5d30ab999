package replay

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verity-analytics/verity/pipeline"
	"github.com/verity-analytics/verity/pipeline/expspec"
)

func TestParseTolerance(t *testing.T) {
	tests := []struct {
		in      string
		col     string
		want    Tolerance
		wantErr bool
	}{
		{"p_value=abs:1e-6", "p_value", Tolerance{"abs", 1e-6}, false},
		{"mean_control=rel:0.001", "mean_control", Tolerance{"rel", 0.001}, false},
		{"*=rel:1e-3", "*", Tolerance{"rel", 1e-3}, false},
		{"n_control=exact", "n_control", Tolerance{Kind: "exact"}, false},
		{"p_value=abs:-1", "", Tolerance{}, true},
		{"p_value=abs:NaN", "", Tolerance{}, true},
		{"p_value=abs:Inf", "", Tolerance{}, true},
		{"p_value=near:1", "", Tolerance{}, true},
		{"p_value", "", Tolerance{}, true},
		{"=abs:1", "", Tolerance{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			col, tol, err := ParseTolerance(tc.in)
			if tc.wantErr {
				if err == nil || !errors.Is(err, expspec.ErrUsage) {
					t.Fatalf("want a usage error, got %v", err)
				}
				return
			}
			if err != nil || col != tc.col || tol != tc.want {
				t.Fatalf("got %q %+v %v, want %q %+v", col, tol, err, tc.col, tc.want)
			}
		})
	}
}

func TestWithin(t *testing.T) {
	rel := Tolerance{"rel", 1e-9}
	tests := []struct {
		ours, theirs string
		tol          Tolerance
		want         bool
	}{
		{"0.5", "0.5", rel, true},
		{"", "", rel, true},
		{"", "0", rel, false},
		{"0.1", "0.1000000000000001", rel, true},
		{"0.1", "0.1001", rel, false},
		{"1000", "1000.0000001", rel, true},
		{"0.1", "0.1001", Tolerance{"abs", 0.001}, true},
		{"0.1", "0.102", Tolerance{"abs", 0.001}, false},
		{"12", "12.0", Tolerance{Kind: "exact"}, false},
		{"ok", "ok", rel, true},
		{"ok", "n<2", rel, false},
		{"true", "false", rel, false},
		{"NaN", "NaN", Tolerance{"abs", 1}, true}, // equal text
		{"NaN", "1", Tolerance{"abs", 1e300}, false},
	}
	for _, tc := range tests {
		if got := withinTolerance(tc.ours, tc.theirs, tc.tol); got != tc.want {
			t.Errorf("withinTolerance(%q, %q, %v) = %v, want %v", tc.ours, tc.theirs, tc.tol, got, tc.want)
		}
	}
}

func TestCompareSnapshot(t *testing.T) {
	results := "experiment,cohort,metric,variant,n_control,mean_control,p_value,status\n" +
		"e,(all),m,t,10,0.5,0.01,ok\n" +
		"e,a/x,m,t,4,0.25,,n<2\n"
	table, err := readResultsCSV([]byte(results))
	if err != nil {
		t.Fatal(err)
	}
	head := "experiment,cohort,metric,variant,column,value\n"
	tests := []struct {
		name        string
		snapshot    string
		tols        Tolerances
		wantDiffs   []string // cohort/column/theirs
		wantMissing int
		wantOther   int
		wantErr     string
	}{
		{"match", head + "e,(all),m,t,n_control,10\ne,(all),m,t,mean_control,0.5000000000001\ne,a/x,m,t,p_value,\ne,a/x,m,t,status,n<2\n", Tolerances{}, nil, 0, 0, ""},
		{"one number differs", head + "e,(all),m,t,n_control,10\ne,(all),m,t,p_value,0.02\n", Tolerances{}, []string{"(all)/p_value/0.02"}, 0, 0, ""},
		{"within a column tolerance", head + "e,(all),m,t,p_value,0.0100001\n", Tolerances{PerColumn: map[string]Tolerance{"p_value": {"abs", 1e-6}}}, nil, 0, 0, ""},
		{"outside the default", head + "e,(all),m,t,p_value,0.0100001\n", Tolerances{Default: Tolerance{"rel", 1e-9}}, []string{"(all)/p_value/0.0100001"}, 0, 0, ""},
		{"row missing", head + "e,b/z,m,t,n_control,3\ne,b/z,m,t,p_value,0.1\n", Tolerances{}, nil, 1, 0, ""},
		{"other experiment skipped", head + "f,(all),m,t,n_control,99\ne,(all),m,t,n_control,10\n", Tolerances{}, nil, 0, 1, ""},
		{"columns reordered", "value,column,variant,metric,cohort,experiment\n10,n_control,t,m,(all),e\n", Tolerances{}, nil, 0, 0, ""},
		{"unknown column", head + "e,(all),m,t,lift,1\n", Tolerances{}, nil, 0, 0, `column "lift"`},
		{"key column", head + "e,(all),m,t,cohort,(all)\n", Tolerances{}, nil, 0, 0, `column "cohort"`},
		{"repeated line", head + "e,(all),m,t,n_control,10\ne,(all),m,t,n_control,10\n", Tolerances{}, nil, 0, 0, "repeats line 2"},
		{"bad header", "a,b,c,d,e,f\n", Tolerances{}, nil, 0, 0, "lacks"},
		{"short line", head + "e,(all),m\n", Tolerances{}, nil, 0, 0, "wrong number of fields"},
		{"tolerance for an unknown column", head, Tolerances{PerColumn: map[string]Tolerance{"lift": {"abs", 1}}}, nil, 0, 0, "--tol lift"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := &AgainstReport{Experiment: "e", Snapshot: "snap.csv"}
			err := compareSnapshot(rep, table, strings.NewReader(tc.snapshot), tc.tols)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || ReplayExitCode(err) != pipeline.ExitConfig {
					t.Fatalf("want a usage error with %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range rep.Diffs {
				got = append(got, d.Cohort+"/"+d.Column+"/"+d.Theirs)
			}
			if strings.Join(got, ",") != strings.Join(tc.wantDiffs, ",") {
				t.Errorf("diffs %v, want %v", got, tc.wantDiffs)
			}
			if len(rep.Missing) != tc.wantMissing || rep.OtherExperiments != tc.wantOther {
				t.Errorf("missing %v, other %d; want %d, %d", rep.Missing, rep.OtherExperiments, tc.wantMissing, tc.wantOther)
			}
		})
	}
}

// TestAgainstRun exports a snapshot from a real run, compares the run with
// it, then with a copy that differs in one number.
func TestAgainstRun(t *testing.T) {
	_, manifest := replayFixture(t, "checkout-button.yaml")
	var snap bytes.Buffer
	if err := ExportSnapshot(manifest, nil, &snap); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	os.WriteFile(good, snap.Bytes(), 0o644)
	rep, err := CompareAgainst(manifest, good, Tolerances{})
	if err != nil || !rep.OK() {
		t.Fatalf("snapshot of the run itself: %v", err)
	}
	if want := strings.Count(snap.String(), "\n") - 1; rep.Compared != want {
		t.Errorf("compared %d numbers, want %d", rep.Compared, want)
	}

	lines := strings.Split(snap.String(), "\n")
	var changed string
	for i, l := range lines {
		if strings.Contains(l, ",abs_effect,") {
			f := strings.Split(l, ",")
			f[len(f)-1] = "0.123456"
			lines[i] = strings.Join(f, ",")
			changed = f[len(f)-1]
			break
		}
	}
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte(strings.Join(lines, "\n")), 0o644)
	rep, err = CompareAgainst(manifest, bad, Tolerances{})
	var am *AgainstMismatchError
	if !errors.As(err, &am) || ReplayExitCode(err) != pipeline.ExitMismatch {
		t.Fatalf("want an AgainstMismatchError (exit 70), got %v", err)
	}
	if len(rep.Diffs) != 1 || rep.Diffs[0].Theirs != changed || rep.Diffs[0].Column != "abs_effect" {
		t.Fatalf("diffs %+v, want the one changed abs_effect", rep.Diffs)
	}
	var out bytes.Buffer
	rep.WriteText(&out)
	if !strings.Contains(out.String(), changed) || !strings.Contains(out.String(), rep.Diffs[0].Ours) {
		t.Errorf("report does not print both numbers:\n%s", out.String())
	}

	// A results.csv edited after the run is refused, not compared: exit 70
	// naming the file, as a replay of that run does.
	res := filepath.Join(filepath.Dir(manifest), "results.csv")
	b, _ := os.ReadFile(res)
	os.WriteFile(res, append(b, '\n'), 0o644)
	if _, err := CompareAgainst(manifest, good, Tolerances{}); ReplayExitCode(err) != pipeline.ExitMismatch || !strings.Contains(fmtErr(err), "results.csv") || !strings.Contains(fmtErr(err), "edited since the run") {
		t.Errorf("edited results.csv: exit %d: %v", ReplayExitCode(err), err)
	}
	var snapOut bytes.Buffer
	if err := ExportSnapshot(manifest, nil, &snapOut); ReplayExitCode(err) != pipeline.ExitMismatch || !strings.Contains(fmtErr(err), "results.csv") {
		t.Errorf("export from an edited results.csv: exit %d: %v", ReplayExitCode(err), err)
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
