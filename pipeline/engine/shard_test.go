package engine

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/verity-analytics/verity/queries"
)

// goBucket is the documented shard hash in Go (crypto/md5), independent of
// DuckDB: the first 8 bytes of MD5(salt ‖ unit_id), big-endian, mod buckets.
func goBucket(unit, salt string, buckets int) uint64 {
	h := md5.Sum([]byte(salt + unit))
	return binary.BigEndian.Uint64(h[:8]) % uint64(buckets)
}

// TestShardBucketMatchesGo holds DuckDB's bucket expression (what the
// shards filter with) to the documented hash computed with Go's
// crypto/md5, for producers that partition files themselves.
func TestShardBucketMatchesGo(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSession(ctx, Engine{Threads: 1}, queries.FS())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	units := []string{"", "u1", "user-000042", "ünïcødé", " padded ", "9223372036854775807"}
	for i := 0; i < 200; i++ {
		units = append(units, fmt.Sprintf("unit-%06d", i*7919))
	}
	for _, salt := range []string{"", "verity-units-v1", "checkout-2026"} {
		for _, buckets := range []int{1, 7, 64, 1024, 1 << 20} {
			for _, u := range units {
				got, err := s.ShardBucket(ctx, u, salt, buckets)
				if err != nil {
					t.Fatal(err)
				}
				if want := goBucket(u, salt, buckets); got != want {
					t.Fatalf("unit %q salt %q buckets %d: DuckDB bucket %d, Go %d", u, salt, buckets, got, want)
				}
			}
		}
	}
	// A value with the top bit set, where a signed cast would go wrong.
	seen := false
	for _, u := range units {
		h := md5.Sum([]byte("verity-units-v1" + u))
		seen = seen || h[0]&0x80 != 0
	}
	if !seen {
		t.Fatal("no unit with the hash's top bit set: the test would miss a signed cast")
	}
}
