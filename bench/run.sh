#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Herald's benchmark: Herald and its peers side by side in ONE run, reported as ratios.
#
#   bench/run.sh [BUILD_DIR]          (`make bench` runs: bench/run.sh build)
#
# Builds the bench's C helpers (bench/Makefile), then, one case at a time, starts each server
# on 127.0.0.1 with its own temp config/data dir under bench/out/run.XXXXXX, loads it, stops it
# by PID, and finally prints a table and Herald's ratio to each peer against the targets.
# A report, not a test: the exit status is 0 whatever the figures (non-zero only if a case
# could not run). See bench/README.md for the knobs (BENCH_SECONDS, BENCH_ROUNDS, ...).
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

BUILD=${1:-build}
[ -x "$BUILD/herald" ] || die "no herald binary at $BUILD/herald (build it first: make build)"
HERALD="$(cd "$BUILD" && pwd)/herald"

int_env() { # int_env NAME DEFAULT MIN MAX
    local v=${!1:-$2}
    case "$v" in '' | *[!0-9]*) die "$1 must be an integer (got '$v')" ;; esac
    { [ "$v" -ge "$3" ] && [ "$v" -le "$4" ]; } || die "$1 must be in $3..$4 (got $v)"
    echo "$v"
}
SECS=$(int_env BENCH_SECONDS 10 1 3600)           # per case
ROUNDS=$(int_env BENCH_ROUNDS 3 1 20)             # repeat every case; medians are reported
CONNS=$(int_env BENCH_CONNS 64 1 10000)           # single-event cases, nginx, redis clients
BATCH=$(int_env BENCH_BATCH 100 1 10000)          # events per batch request
BATCH_CONNS=$(int_env BENCH_BATCH_CONNS 10 1 10000) # 10 x 100 = 1000 events in flight, as NATS
THREADS=$(int_env BENCH_WRK_THREADS 2 1 256)      # wrk and redis-benchmark client threads
NATS_WINDOW=$(int_env BENCH_NATS_WINDOW 1000 1 1000000)
CEILING_THREADS=$(int_env BENCH_CEILING_THREADS 2 1 64) # network threads of the `ceiling` case
CEILING_QUEUE=${BENCH_CEILING_QUEUE:-lockfree}
# MiB it pre-zeroes before it listens (0: plain appends); auto: 128 MiB per second of load (more
# than it writes at ~125k events/s), at most 4 GiB. Herald's log pre-zeroes its segments too.
case "${BENCH_CEILING_PREZERO:-auto}" in
    auto) CEILING_PREZERO=$((SECS * 128 < 4096 ? SECS * 128 : 4096)) ;;
    *) CEILING_PREZERO=$(int_env BENCH_CEILING_PREZERO 0 0 65536) ;;
esac
case "$CEILING_QUEUE" in lockfree | mutex) ;; *) die "BENCH_CEILING_QUEUE must be lockfree or mutex" ;; esac
DATA_BYTES=1024
SHORT=$((SECS / 3 > 1 ? SECS / 3 : 1))            # the secondary cases (sync latency, 1 KiB)
CASES=${BENCH_CASES:-"nginx herald_binary redis nats herald_batch disk delivery delivery_paced delivery_pipe delivery_paced_pipe fanout"}
OUT=${BENCH_OUT:-$HERE/out}
# shellcheck source=delivery.sh
. "$HERE/delivery.sh" # the delivery cases (publish -> herald -> trigger -> nginx sink) and their table

for tool in wrk nginx redis-server redis-benchmark redis-cli nats-server curl make cc; do
    command -v "$tool" >/dev/null || die "'$tool' not found: run scripts/deps.sh bench"
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
make -s -C "$HERE" OUT="$OUT/bin" >&2 || die "building the bench helpers failed"
RUN=$(mktemp -d "$OUT/run.XXXXXX")
NONCE=$(date +%s)-$$
trap 'stop_all' EXIT
trap 'exit 130' INT TERM

cleanup_data() { [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$@"; }

declare -A RES=() # RES[case.round] = RESULT line

record() { # record CASE ROUND LINE
    [ -n "$3" ] || die "case $1 printed no RESULT line (logs in $RUN)"
    RES[$1.$2]="$3"
    log "$1: $3"
}

run_wrk() { # run_wrk CASE URL CONNS BATCH OUTFILE
    BENCH_CASE=$1 BENCH_BATCH=$4 BENCH_NONCE="$NONCE-$1-$round" BENCH_DATA_BYTES=$DATA_BYTES \
        timeout $((SECS + 60)) wrk -t"$THREADS" -c"$3" -d"${SECS}s" --timeout 10s --latency \
        -s "$HERE/ce.lua" "$2/v1/buses/default/events" >"$5" 2>&1 ||
        { cat "$5" >&2; die "wrk failed for $1"; }
    grep '^RESULT ' "$5" | tail -n 1
}

case_nginx() {
    local dir=$RUN/nginx.$round port
    mkdir -p "$dir"
    port=$(free_port)
    cat >"$dir/nginx.conf" <<EOF
worker_processes auto;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    client_body_buffer_size 1m;   # bodies stay in memory; 'return' reads and discards them
    client_max_body_size 32m;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:$port;
        location / { default_type application/json; return 202 '{"seq":1}'; }
    }
}
EOF
    start_bg nginx "$dir/nginx.log" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    local pid=$LAST_PID
    wait_until "$pid" "$dir/nginx.log" nginx port_open "$port"
    record nginx "$round" "$(run_wrk nginx "http://127.0.0.1:$port" "$CONNS" 0 "$dir/wrk.out")"
    stop_pid "$pid"
}

# A diagnostic, not in the default CASES: bench/ceiling.c, a minimal epoll HTTP/1.1 server with
# group commit (append + fdatasync per batch, 202 after the sync): the single-event ceiling.
case_ceiling() {
    local dir=$RUN/ceiling.$round port line s0 p0 t0 s1 p1 t1 stats cpu
    mkdir -p "$dir/data"
    port=$(free_port)
    start_bg ceiling "$dir/ceiling.log" "$OUT/bin/ceiling" --port "$port" --dir "$dir/data" \
        --threads "$CEILING_THREADS" --queue "$CEILING_QUEUE" --prezero "$CEILING_PREZERO"
    local pid=$LAST_PID
    wait_until "$pid" "$dir/ceiling.log" ceiling port_open "$port"
    s0=$(sys_ticks) p0=$(proc_ticks "$pid") t0=$(date +%s.%N)
    line=$(run_wrk ceiling "http://127.0.0.1:$port" "$CONNS" 0 "$dir/wrk.out")
    s1=$(sys_ticks) p1=$(proc_ticks "$pid") t1=$(date +%s.%N)
    stop_pid "$pid" # it prints events (committed) and events_per_sync on exit
    stats=$(grep -o 'events=[0-9]* .*events_per_sync=[0-9.]*' "$dir/ceiling.log" | tail -n 1)
    [ -n "$stats" ] || die "ceiling printed no stats on exit (log: $dir/ceiling.log)"
    cpu=$(cpu_split "$s0" "$s1" "$p0" "$p1" "$(field "$line" events)" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
    stats="stored=$(field "$stats" events) per_sync=$(field "$stats" events_per_sync)"
    record ceiling "$round" "$line $stats ${cpu/herald_cpus=/server_cpus=}"
    cleanup_data "$dir/data"
}

case_herald() { # case_herald NAME CONNS BATCH(0 = binary)
    local name=$1 dir=$RUN/$1.$round before after line
    mkdir -p "$dir"
    start_herald "$dir/data" "$dir/herald.log"
    before=$(herald_last_seq "$HERALD_URL")
    local s0 p0 s1 p1 t0 t1
    s0=$(sys_ticks) p0=$(proc_ticks "$HERALD_PID") t0=$(date +%s.%N)
    line=$(run_wrk "$name" "$HERALD_URL" "$2" "$3" "$dir/wrk.out")
    s1=$(sys_ticks) p1=$(proc_ticks "$HERALD_PID") t1=$(date +%s.%N)
    after=$(herald_last_seq "$HERALD_URL")
    record "$name" "$round" "$line stored=$((after - before)) $(cpu_split "$s0" "$s1" "$p0" "$p1" \
        "$((after - before))" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")"
    stop_pid "$HERALD_PID"
    cleanup_data "$dir/data"
}
case_herald_binary() { case_herald herald_binary "$CONNS" 0; }
case_herald_batch() { case_herald herald_batch "$BATCH_CONNS" "$BATCH"; }

case_redis() {
    local dir=$RUN/redis.$round port value rps n line before after
    mkdir -p "$dir"
    port=$(free_port)
    start_bg redis "$dir/redis.log" redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
        --appendonly yes --appendfsync always --save '' --auto-aof-rewrite-percentage 0 \
        --protected-mode no --daemonize no
    local pid=$LAST_PID
    wait_until "$pid" "$dir/redis.log" redis redis-cli -h 127.0.0.1 -p "$port" ping
    value=$(head -c "$DATA_BYTES" /dev/zero | tr '\0' x)
    rb() { # rb N: one redis-benchmark run, prints its CSV result line
        timeout $((SECS * 3 + 60)) redis-benchmark -h 127.0.0.1 -p "$port" -c "$CONNS" \
            --threads "$THREADS" -n "$1" --csv XADD bench '*' f "$value" 2>"$dir/rb.err" | tail -n 1
    }
    # redis-benchmark counts requests, not seconds: calibrate, then size the run to ~SECS.
    rps=$(rb 5000 | awk -F'","' '{print $2}')
    n=$(awk -v r="$rps" -v s="$SECS" 'BEGIN { n = int(r * s); if (n < 10000) n = 10000;
        if (n > 100000000) n = 100000000; print n }')
    before=$(redis-cli -h 127.0.0.1 -p "$port" XLEN bench)
    line=$(rb "$n")
    after=$(redis-cli -h 127.0.0.1 -p "$port" XLEN bench)
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    line=$(echo "$line" | tr -d '"' | awk -F, -v n="$n" -v b="$DATA_BYTES" -v st="$((after - before))" '{
        printf "RESULT case=redis requests=%d events=%d secs=%.3f ops_per_s=%.1f mb_per_s=%.2f p50_us=%d p99_us=%d errors=%d non2xx=0 stored=%d\n",
            n, n, n / $2, $2, $2 * b / 1e6, $5 * 1000, $7 * 1000, (st < n ? n - st : 0), st }')
    record redis "$round" "$line"
    stop_pid "$pid"
    cleanup_data "$dir/appendonlydir"
}

case_nats() {
    local dir=$RUN/nats.$round port out
    mkdir -p "$dir"
    port=$(free_port)
    start_bg nats "$dir/nats.log" nats-server -a 127.0.0.1 -p "$port" -js -sd "$dir/js"
    local pid=$LAST_PID
    wait_until "$pid" "$dir/nats.log" nats-server grep -q 'Server is ready' "$dir/nats.log"
    out=$dir/nats_pub.out
    local extra=()
    [ "${BENCH_NATS_MSGID:-0}" = 1 ] && extra+=(--msgid)
    timeout $((SECS + SHORT + 90)) "$OUT/bin/nats_pub" --url "nats://127.0.0.1:$port" --seconds "$SECS" \
        --sync-seconds "$SHORT" --size "$DATA_BYTES" --window "$NATS_WINDOW" "${extra[@]+"${extra[@]}"}" \
        >"$out" 2>&1 || { cat "$out" >&2; die "nats_pub failed"; }
    record nats_async "$round" "$(grep '^RESULT case=nats_async' "$out")"
    record nats_sync "$round" "$(grep '^RESULT case=nats_sync' "$out")"
    stop_pid "$pid"
    cleanup_data "$dir/js"
}

case_disk() {
    local dir=$RUN/disk.$round
    mkdir -p "$dir"
    local d=$OUT/bin/disk_fsync chunk=$((BATCH * DATA_BYTES))
    record disk_append "$round" "$("$d" --dir "$dir" --chunk "$chunk" --seconds "$SECS" --mode append | grep '^RESULT')"
    record disk_prezero "$round" "$("$d" --dir "$dir" --chunk "$chunk" --seconds "$SECS" --mode prezero | grep '^RESULT')"
    record disk_1k "$round" "$("$d" --dir "$dir" --chunk "$DATA_BYTES" --seconds "$SHORT" --mode append | grep '^RESULT')"
}

# ---- header ----
fs=$(stat -f -c %T "$RUN")
dev=$(df -P "$RUN" | awk 'NR == 2 { print $1 }')
{
    echo "Herald bench $(date -u +%Y-%m-%dT%H:%M:%SZ)  host $(hostname)  $(nproc) cores  load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "herald $HERALD (git $(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null || echo none), built $(date -u -r "$HERALD" +%Y-%m-%dT%H:%M:%SZ))"
    echo "peers: $(nginx -v 2>&1 | sed 's/.*: //'), redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), nats-server $(nats-server --version | sed 's/.*v//'), $(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}')"
    echo "data dirs: $RUN ($fs on $dev)   BENCH_SECONDS=$SECS  BENCH_ROUNDS=$ROUNDS  wrk/redis-benchmark threads=$THREADS"
} | tee "$RUN/header.txt"
case "$fs" in tmpfs | ramfs) log "WARNING: $RUN is on $fs: fsync costs nothing there; set BENCH_OUT to a real disk" ;; esac

for round in $(seq 1 "$ROUNDS"); do
    for c in $CASES; do
        declare -F "case_$c" >/dev/null || die "unknown case '$c' in BENCH_CASES"
        log "round $round/$ROUNDS: $c"
        "case_$c"
    done
done
cleanup_data "$RUN"/disk.*

# ---- report ----
get() { # get CASE ROUND KEY
    local l=${RES[$1.$2]:-}
    [ -n "$l" ] && field "$l" "$3" || echo ""
}
median() { # numbers on stdin (blank lines ignored) -> median, or empty
    { grep -v '^$' || true; } | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
med() { # med CASE KEY: median over rounds
    local r
    for r in $(seq 1 "$ROUNDS"); do get "$1" "$r" "$2"; echo; done | median
}

ratio() { # ratio HCASE HKEY PCASE PKEY -> median over rounds of herald/peer (empty if missing)
    local r h p
    for r in $(seq 1 "$ROUNDS"); do
        h=$(get "$1" "$r" "$2")
        p=$(get "$3" "$r" "$4")
        [ -n "$h" ] && [ -n "$p" ] && awk -v h="$h" -v p="$p" 'BEGIN { if (p > 0) printf "%.4f\n", h / p }'
        echo
    done | median
}
# The disk reference for the bandwidth target: per round, the better of the two 100 KiB modes.
for r in $(seq 1 "$ROUNDS"); do
    a=$(get disk_append "$r" mb_per_s)
    z=$(get disk_prezero "$r" mb_per_s)
    [ -n "$a$z" ] && RES[disk_best.$r]="RESULT mb_per_s=$(awk -v a="${a:-0}" -v z="${z:-0}" 'BEGIN { print (a > z ? a : z) }')"
done
R_NGINX=$(ratio herald_binary ops_per_s nginx ops_per_s)
R_REDIS=$(ratio herald_binary ops_per_s redis ops_per_s)
R_NATS=$(ratio herald_batch ops_per_s nats_async ops_per_s)
R_DISK_APPEND=$(ratio herald_batch mb_per_s disk_append mb_per_s)
R_DISK_PREZERO=$(ratio herald_batch mb_per_s disk_prezero mb_per_s)
R_DISK_BEST=$(ratio herald_batch mb_per_s disk_best mb_per_s)
R_CEILING=$(ratio herald_binary ops_per_s ceiling ops_per_s)
R_CEIL_NGINX=$(ratio ceiling ops_per_s nginx ops_per_s)
R_CEIL_REDIS=$(ratio ceiling ops_per_s redis ops_per_s)

row() { # row CASE LABEL UNIT RATIO NOTE
    local ops mb p50 p99
    ops=$(med "$1" ops_per_s)
    [ -n "$ops" ] || return 0
    mb=$(med "$1" mb_per_s)
    p50=$(med "$1" p50_us)
    p99=$(med "$1" p99_us)
    awk -v l="$2" -v u="$3" -v o="$ops" -v m="$mb" -v a="$p50" -v b="$p99" -v x="$4" -v n="$5" 'BEGIN {
        printf "  %-54s %9.0f %-6s %7s %8.2f %8.2f %9s  %s\n", l, o, u, (m == "" ? "-" : sprintf("%.1f", m)),
            a / 1000, b / 1000, (x == "" ? "-" : sprintf("%.2fx", x)), n }'
}

notes_http() { # socket errors, non-2xx answers, and (herald) events stored vs acknowledged
    local e s st req r n=""
    for r in $(seq 1 "$ROUNDS"); do
        e=$(get "$1" "$r" errors)
        s=$(get "$1" "$r" non2xx)
        [ "${e:-0}${s:-0}" = 00 ] || n="$n round $r: socket errors $e, non-2xx $s;"
        st=$(get "$1" "$r" stored)
        req=$(get "$1" "$r" events)
        if [ -n "$st" ] && [ -n "$req" ] && [ "$st" -lt "$req" ]; then
            n="$n round $r: STORED $st < ACKED $req (duplicates or loss!);"
        fi
    done
    local hc cu id
    hc=$(med "$1" herald_cpus)
    cu=$(med "$1" cpu_us_per_event)
    id=$(med "$1" idle_cpus)
    n=${n:-ok}
    [ -z "$hc" ] || n="$n; herald used $hc CPUs ($cu us/event), machine idle $id CPUs"
    echo "${n# }"
}

notes_ceiling() { # the ceiling row: its own ratios (the column is herald / ceiling), CPU, batching
    awk -v n="$(notes_http ceiling)" -v rn="$R_CEIL_NGINX" -v rr="$R_CEIL_REDIS" -v c="$(med ceiling server_cpus)" \
        -v u="$(med ceiling cpu_us_per_event)" -v i="$(med ceiling idle_cpus)" -v b="$(med ceiling per_sync)" \
        -v t="$CEILING_THREADS" -v q="$CEILING_QUEUE" -v z="$CEILING_PREZERO" 'BEGIN {
        s = n;
        if (rn != "") s = s sprintf("; ceiling/nginx %.2fx", rn);
        if (rr != "") s = s sprintf("; ceiling/redis %.2fx", rr);
        printf "%s; %s thr, %s queue, %s; %.1f events/fdatasync; used %s CPUs (%s us/event), idle %s\n",
            s, t, q, (z > 0 ? z " MiB pre-zeroed" : "appending"), b, c, u, i }'
}

target() { # target LABEL RATIO MIN NOTE
    if [ -z "$2" ]; then
        printf "  %-54s %7s  target >= %.2fx  %s\n" "$1" "n/a" "$3" "(case not run)"
        return
    fi
    awk -v l="$1" -v r="$2" -v m="$3" -v n="$4" 'BEGIN {
        printf "  %-54s %6.2fx  target >= %.2fx  %-11s %s\n", l, r, m, (r >= m ? "met" : "NOT MET"), n }'
}

KIB=$((BATCH * DATA_BYTES / 1024))
{
    echo
    printf "  %-54s %9s %-6s %7s %8s %8s %9s  %s\n" "case (median of $ROUNDS round(s))" "rate/s" "" "MB/s" "p50 ms" "p99 ms" "herald/it" notes
    row herald_binary "herald  binary POST 1 KiB, $CONNS conns, fsync=always" events "" "$(notes_http herald_binary)"
    row herald_batch "herald  batch $BATCH x 1 KiB, $BATCH_CONNS conns, fsync=always" events "" "$(notes_http herald_batch); latency per request"
    row nginx "nginx   'return 202' to the same POST, $CONNS conns" req "$R_NGINX" "$(notes_http nginx); vs herald binary"
    row redis "redis   XADD 1 KiB, appendfsync always, $CONNS clients" events "$R_REDIS" "$(notes_http redis); vs herald binary"
    row ceiling "ceiling lean durable (recv+append+fdatasync+send)" events "$R_CEILING" "$(notes_ceiling)"
    row nats_async "nats    JetStream async publish 1 KiB, window $NATS_WINDOW" msgs "$R_NATS" "vs herald batch; acked before fsync (README)"
    row nats_sync "nats    JetStream sync publish 1 KiB (1 in flight)" msgs "" "latency of one acked publish"
    row disk_append "disk    $KIB KiB write+fdatasync, appending" writes "$R_DISK_APPEND" "MB/s vs herald batch"
    row disk_prezero "disk    $KIB KiB write+fdatasync, pre-zeroed file" writes "$R_DISK_PREZERO" "MB/s vs herald batch"
    row disk_1k "disk    1 KiB write+fdatasync, appending" writes "" "reference: the unbatched fsync rate"
    echo
    echo "  targets: herald / peer, same run$([ "$ROUNDS" -gt 1 ] && echo "; median of the $ROUNDS per-round ratios")"
    target "single-event ingest vs nginx 202 (events/s)" "$R_NGINX" 0.5 ""
    target "single-event ingest vs redis XADD always (events/s)" "$R_REDIS" 2 ""
    target "batched ingest vs NATS async publish (events/s)" "$R_NATS" 1 ""
    target "batched ingest vs disk fdatasync'd seq write (MB/s)" "$R_DISK_BEST" 0.8 \
        "disk = better of appending/pre-zeroed"
    echo
    echo "  MB/s counts event data (1 KiB per event) only. Latency: per HTTP request (wrk), per command"
    echo "  (redis-benchmark), per message (nats_pub), per write+fdatasync (disk)."
} | tee "$RUN/table.txt"
delivery_report
echo "  Raw RESULT lines, logs and configs: $RUN" | tee -a "$RUN/table.txt"
for k in "${!RES[@]}"; do echo "$k ${RES[$k]}"; done | sort >"$RUN/results.txt"
