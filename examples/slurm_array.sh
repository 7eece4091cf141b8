#!/usr/bin/env bash
# Classify a large folder with a Slurm job array: each task takes its own shard of the inputs
# (no coordinator), writes its own HDF5 file, and picks up where it stopped if it is requeued or
# resubmitted. Submit with:
#
#   sbatch examples/slurm_array.sh /data/photos results/
#
# then, when every task has finished, join the shards:
#
#   ptm merge results/shard-*-of-8.h5 -o results/all.h5
#
# (or let Slurm run the merge: sbatch --dependency=afterok:<array job id> --wrap "ptm merge ...")
#
#SBATCH --job-name=ptm-classify
#SBATCH --array=1-8
#SBATCH --cpus-per-task=4
#SBATCH --time=04:00:00
#SBATCH --requeue
# Slurm sends SIGTERM at the time limit: ptm writes the batch in flight and exits; --resume
# continues it next time.
#SBATCH --signal=TERM@120
set -euo pipefail

photos=${1:?usage: sbatch slurm_array.sh PHOTOS_DIR OUT_DIR}
out=${2:?usage: sbatch slurm_array.sh PHOTOS_DIR OUT_DIR}
task=${SLURM_ARRAY_TASK_ID:?run this with sbatch --array}
count=${SLURM_ARRAY_TASK_COUNT:-8}   # --array=1-8: task ids 1..8, as --shard K/N counts
mkdir -p "$out"

exec ptm classify "$photos" --shard "$task/$count" --resume \
    --output "$out/shard-$task-of-$count.h5" --model "${PTM_MODEL:-resnet101}" --device auto
