package engine

import (
	"strings"
	"testing"
)

func TestBoundParams(t *testing.T) {
	sqlText := "-- uses $not_a_param in a comment\nSELECT $b, $a, $a FROM x -- and $c\n"
	args, err := BindParams(sqlText, map[string]any{"a": 1, "b": 2, "unused": 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(args) != 2 {
		t.Fatalf("want 2 args (a, b), got %v", args)
	}
	if _, err := BindParams("SELECT $missing", map[string]any{}); err == nil || !strings.Contains(err.Error(), "$missing") {
		t.Fatalf("want an error naming $missing, got %v", err)
	}
}
