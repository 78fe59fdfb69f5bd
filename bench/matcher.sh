#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Matcher / CESQL / pattern micro-benchmark (bench/README.md, "Matcher micro-benchmark").
# Builds bench/matcher_bench.c in a Release build in build-bench/ (-DHR_BENCH=ON) and runs it
# with event-ruler's fixtures. Exits 0 whatever the figures; non-zero only when a case could
# not run (build failure, wrong answers, fixtures missing).
#
#   bench/matcher.sh                              # 5 rounds, >= 0.2 s per measurement (~2.5 min)
#   BENCH_ROUNDS=1 BENCH_MIN_SECONDS=0.05 bench/matcher.sh    # a quick look (~10 s)
#   BENCH_CALLGRIND=1 bench/matcher.sh            # also instructions per operation (valgrind)
#
# Knobs: BENCH_ROUNDS (5), BENCH_MIN_SECONDS (0.2), BENCH_CALLGRIND (0), BENCH_BUILD
# (build-bench), HERALD_CONFORMANCE (../shared/conformance relative to the repo).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${BENCH_BUILD:-$repo/build-bench}
conf=${HERALD_CONFORMANCE:-$repo/../shared/conformance}
er_data=$conf/event-ruler/src/test/data

echo "building matcher_bench (Release, $build) ..." >&2
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DHR_BENCH=ON >/dev/null
cmake --build "$build" --target matcher_bench -j "$(nproc)" >/dev/null
bin=$build/bench/matcher_bench

if [[ ! -f $er_data/bigEvent.json ]]; then
    echo "warning: $er_data/bigEvent.json not found (set HERALD_CONFORMANCE); bigEvent rows are skipped" >&2
fi

rc=0
BENCH_CALLGRIND=0 "$bin" "$er_data" || rc=$?

if [[ ${BENCH_CALLGRIND:-0} == 1 ]]; then
    echo
    if ! command -v valgrind >/dev/null; then
        echo "[4] instructions per operation: SKIPPED (valgrind not installed)"
        exit "$rc"
    fi
    out=$(mktemp -d "${TMPDIR:-/tmp}/matcher_cg.XXXXXX")
    # The program zeroes the counters before each case and dumps them after it, so each dump
    # holds only that case's operations.
    if ! BENCH_CALLGRIND=1 valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" \
        "$bin" "$er_data" >"$out/stdout" 2>"$out/stderr"; then
        echo "[4] instructions per operation: valgrind failed (see $out/stderr)"
        exit 1
    fi
    echo "[4] instructions per operation (valgrind callgrind; fixed counts, no timing noise)"
    printf '  %-28s %10s %16s\n' case ops Ir/op
    # Each dump file names its trigger ("Client Request: <case>") and its instruction count (summary).
    declare -A ir
    for f in "$out"/cg.*; do
        name=$(sed -n 's/^desc: Trigger: Client Request: //p' "$f")
        total=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$f" | head -1)
        [[ -n $name && -n $total ]] && ir[$name]=$total
    done
    while read -r _ name ops; do
        if [[ -n ${ir[$name]:-} ]]; then
            printf '  %-28s %10s %16s\n' "$name" "$ops" "$(( ${ir[$name]} / ops ))"
        fi
    done < <(grep '^CALLGRIND ' "$out/stdout")
    rm -rf "$out"
fi
exit "$rc"
