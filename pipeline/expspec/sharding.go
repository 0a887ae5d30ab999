package expspec

import "fmt"

// Sharding is the spec's unit hash for sharded runs. A unit's bucket is
//
//	uint64(first 8 bytes of MD5(salt ‖ unit_id), big-endian) mod Buckets
//
// and bucket b belongs to shard b mod K. A producer that writes its files
// into Hive folders unit_bucket=b/ with the same salt and bucket count lets
// each shard read only its own folders. Rows without a unit_id belong to
// bucket 0.
type Sharding struct {
	Salt    string `yaml:"salt" json:"salt"`
	Buckets int    `yaml:"buckets" json:"buckets"`
}

// Defaults of a spec without a sharding section.
const (
	DefaultShardSalt    = "verity-units-v1"
	DefaultShardBuckets = 1024
	maxShardBuckets     = 1 << 20
)

// ShardScheme returns the salt and bucket count in effect.
func (s *Spec) ShardScheme() (salt string, buckets int) {
	if s.Sharding == nil {
		return DefaultShardSalt, DefaultShardBuckets
	}
	return s.Sharding.Salt, s.Sharding.Buckets
}

// validateSharding checks the optional sharding section.
func (s *Spec) validateSharding() error {
	if s.Sharding == nil {
		return nil
	}
	if b := s.Sharding.Buckets; b < 1 || b > maxShardBuckets {
		return s.errf("sharding.buckets", "want 1 to %d buckets, got %d", maxShardBuckets, b)
	}
	if len(s.Sharding.Salt) > 256 {
		return s.errf("sharding.salt", "want at most 256 bytes, got %d", len(s.Sharding.Salt))
	}
	return nil
}

// ShardableError is nil when the spec's template pins de-duplicate by
// unit (the unit-keyed set), so that no unit's rows can change another's
// and a run split by unit is exact; otherwise it says why not.
func (s *Spec) ShardableError() error {
	if s.Interactions != nil {
		return s.errf("interactions", "a sharded run does not test interactions: the shard partials do not carry the cells of units in two experiments; run this spec unsharded (verity run without --shard)")
	}
	if s.Drilldowns != nil {
		return s.errf("drilldowns", "a sharded run does not drill down: the shard partials do not carry per-slice cells; run this spec unsharded (verity run without --shard)")
	}
	if k := s.firstFilter(); k != "" {
		return s.errf(k, "a sharded run does not filter metrics by event properties: the shard partials do not carry the filter counts; run this spec unsharded (verity run without --shard)")
	}
	if s.unitKeyed() {
		return nil
	}
	return s.errf("templates", "a sharded run needs templates whose de-duplication includes unit_id (rows of one unit never affect another's); pin the unit-keyed set %s", unitKeyedPins())
}

// ShardOf names shard i of k for messages.
func ShardOf(i, k int) string { return fmt.Sprintf("%d/%d", i, k) }
