#!/bin/sh
# Submit one nightly pass across a Slurm cluster: a job array of K shard
# tasks and a merge job that depends on all of them (afterok; cancelled if
# any shard fails, so nothing is released). Prints "ARRAY_ID MERGE_ID".
# usage: VERITY_SHARDS=K VERITY_PARTIALS=DIR VERITY_OUT=DIR VERITY_SPECS="SPEC..." \
#        [VERITY_DATE=YYYY-MM-DD] [VERITY_BIN=verity] [VERITY_FLAGS=...] nightly.sh [sbatch flags...]
# Folders must be on storage every node sees; logs go to $VERITY_LOGS
# (default $VERITY_PARTIALS/logs). Extra arguments go to both sbatch calls
# (partition, account, time limit).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${VERITY_SHARDS:?set VERITY_SHARDS=K}" "${VERITY_PARTIALS:?}" "${VERITY_OUT:?}" "${VERITY_SPECS:?}"
logs=${VERITY_LOGS:-$VERITY_PARTIALS/logs}
mkdir -p "$logs"
export VERITY_SHARDS VERITY_PARTIALS VERITY_OUT VERITY_SPECS
array=$(sbatch --parsable --export=ALL --array="0-$((VERITY_SHARDS - 1))" \
	--output="$logs/shard-%a.log" "$@" "$here/shard.sbatch")
array=${array%%;*}
merge=$(sbatch --parsable --export=ALL --dependency="afterok:$array" --kill-on-invalid-dep=yes \
	--output="$logs/merge.log" "$@" "$here/merge.sbatch")
echo "${array} ${merge%%;*}"
