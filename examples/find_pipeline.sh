#!/usr/bin/env bash
# Paths from any tool, one a line, into ptm; results as JSON lines on stdout, one per image.
#
#   examples/find_pipeline.sh PHOTOS_DIR > results.jsonl
#
# Here: JPEG and PNG files changed in the last 7 days, top class only. Failed images are rows
# with "status": "error" (--with-errors), so every input has exactly one line. ptm reads the
# whole list before it starts; for lists too long to wait for, split them (split -l) or use
# --shard. Paths are one a line, so names with a newline in them cannot pass through.
set -euo pipefail

photos=${1:?usage: find_pipeline.sh PHOTOS_DIR}
find "$photos" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) -mtime -7 -print \
    | ptm classify - --model "${PTM_MODEL:-efficientnet_lite0}" --top 1 --format jsonl --with-errors
