#!/usr/bin/env bash
# Runs each libFuzzer target in BUILD_DIR for SECONDS, from its seed corpus fuzz/corpus/<name>.
set -euo pipefail
build=$1; secs=$2
top=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob
for bin in "$build"/*_fuzz; do
    name=$(basename "$bin")
    work=$(mktemp -d)
    seeds=()
    [ -d "$top/fuzz/corpus/$name" ] && seeds+=("$top/fuzz/corpus/$name")
    echo "fuzz: $name for ${secs}s"
    mkdir -p "$work.tmp" # scratch files of the target (http_fuzz's data directory)
    TMPDIR="$work.tmp" ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$secs" -max_len=65536 \
        -print_final_stats=0 "$work" "${seeds[@]}" >"$work.log" 2>&1 ||
        { tail -50 "$work.log"; rm -rf "$work" "$work.tmp"; exit 1; }
    rm -rf "$work" "$work.log" "$work.tmp"
done
