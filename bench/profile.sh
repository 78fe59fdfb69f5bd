#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Profiles Herald's ingest under load: where its CPU goes, for the closing note of a bench run.
#
#   bench/profile.sh [BUILD_DIR]        (default: build)
#
# For each case (binary single-event POSTs, then 100-event batches, the same loads as
# bench/run.sh) it starts a fresh herald on 127.0.0.1, drives it with wrk, and while the load
# runs records herald with `perf record -g` (software cpu-clock event: works in VMs without
# hardware counters) and counts its CPU time with `perf stat`. It prints the rate, herald's CPU
# per event, its top symbols (self time), its threads and libraries, and the top inclusive
# (children) symbols. Stops everything it started by PID.
# Knobs: PROFILE_SECONDS (10), PROFILE_CASES ("binary batch"), PROFILE_TOP (25),
#        PROFILE_CALLGRAPH (dwarf | fp; default dwarf: herald is built without frame pointers),
#        plus BENCH_CONNS, BENCH_BATCH, BENCH_BATCH_CONNS, BENCH_WRK_THREADS, BENCH_HERALD_ARGS
#        as in run.sh.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

BUILD=${1:-build}
[ -x "$BUILD/herald" ] || die "no herald binary at $BUILD/herald (build it first: make build)"
HERALD="$(cd "$BUILD" && pwd)/herald"
SECS=${PROFILE_SECONDS:-10}
TOP=${PROFILE_TOP:-25}
CASES=${PROFILE_CASES:-"binary batch"}
CG=${PROFILE_CALLGRAPH:-dwarf}
CONNS=${BENCH_CONNS:-64}
BATCH=${BENCH_BATCH:-100}
BATCH_CONNS=${BENCH_BATCH_CONNS:-10}
THREADS=${BENCH_WRK_THREADS:-2}
for v in "$SECS" "$TOP" "$CONNS" "$BATCH" "$BATCH_CONNS" "$THREADS"; do
    case "$v" in '' | *[!0-9]* | 0) die "PROFILE_*/BENCH_* values must be positive integers (got '$v')" ;; esac
done
case "$CG" in fp) CGOPT=(-g -F 999) ;; dwarf) CGOPT=(--call-graph "dwarf,16384" -F 499) ;; *) die "PROFILE_CALLGRAPH: fp or dwarf" ;; esac

# ---- is perf usable here? ----
if ! command -v perf >/dev/null; then
    echo "perf is not installed (Debian: linux-perf; scripts/deps.sh bench installs it): no profile."
    exit 0
fi
if ! perf stat -e task-clock true >/dev/null 2>&1; then
    echo "perf cannot count here ($(perf stat -e task-clock true 2>&1 | tail -n 1));"
    echo "kernel.perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo '?'): run as root or lower it. No profile."
    exit 0
fi
if perf stat -e instructions true 2>&1 | grep -q 'not supported'; then
    HW="no hardware counters here (VM): sampling the software cpu-clock event"
else
    HW="hardware counters available; sampling cpu-clock anyway, for comparable figures"
fi
command -v wrk >/dev/null || die "wrk not found: run scripts/deps.sh bench"

# The system calls counted per event (each one a tracepoint; all 360 would take seconds to set up).
SYSCALL_EVENTS=
for sc in read write readv writev pread64 pwrite64 preadv pwritev sendto sendmsg recvfrom recvmsg \
    sendfile64 fsync fdatasync sync_file_range fallocate ftruncate poll ppoll epoll_wait select \
    futex accept4 close openat mmap munmap madvise brk clock_nanosleep nanosleep; do
    if [ -d "/sys/kernel/tracing/events/syscalls/sys_enter_$sc" ] ||
        [ -d "/sys/kernel/debug/tracing/events/syscalls/sys_enter_$sc" ]; then
        SYSCALL_EVENTS="$SYSCALL_EVENTS${SYSCALL_EVENTS:+,}syscalls:sys_enter_$sc"
    fi
done
[ -n "$SYSCALL_EVENTS" ] || SYSCALL_EVENTS='syscalls:sys_enter_*'

OUT=${BENCH_OUT:-$HERE/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RUN=$(mktemp -d "$OUT/profile.XXXXXX")
trap 'stop_all' EXIT
trap 'exit 130' INT TERM
echo "Herald profile $(date -u +%Y-%m-%dT%H:%M:%SZ)  $(nproc) cores  load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "herald $HERALD; perf $(perf version 2>/dev/null | awk '{print $3}'); $HW; call graphs: $CG"
echo "output: $RUN"

report() { # report PERF-REPORT-ARGS...: the table rows only, for $dir/perf.data
    { perf report -i "$dir/perf.data" --stdio -g none "$@" 2>/dev/null || true; } |
        { grep -E '^ +[0-9]' || true; } | sed -E 's/ +- +- *$//'
}

profile_case() { # profile_case NAME CONNS BATCH
    local name=$1 dir=$RUN/$1 wrk_pid stat_pid sys_pid line events cpu_ms secs
    local before after s0 s1 p0 p1 t0 t1
    mkdir -p "$dir"
    start_herald "$dir/data" "$dir/herald.log"
    # One steady load for: 1 s warm-up, SECS of counting, SECS of sampling, 1 s spare.
    start_bg wrk "$dir/wrk.out" env BENCH_CASE="$name" BENCH_BATCH="$3" BENCH_NONCE="prof-$$-$name" \
        timeout $((2 * SECS + 60)) wrk -t"$THREADS" -c"$2" -d"$((2 * SECS + 2))s" --timeout 10s --latency \
        -s "$HERE/ce.lua" "$HERALD_URL/v1/buses/default/events"
    wrk_pid=$LAST_PID
    sleep 1 # warm-up

    # Phase 1, counting: CPU time, context switches and syscalls per event, over one window.
    before=$(herald_last_seq "$HERALD_URL")
    s0=$(sys_ticks) p0=$(proc_ticks "$HERALD_PID") t0=$(date +%s.%N)
    start_bg "perf stat" "$dir/perf-stat.txt" perf stat -e task-clock,context-switches,cpu-migrations,page-faults \
        -p "$HERALD_PID" -- sleep "$SECS"
    stat_pid=$LAST_PID
    # Per thread: perf's aggregate over -p threads undercounts tracepoints here.
    start_bg "perf stat syscalls" "$dir/perf-syscalls.txt" perf stat --per-thread -e "$SYSCALL_EVENTS" \
        -p "$HERALD_PID" -- sleep "$SECS"
    sys_pid=$LAST_PID
    wait "$stat_pid" "$sys_pid" 2>/dev/null || true
    s1=$(sys_ticks) p1=$(proc_ticks "$HERALD_PID") t1=$(date +%s.%N)
    after=$(herald_last_seq "$HERALD_URL")
    stop_pid "$stat_pid"
    stop_pid "$sys_pid"
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')

    # Phase 2, sampling.
    perf record -e cpu-clock "${CGOPT[@]}" -p "$HERALD_PID" -o "$dir/perf.data" -- sleep "$SECS" \
        >"$dir/perf-record.log" 2>&1 || { cat "$dir/perf-record.log" >&2; die "perf record failed"; }
    wait "$wrk_pid" 2>/dev/null || true
    stop_pid "$wrk_pid"
    stop_pid "$HERALD_PID"
    rm -rf "$dir/data"

    line=$(grep '^RESULT' "$dir/wrk.out" | tail -n 1 || true)
    events=$((after - before))
    cpu_ms=$(awk '/task-clock/ { gsub(",", "", $1); print $1 }' "$dir/perf-stat.txt")
    # perf counts over its own elapsed time, a bit shorter than [t0, t1] (attach/detach):
    # scale the event count by the rate over [t0, t1].
    local el_stat el_sys
    el_stat=$(awk '/seconds time elapsed/ { print $1 }' "$dir/perf-stat.txt")
    el_sys=$(awk '/seconds time elapsed/ { print $1 }' "$dir/perf-syscalls.txt")
    echo
    echo "=== $name: $([ "$3" -gt 0 ] && echo "batches of $3 x 1 KiB, $2 conns" || echo "binary POST 1 KiB, $2 conns"), fsync=always ==="
    echo "load: ${line:-no wrk result}"
    awk -v ms="${cpu_ms:-0}" -v ev="$events" -v s="$secs" -v el="${el_stat:-0}" -v n="$(nproc)" 'BEGIN {
        r = ev / s; e = r * el;
        printf "counting: %.0f events/s; herald used %.2f of %d CPUs (perf task-clock); %.1f us of herald CPU per event\n",
            r, (el > 0 ? ms / 1000 / el : 0), n, (e > 0 ? ms * 1000 / e : 0) }'
    echo "machine (/proc, over $(printf %.1f "$secs") s): $(cpu_split "$s0" "$s1" "$p0" "$p1" "$events" "$secs")"
    grep -E 'context-switches|cpu-migrations|page-faults' "$dir/perf-stat.txt" |
        awk -v ev="$events" -v s="$secs" -v el="${el_stat:-0}" '{ gsub(",", "", $1);
            printf "  %-18s %10d  %.4f per event\n", $2, $1, (ev > 0 && el > 0 ? $1 / (ev / s * el) : 0) }' || true
    echo
    echo "--- system calls per event (all herald threads) ---"
    awk -v ev="$events" -v s="$secs" -v el="${el_sys:-0}" '/syscalls:sys_enter_/ {
            for (i = 2; i <= NF; i++) if ($i ~ /^syscalls:sys_enter_/) { n = $(i - 1); gsub(",", "", n);
                if (n ~ /^[0-9]+$/) c[substr($i, 20)] += n } }
        END { e = (s > 0 ? ev / s * el : 0);
            for (k in c) if (c[k] > 0) printf "  %8.3f  %-14s (%d)\n", (e > 0 ? c[k] / e : 0), k, c[k] }' \
        "$dir/perf-syscalls.txt" | sort -rn | head -n 12
    echo
    echo "--- top $TOP symbols, self time (% of herald's samples) ---"
    report --no-children --sort symbol --percent-limit 0.3 | head -n "$TOP"
    echo
    echo "--- by thread ---"
    report --no-children --sort pid | head -n 16
    echo
    echo "--- by library (dso) ---"
    report --no-children --sort dso | head -n 12
    echo
    echo "--- user-space functions, inclusive (children; libmicrohttpd has no symbols) ---"
    report --children --sort symbol --percent-limit 0.5 | grep -F '[.]' | grep -v '\] 0x0000' | head -n "$TOP" || true
    echo
    echo "--- system calls, inclusive ---"
    report --children --sort symbol --percent-limit 0.3 |
        grep -E '\[k\] (__x64_sys_[a-z0-9_]+|__sys_sendmsg|do_pwritev|do_writev) *$' | head -n 12 || true
    echo "(full report: perf report -i $dir/perf.data)"
}

for c in $CASES; do
    case "$c" in
    binary) profile_case binary "$CONNS" 0 ;;
    batch) profile_case batch "$BATCH_CONNS" "$BATCH" ;;
    *) die "PROFILE_CASES: binary and/or batch (got '$c')" ;;
    esac
done
