#!/usr/bin/env bash
# The Slurm check (make slurm-check, after .ci/slurm-up): one nightly pass
# of the sharded fixtures (a private spec and an exact one) as a 3-task job
# array with a dependent merge, judged by every job's state (sbatch exit
# codes say nothing, see ../shared/notes/slurm-in-ci.md) and by the merged
# outputs, byte for byte the same as a single-node verity run.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${VERITY_BIN:?set VERITY_BIN to the verity binary}
K=${K:-3}
work=$(mktemp -d /tmp/verity-slurm.XXXXXX)
trap 'rm -rf "$work"' EXIT
specs="$root/fixtures/specs/checkout-button-private.yaml $root/golden/testdata/shard-exact.yaml"
for w in single cluster; do
	"$bin" ledger init --state-dir "$work/state-$w" --source fixtures --root "$root/fixtures/data" \
		--epsilon 40 --delta 1e-6 >/dev/null
done
# shellcheck disable=SC2086
"$bin" run --log none --allow-test-key --state-dir "$work/state-single" --out "$work/single" $specs >/dev/null

cd "$work"
ids=$(VERITY_BIN=$bin VERITY_SHARDS=$K VERITY_PARTIALS=$work/partials VERITY_OUT=$work/merged \
	VERITY_SPECS=$specs VERITY_FLAGS="--allow-test-key --state-dir $work/state-cluster" \
	"$root/deploy/slurm/nightly.sh")
read -r array merge <<<"$ids"
for _ in $(seq 1 240); do
	[ -z "$(squeue -h -j "$array,$merge" -t PD,CF,R,CG,S 2>/dev/null)" ] && break
	sleep 0.5
done
fail=0
states=$( { scontrol -o show job "$array"; scontrol -o show job "$merge"; } | grep -o 'JobId=[0-9]* .*JobState=[A-Z_]*' | sed -E 's/^(JobId=[0-9]+).*(JobState=[A-Z_]+)$/\1 \2/')
echo "$states"
if [ "$(grep -c 'JobState=COMPLETED' <<<"$states")" != $((K + 1)) ]; then
	echo "slurm check: want $K shard tasks and the merge COMPLETED" >&2
	cat "$work"/partials/logs/*.log >&2 || true
	fail=1
fi
for exp in checkout-button-private checkout-button-sharded; do
	a=$work/single/$exp/2026-11-19 b=$work/merged/$exp/2026-11-19
	for f in "$a"/*; do
		n=$(basename "$f")
		if [ "$n" = manifest.json ]; then
			python3 - "$f" "$b/$n" <<'PY' || { echo "slurm check: $exp/$n differs" >&2; fail=1; }
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for m in (a, b):
    m.pop("volatile", None)
sys.exit(0 if a == b else 1)
PY
		elif ! cmp -s "$f" "$b/$n"; then
			echo "slurm check: $exp/$n differs from the single-node run" >&2
			fail=1
		fi
	done
done
[ "$fail" = 0 ] && echo "slurm check: $K shards + merge on Slurm = single-node run, byte for byte"
exit "$fail"
