package engine

import (
	"math/big"
	"testing"
)

// A merge of shards redoes the cross-moments' overflow proof on the merged
// cell, so that it flags exactly the cells a single-node pass flags: two
// shards each below the bound whose merged units cross it are flagged, and
// a shard's flagged cell stays flagged.
func TestMergeCrossRedoesTheOverflowProof(t *testing.T) {
	big1 := func(v int64) *big.Int { return big.NewInt(v) }
	// n · 2^62 · 2^62 ≥ 2^126 from n = 4 on.
	max62 := new(big.Int).Lsh(big1(1), 62)
	cell := func(n int64) CrossCell {
		c := CrossCell{MetricA: "a", MetricB: "b", N: n, SumXC: big1(n), SumYC: big1(2 * n), SumCC: big1(3 * n),
			MaxAbs: [4]*big.Int{big1(1), big1(1), max62, max62}}
		ProveCrossNoOverflow(&c)
		return c
	}
	a, b := cell(2), cell(3)
	if a.Overflow || b.Overflow {
		t.Fatalf("shards of 2 and 3 units flagged: %v %v", a.Overflow, b.Overflow)
	}
	single := cell(5)
	if !single.Overflow || single.SumXC != nil {
		t.Fatalf("a single-node cell of 5 units not flagged")
	}
	m := a
	MergeCross(&m, b)
	ProveCrossNoOverflow(&m)
	if !m.Overflow || m.SumXC != nil || m.N != 5 {
		t.Errorf("merged 2+3 units: overflow %v, n %d; the single-node cell is flagged", m.Overflow, m.N)
	}
	// Below the bound the sums and maxima add exactly.
	small := func(n int64, mx int64) CrossCell {
		c := CrossCell{N: n, SumXC: big1(10 * n), SumYC: big1(-n), SumCC: big1(7), MaxAbs: [4]*big.Int{big1(mx), big1(1), big1(2), big1(3)}}
		ProveCrossNoOverflow(&c)
		return c
	}
	m = small(4, 9)
	MergeCross(&m, small(6, 11))
	ProveCrossNoOverflow(&m)
	if m.Overflow || m.N != 10 || m.SumXC.Int64() != 100 || m.SumYC.Int64() != -10 || m.SumCC.Int64() != 14 || m.MaxAbs[0].Int64() != 11 {
		t.Errorf("merged small cells: %+v", m)
	}
	// A flagged shard cell keeps the merged cell flagged.
	m = small(4, 9)
	f := small(1, 1)
	f.Overflow, f.SumXC, f.SumYC, f.SumCC = true, nil, nil, nil
	MergeCross(&m, f)
	ProveCrossNoOverflow(&m)
	if !m.Overflow || m.SumXC != nil {
		t.Errorf("a flagged shard cell was merged into sums: %+v", m)
	}
}
