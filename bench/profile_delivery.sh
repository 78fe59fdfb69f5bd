#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Profiles Herald while it delivers: where its CPU goes when events flow publish -> herald ->
# trigger -> sink (the load of bench/delivery.sh's closed-loop case).
#
#   bench/profile_delivery.sh [BUILD_DIR]        (default: build)
#
# Starts an nginx sink (202, empty body) and a fresh herald on 127.0.0.1, PUTs PROFILE_TRIGGERS
# triggers (no filters) to it, drives herald with wrk (binary 1 KiB events, BENCH_CONNS conns)
# and, after a warm-up, records herald with `perf record` (software cpu-clock; dwarf call graphs)
# for PROFILE_SECONDS, then lets delivery drain. Prints the publish and delivery rates over the
# recording, herald's CPU, top symbols (self), threads (HTTP workers, the commit thread, the
# delivery loop), libraries, and inclusive user-space functions. Stops everything by PID.
# Knobs: PROFILE_SECONDS (10), PROFILE_TOP (25), PROFILE_CALLGRAPH (dwarf | fp),
#        PROFILE_TRIGGERS (1), PROFILE_MIF (64: max_in_flight), PROFILE_DELAY_MS (0: closed loop;
#        N: wrk waits N ms between a connection's requests), BENCH_CONNS, BENCH_WRK_THREADS.
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
CG=${PROFILE_CALLGRAPH:-dwarf}
NTRIG=${PROFILE_TRIGGERS:-1}
MIF=${PROFILE_MIF:-64}
DELAY=${PROFILE_DELAY_MS:-0}
CONNS=${BENCH_CONNS:-64}
THREADS=${BENCH_WRK_THREADS:-2}
for v in "$SECS" "$TOP" "$NTRIG" "$MIF" "$CONNS" "$THREADS"; do
    case "$v" in '' | *[!0-9]* | 0) die "PROFILE_*/BENCH_* values must be positive integers (got '$v')" ;; esac
done
case "$DELAY" in '' | *[!0-9]*) die "PROFILE_DELAY_MS: an integer (got '$DELAY')" ;; esac
[ "$NTRIG" -le 100 ] || die "PROFILE_TRIGGERS: at most 100"
case "$CG" in fp) CGOPT=(-g -F 999) ;; dwarf) CGOPT=(--call-graph "dwarf,16384" -F 499) ;; *) die "PROFILE_CALLGRAPH: fp or dwarf" ;; esac

if ! command -v perf >/dev/null; then
    echo "perf is not installed (Debian: linux-perf; scripts/deps.sh bench installs it): no profile."
    exit 0
fi
if ! perf stat -e task-clock true >/dev/null 2>&1; then
    echo "perf cannot count here; kernel.perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo '?'): run as root or lower it. No profile."
    exit 0
fi
for tool in wrk nginx curl; do
    command -v "$tool" >/dev/null || die "'$tool' not found: run scripts/deps.sh bench"
done

OUT=${BENCH_OUT:-$HERE/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RUN=$(mktemp -d "$OUT/profile_delivery.XXXXXX")
trap 'stop_all' EXIT
trap 'exit 130' INT TERM
echo "Herald delivery profile $(date -u +%Y-%m-%dT%H:%M:%SZ)  $(nproc) cores  load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "herald $HERALD; perf $(perf version 2>/dev/null | awk '{print $3}'); call graphs: $CG; output: $RUN"

dir=$RUN
start_nginx_sink "$dir/sink" "$NTRIG"
SINK=$SINK_PID
start_herald "$dir/data" "$dir/herald.log"
for i in $(seq 1 "$NTRIG"); do
    put_trigger "$HERALD_URL" "t$i" "http://127.0.0.1:${SINK_PORTS[$((i - 1))]}/t$i" "$MIF"
done

delivered_sum() { # sum of the triggers' delivered counters
    local i s t=0 d
    for i in $(seq 1 "$NTRIG"); do
        s=$(trigger_status "$HERALD_URL" "t$i")
        read -r _ _ d _ <<<"$s"
        case "$d" in '' | *[!0-9]*) d=0 ;; esac
        t=$((t + d))
    done
    echo "$t"
}

start_bg wrk "$dir/wrk.out" env BENCH_CASE=profile_delivery BENCH_BATCH=0 BENCH_SENT=1 BENCH_DELAY_MS="$DELAY" \
    BENCH_NONCE="profd-$$" timeout $((SECS + 60)) wrk -t"$THREADS" -c"$CONNS" -d"$((SECS + 3))s" --timeout 10s \
    --latency -s "$HERE/ce.lua" "$HERALD_URL/v1/buses/default/events"
WRK=$LAST_PID
sleep 2 # warm-up
t0=$(date +%s.%N) q0=$(herald_last_seq "$HERALD_URL") d0=$(delivered_sum) s0=$(sys_ticks) p0=$(proc_ticks "$HERALD_PID")
perf record -e cpu-clock "${CGOPT[@]}" -p "$HERALD_PID" -o "$dir/perf.data" -- sleep "$SECS" \
    >"$dir/perf-record.log" 2>&1 || { cat "$dir/perf-record.log" >&2; die "perf record failed"; }
t1=$(date +%s.%N) q1=$(herald_last_seq "$HERALD_URL") d1=$(delivered_sum) s1=$(sys_ticks) p1=$(proc_ticks "$HERALD_PID")
wait "$WRK" 2>/dev/null || true
stop_pid "$WRK"
# Drain (bounded): delivery must catch up with everything published.
last=$(herald_last_seq "$HERALD_URL")
drained=0
for _ in $(seq 1 1200); do
    if [ "$(delivered_sum)" -ge $((last * NTRIG)) ]; then
        drained=1
        break
    fi
    sleep 0.1
done
fin=$(delivered_sum)
stop_pid "$HERALD_PID"
stop_pid "$SINK"
rm -rf "$dir/data"

echo
echo "=== delivery: $NTRIG trigger(s), max_in_flight $MIF, wrk $CONNS conns$([ "$DELAY" -gt 0 ] && echo ", delay ${DELAY} ms"), binary 1 KiB, fsync=always ==="
echo "load: $(grep '^RESULT' "$dir/wrk.out" | tail -n 1 || echo 'no wrk result')"
awk -v t0="$t0" -v t1="$t1" -v q0="$q0" -v q1="$q1" -v d0="$d0" -v d1="$d1" 'BEGIN { s = t1 - t0;
    printf "while recording (%.1f s): published %.0f events/s, delivered %.0f deliveries/s (ratio %.2f)\n",
        s, (q1 - q0) / s, (d1 - d0) / s, (q1 > q0 ? (d1 - d0) / (q1 - q0) : 0) }'
echo "machine (/proc): $(cpu_split "$s0" "$s1" "$p0" "$p1" "$((d1 - d0))" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')") (per delivery)"
if [ "$drained" = 1 ]; then
    echo "drained: all $last events delivered to each of the $NTRIG trigger(s)"
else
    echo "NOT DRAINED within 120 s: delivered $fin of $((last * NTRIG))"
fi

report() { # the table rows only
    { perf report -i "$dir/perf.data" --stdio -g none "$@" 2>/dev/null || true; } |
        { grep -E '^ +[0-9]' || true; } | sed -E 's/ +- +- *$//'
}
echo
echo "--- top $TOP symbols, self time (% of herald's samples) ---"
report --no-children --sort symbol --percent-limit 0.3 | head -n "$TOP"
echo
echo "--- by thread (comm: hr-http-N workers, hr-commit, hr-dispatch, hr-dloop, hr-persist) ---"
report --no-children --sort comm,pid | head -n 16
echo
echo "--- the delivery-loop thread only (hr-dloop), top symbols ---"
report --no-children --comms hr-dloop --sort symbol --percent-limit 0.5 | head -n "$TOP"
echo
echo "--- by library (dso) ---"
report --no-children --sort dso | head -n 12
echo
echo "--- user-space functions, inclusive (children) ---"
report --children --sort symbol --percent-limit 0.5 | grep -F '[.]' | grep -v '\] 0x0000' | head -n "$TOP" || true
echo "(full report: perf report -i $dir/perf.data)"
