#!/usr/bin/env bash
# Classify a folder with N ptm processes on one machine (each takes 1/N of the inputs), then
# merge their files into one, in input order. Rerunning the script continues unfinished shards.
#
#   examples/parallel_local.sh PHOTOS_DIR OUT.h5 [N]
#
# Each process uses its own CPU threads; with N processes on C cores, OMP_NUM_THREADS=C/N
# avoids oversubscription. With GNU parallel instead of xargs:
#
#   parallel -j 4 ptm classify PHOTOS --shard {}/4 --resume -o parts/shard-{}.h5 ::: 1 2 3 4
set -euo pipefail

photos=${1:?usage: parallel_local.sh PHOTOS_DIR OUT.h5 [N]}
merged=${2:?usage: parallel_local.sh PHOTOS_DIR OUT.h5 [N]}
jobs=${3:-2}
parts="$(dirname "$merged")/.parts-$(basename "$merged")"
mkdir -p "$parts"
cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
export OMP_NUM_THREADS=$(( cores / jobs > 0 ? cores / jobs : 1 ))

status=0
seq 1 "$jobs" | xargs -P "$jobs" -I{} \
    ptm classify "$photos" --shard "{}/$jobs" --resume --output "$parts/shard-{}.h5" \
        --model "${PTM_MODEL:-efficientnet_lite0}" || status=$?
# xargs exits 123 when some command exited 1..125: with ptm that means some images failed to
# decode (they are rows with status "error"), which still merges.
if [ "$status" -ne 0 ] && [ "$status" -ne 123 ]; then
    echo "a shard did not finish (exit $status); run this script again to continue" >&2
    exit "$status"
fi
ptm merge "$parts"/shard-*.h5 --output "$merged" --force
rm -r "$parts"
echo "wrote $merged" >&2
