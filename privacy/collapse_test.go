package privacy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCollapse(t *testing.T) {
	tests := []struct {
		name    string
		counts  map[string]int64
		minSize int64
		want    []Cohort
		err     error
	}{
		{
			name:    "all large: leaves released alone",
			counts:  map[string]int64{"power/mobile": 50, "power/desktop": 20, "casual": 10},
			minSize: 10,
			want: []Cohort{
				{Label: "casual", Leaves: []string{"casual"}, CollapsedFrom: []string{}, NoisyCount: 10},
				{Label: "power/desktop", Leaves: []string{"power/desktop"}, CollapsedFrom: []string{}, NoisyCount: 20},
				{Label: "power/mobile", Leaves: []string{"power/mobile"}, CollapsedFrom: []string{}, NoisyCount: 50},
			},
		},
		{
			name:    "small leaves form their parent's remainder",
			counts:  map[string]int64{"power/mobile": 50, "power/desktop": 6, "power/tablet": 5, "casual/mobile": 40},
			minSize: 10,
			want: []Cohort{
				{Label: "casual/mobile", Leaves: []string{"casual/mobile"}, CollapsedFrom: []string{}, NoisyCount: 40},
				{Label: "power/*", Leaves: []string{"power/desktop", "power/tablet"}, CollapsedFrom: []string{"power/desktop", "power/tablet"}, NoisyCount: 11},
				{Label: "power/mobile", Leaves: []string{"power/mobile"}, CollapsedFrom: []string{}, NoisyCount: 50},
			},
		},
		{
			name:    "small remainders move up to the root",
			counts:  map[string]int64{"power/mobile": 50, "power/desktop": 5, "power/tablet": 3, "casual/mobile": 40, "casual/desktop": 2},
			minSize: 10,
			want: []Cohort{
				{Label: "*", Leaves: []string{"casual/desktop", "power/desktop", "power/tablet"},
					CollapsedFrom: []string{"casual/*", "casual/desktop", "power/*", "power/desktop", "power/tablet"}, NoisyCount: 10},
				{Label: "casual/mobile", Leaves: []string{"casual/mobile"}, CollapsedFrom: []string{}, NoisyCount: 40},
				{Label: "power/mobile", Leaves: []string{"power/mobile"}, CollapsedFrom: []string{}, NoisyCount: 50},
			},
		},
		{
			name:    "deep remainder released at its own level",
			counts:  map[string]int64{"x/y/z1": 4, "x/y/z2": 7, "x/w": 20},
			minSize: 10,
			want: []Cohort{
				{Label: "x/w", Leaves: []string{"x/w"}, CollapsedFrom: []string{}, NoisyCount: 20},
				{Label: "x/y/*", Leaves: []string{"x/y/z1", "x/y/z2"}, CollapsedFrom: []string{"x/y/z1", "x/y/z2"}, NoisyCount: 11},
			},
		},
		{
			name:    "a whole subtree collapses to P/*",
			counts:  map[string]int64{"a/b": 3, "a/c": 9, "d": 30},
			minSize: 10,
			want: []Cohort{
				{Label: "a/*", Leaves: []string{"a/b", "a/c"}, CollapsedFrom: []string{"a/b", "a/c"}, NoisyCount: 12},
				{Label: "d", Leaves: []string{"d"}, CollapsedFrom: []string{}, NoisyCount: 30},
			},
		},
		{
			name:    "root remainder absorbs the smallest released cohort",
			counts:  map[string]int64{"a": 100, "b": 3, "c": 50},
			minSize: 10,
			want: []Cohort{
				{Label: "*", Leaves: []string{"b", "c"}, CollapsedFrom: []string{"b", "c"}, NoisyCount: 53},
				{Label: "a", Leaves: []string{"a"}, CollapsedFrom: []string{}, NoisyCount: 100},
			},
		},
		{
			name:    "absorbed bucket lists its own history",
			counts:  map[string]int64{"p/q": 6, "p/r": 6, "s": 2, "t": 90},
			minSize: 10,
			want: []Cohort{
				{Label: "*", Leaves: []string{"p/q", "p/r", "s"}, CollapsedFrom: []string{"p/*", "p/q", "p/r", "s"}, NoisyCount: 14},
				{Label: "t", Leaves: []string{"t"}, CollapsedFrom: []string{}, NoisyCount: 90},
			},
		},
		{
			name:    "negative noisy counts",
			counts:  map[string]int64{"a/b": -2, "a/c": 15, "d": 12},
			minSize: 10,
			want: []Cohort{
				{Label: "*", Leaves: []string{"a/b", "d"}, CollapsedFrom: []string{"a/*", "a/b", "d"}, NoisyCount: 10},
				{Label: "a/c", Leaves: []string{"a/c"}, CollapsedFrom: []string{}, NoisyCount: 15},
			},
		},
		{
			name:    "everything below the minimum",
			counts:  map[string]int64{"a": 3, "b/c": 4},
			minSize: 10,
			err:     ErrBelowMinimum,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var leaves []string
			for l := range tt.counts {
				leaves = append(leaves, l)
			}
			got, err := Collapse(leaves, tt.counts, tt.minSize)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Collapse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCollapseErrors(t *testing.T) {
	tests := []struct {
		name    string
		leaves  []string
		counts  map[string]int64
		minSize int64
	}{
		{"minSize 0", []string{"a"}, map[string]int64{"a": 5}, 0},
		{"no leaves", nil, map[string]int64{}, 1},
		{"duplicate", []string{"a", "a"}, map[string]int64{"a": 5}, 1},
		{"leaf is a parent", []string{"a", "a/b"}, map[string]int64{"a": 5, "a/b": 5}, 1},
		{"missing count", []string{"a", "b"}, map[string]int64{"a": 5}, 1},
		{"extra count", []string{"a"}, map[string]int64{"a": 5, "zz": 1}, 1},
		{"empty segment", []string{"a//b"}, map[string]int64{"a//b": 5}, 1},
		{"star segment", []string{"a/*"}, map[string]int64{"a/*": 5}, 1},
		{"trailing slash", []string{"a/"}, map[string]int64{"a/": 5}, 1},
	}
	for _, tt := range tests {
		if got, err := Collapse(tt.leaves, tt.counts, tt.minSize); err == nil {
			t.Errorf("%s: no error, got %+v", tt.name, got)
		}
	}
}

// randomTaxonomy builds leaves under a random tree of depth ≤ 4.
func randomTaxonomy(rng *rand.Rand) []string {
	var leaves []string
	var grow func(prefix string, depth int)
	grow = func(prefix string, depth int) {
		n := 1 + rng.IntN(4)
		for i := range n {
			name := fmt.Sprintf("%s%c", prefix, 'a'+i)
			if depth < 4 && rng.IntN(3) > 0 {
				grow(name+"/", depth+1)
			} else {
				leaves = append(leaves, name)
			}
		}
	}
	grow("", 1)
	return leaves
}

// TestCollapseProperty checks the invariants over seeded random
// taxonomies and noisy counts.
func TestCollapseProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(2026, 11))
	belowMin := 0
	for iter := range 3000 {
		leaves := randomTaxonomy(rng)
		minSize := int64(1 + rng.IntN(30))
		counts := make(map[string]int64, len(leaves))
		var total int64
		for _, l := range leaves {
			counts[l] = int64(rng.IntN(int(2*minSize)+4)) - 3
			total += counts[l]
		}
		internal := map[string]bool{"": true}
		for _, l := range leaves {
			for p := parentOf(l); p != ""; p = parentOf(p) {
				internal[p] = true
			}
		}
		got, err := Collapse(leaves, counts, minSize)
		if errors.Is(err, ErrBelowMinimum) {
			if total >= minSize {
				t.Fatalf("iter %d: ErrBelowMinimum with total %d ≥ minSize %d", iter, total, minSize)
			}
			belowMin++
			continue
		}
		if err != nil {
			t.Fatalf("iter %d: %v", iter, err)
		}
		if total < minSize {
			t.Fatalf("iter %d: released %d cohorts though the total %d < minSize %d", iter, len(got), total, minSize)
		}
		covered := map[string]string{}
		for i, c := range got {
			if i > 0 && got[i-1].Label >= c.Label {
				t.Fatalf("iter %d: output not sorted by label", iter)
			}
			// at least the minimum, and the count is the leaves' sum
			var sum int64
			for _, l := range c.Leaves {
				sum += counts[l]
				if prev, ok := covered[l]; ok {
					t.Fatalf("iter %d: leaf %s in both %s and %s", iter, l, prev, c.Label)
				}
				covered[l] = c.Label
			}
			if c.NoisyCount < minSize || sum != c.NoisyCount {
				t.Fatalf("iter %d: cohort %s count %d (sum %d) below minSize %d", iter, c.Label, c.NoisyCount, sum, minSize)
			}
			// a label is a leaf alone, or P/* for an internal node P
			// covering only leaves under P; never an internal node itself
			switch node, bucket := strings.CutSuffix(c.Label, "*"); {
			case internal[c.Label]:
				t.Fatalf("iter %d: internal node %q released", iter, c.Label)
			case !bucket:
				if _, ok := counts[c.Label]; !ok || len(c.Leaves) != 1 || c.Leaves[0] != c.Label || len(c.CollapsedFrom) != 0 {
					t.Fatalf("iter %d: leaf cohort %+v malformed", iter, c)
				}
			case !internal[strings.TrimSuffix(node, "/")]:
				t.Fatalf("iter %d: bucket %q is not under an internal node", iter, c.Label)
			default:
				for _, l := range c.Leaves {
					if node != "" && !strings.HasPrefix(l, node) && c.Label != "*" {
						t.Fatalf("iter %d: bucket %s holds %s from outside", iter, c.Label, l)
					}
				}
				if !sort.StringsAreSorted(c.Leaves) || !sort.StringsAreSorted(c.CollapsedFrom) || len(c.CollapsedFrom) == 0 {
					t.Fatalf("iter %d: bucket %+v malformed", iter, c)
				}
			}
		}
		// partition: every leaf covered exactly once
		if len(covered) != len(leaves) {
			t.Fatalf("iter %d: %d of %d leaves covered", iter, len(covered), len(leaves))
		}
		// no parent beside its children: no released cohort is a subset
		// of the subtree another released non-bucket label denotes — with
		// leaves and buckets only, disjointness above already implies it;
		// check the label form directly too.
		for _, a := range got {
			for _, b := range got {
				if a.Label != b.Label && !strings.HasSuffix(a.Label, "*") && strings.HasPrefix(b.Label, a.Label+"/") {
					t.Fatalf("iter %d: %s released beside its descendant %s", iter, a.Label, b.Label)
				}
			}
		}
		// deterministic whatever the input order
		shuffled := append([]string(nil), leaves...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		again, err := Collapse(shuffled, counts, minSize)
		if err != nil || !cmp.Equal(got, again) {
			t.Fatalf("iter %d: result depends on the leaf order", iter)
		}
	}
	if belowMin == 0 || belowMin > 1500 {
		t.Errorf("%d of 3000 cases below the minimum: the generator does not exercise both paths", belowMin)
	}
}
