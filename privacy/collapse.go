package privacy

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// ErrBelowMinimum is returned by Collapse when even all leaves together
// have a noisy count below the minimum: nothing may be released.
var ErrBelowMinimum = errors.New("privacy: the whole taxonomy is below the minimum cell size; no cohort is released")

// Cohort is one released cohort: a set of taxonomy leaves released as one
// cell.
type Cohort struct {
	// Label is the leaf's own path when a leaf is released alone, or
	// "P/*" for the remainder bucket of internal node P ("*" for the root):
	// the leaves under P that were not released on their own.
	Label string `json:"label"`
	// Leaves are the taxonomy leaves the cohort covers, sorted.
	Leaves []string `json:"leaves"`
	// CollapsedFrom lists, sorted, every label merged into this cohort on
	// its way up: the leaves that were below the minimum, the remainder
	// buckets ("P/*") that were below the minimum and so moved further up,
	// and, for the root bucket only, the released cohorts it had to absorb
	// (see Collapse). Empty for a leaf released alone.
	CollapsedFrom []string `json:"collapsed_from"`
	// NoisyCount is the sum of the leaves' noisy counts.
	NoisyCount int64 `json:"noisy_count"`
}

// Collapse decides which cohorts to release from the noisy unit counts of
// the taxonomy's leaves (each count summed over all arms, so treatment and
// control are judged together). The taxonomy is the set of '/'-separated
// leaf paths; their prefixes are its internal nodes and "" is the root.
//
// The rule, bottom-up (deepest nodes first, children in sorted order):
//
//  1. A leaf whose count is ≥ minSize is released alone, labelled with its path.
//  2. A leaf below minSize goes into its parent's remainder bucket.
//  3. When all of internal node P's children are done, P's bucket (its own
//     small leaves plus whatever its child nodes' buckets passed up) is
//     released as "P/*" if its count is ≥ minSize; otherwise it passes up into
//     P's parent's bucket. An empty bucket is dropped.
//  4. At the root the bucket is released as "*" if its count is ≥ minSize. If
//     it is non-empty and below minSize, it absorbs already released cohorts,
//     smallest count first (ties by label), until it reaches minSize; "*" then
//     lists the absorbed labels in CollapsedFrom. If even everything
//     together is below minSize, Collapse returns ErrBelowMinimum and no
//     cohorts.
//
// The released cohorts always partition the leaves, each has a count ≥ minSize,
// and no internal node P is ever released whole beside any of its
// descendants: P's leaves released elsewhere are exactly those missing from
// "P/*". Output is sorted by label.
//
// Every leaf must have a noisy count (a leaf with no units still gets a
// noisy count of its true 0: leaving it out would leak that it is empty),
// counts may be negative, and minSize must be ≥ 1. Leaves must be non-empty
// paths of non-empty segments, none "*", none a prefix node of another.
func Collapse(leaves []string, noisyCount map[string]int64, minSize int64) ([]Cohort, error) {
	if minSize < 1 {
		return nil, fmt.Errorf("privacy: collapse: minimum cell size %d: want ≥ 1", minSize)
	}
	if len(leaves) == 0 {
		return nil, errors.New("privacy: collapse: empty taxonomy")
	}
	sorted := append([]string(nil), leaves...)
	sort.Strings(sorted)
	isLeaf := make(map[string]bool, len(sorted))
	for i, leaf := range sorted {
		if err := checkPath(leaf); err != nil {
			return nil, err
		}
		if i > 0 && sorted[i-1] == leaf {
			return nil, fmt.Errorf("privacy: collapse: leaf %q listed twice", leaf)
		}
		isLeaf[leaf] = true
	}
	children := map[string][]string{} // node → its children
	linked := map[string]bool{}       // nodes already linked to their parent
	for _, leaf := range sorted {
		for child := leaf; child != "" && !linked[child]; child = parentOf(child) {
			linked[child] = true
			children[parentOf(child)] = append(children[parentOf(child)], child)
		}
	}
	for _, leaf := range sorted {
		if len(children[leaf]) > 0 {
			return nil, fmt.Errorf("privacy: collapse: %q is both a leaf and an internal node", leaf)
		}
		if _, ok := noisyCount[leaf]; !ok {
			return nil, fmt.Errorf("privacy: collapse: leaf %q has no noisy count", leaf)
		}
	}
	if len(noisyCount) != len(sorted) {
		var extra []string
		for k := range noisyCount {
			if !isLeaf[k] {
				extra = append(extra, k)
			}
		}
		sort.Strings(extra)
		return nil, fmt.Errorf("privacy: collapse: noisy counts for unknown cohorts %q", extra)
	}
	for _, kids := range children {
		sort.Strings(kids)
	}

	c := collapser{isLeaf: isLeaf, children: children, count: noisyCount, minSize: minSize}
	root, err := c.walk("")
	if err != nil {
		return nil, err
	}
	if len(root.leaves) > 0 {
		if root.count < minSize {
			// Absorb released cohorts, smallest first, until the root
			// bucket reaches minSize.
			sort.Slice(c.released, func(i, j int) bool {
				a, b := c.released[i], c.released[j]
				if a.NoisyCount != b.NoisyCount {
					return a.NoisyCount < b.NoisyCount
				}
				return a.Label < b.Label
			})
			for root.count < minSize && len(c.released) > 0 {
				x := c.released[0]
				c.released = c.released[1:]
				if root.count, err = addCount(root.count, x.NoisyCount); err != nil {
					return nil, err
				}
				root.leaves = append(root.leaves, x.Leaves...)
				root.from = append(append(root.from, x.Label), x.CollapsedFrom...)
			}
			if root.count < minSize {
				return nil, ErrBelowMinimum
			}
		}
		c.release("*", root)
	}
	sort.Slice(c.released, func(i, j int) bool { return c.released[i].Label < c.released[j].Label })
	return c.released, nil
}

type bucket struct {
	leaves []string
	from   []string
	count  int64
}

type collapser struct {
	isLeaf   map[string]bool
	children map[string][]string
	count    map[string]int64
	minSize  int64
	released []Cohort
}

// walk processes node's subtree and returns its remainder bucket.
func (c *collapser) walk(node string) (bucket, error) {
	var b bucket
	var err error
	for _, child := range c.children[node] {
		if c.isLeaf[child] {
			n := c.count[child]
			if n >= c.minSize {
				c.released = append(c.released, Cohort{Label: child, Leaves: []string{child}, CollapsedFrom: []string{}, NoisyCount: n})
				continue
			}
			b.leaves = append(b.leaves, child)
			b.from = append(b.from, child)
			if b.count, err = addCount(b.count, n); err != nil {
				return bucket{}, err
			}
			continue
		}
		sub, err := c.walk(child)
		if err != nil {
			return bucket{}, err
		}
		if len(sub.leaves) == 0 {
			continue
		}
		if sub.count >= c.minSize {
			c.release(child+"/*", sub)
			continue
		}
		b.leaves = append(b.leaves, sub.leaves...)
		b.from = append(append(b.from, child+"/*"), sub.from...)
		if b.count, err = addCount(b.count, sub.count); err != nil {
			return bucket{}, err
		}
	}
	return b, nil
}

func (c *collapser) release(label string, b bucket) {
	leaves := append([]string(nil), b.leaves...)
	from := append([]string{}, b.from...)
	sort.Strings(leaves)
	sort.Strings(from)
	c.released = append(c.released, Cohort{Label: label, Leaves: leaves, CollapsedFrom: from, NoisyCount: b.count})
}

func addCount(a, b int64) (int64, error) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, errors.New("privacy: collapse: noisy counts overflow int64")
	}
	return a + b, nil
}

func checkPath(p string) error {
	if p == "" {
		return errors.New("privacy: collapse: empty leaf path")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "*" {
			return fmt.Errorf("privacy: collapse: leaf %q: segments must be non-empty and not \"*\"", p)
		}
	}
	return nil
}

// parentOf returns the parent node of a path ("" for a top-level segment).
func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}
