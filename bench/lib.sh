# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Shared helpers for bench/run.sh and bench/profile.sh (sourced, not run).
# Every process started here is recorded by PID and stopped by PID (never by name).

BENCH_PIDS=()

log() { printf '%s\n' "bench: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# A TCP port on 127.0.0.1 that nothing listens on (below the ephemeral range). Bounded.
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

# start_bg NAME LOGFILE CMD... : runs CMD in the background; sets LAST_PID.
start_bg() {
    local name=$1 logf=$2
    shift 2
    "$@" >"$logf" 2>&1 &
    LAST_PID=$!
    BENCH_PIDS+=("$LAST_PID")
    log "started $name (pid $LAST_PID)"
}

# stop_pid PID: SIGTERM, wait up to 15 s, then SIGKILL; reaps it.
stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid did not stop on SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    local keep=() p
    for p in "${BENCH_PIDS[@]+"${BENCH_PIDS[@]}"}"; do
        [ "$p" = "$pid" ] || keep+=("$p")
    done
    BENCH_PIDS=("${keep[@]+"${keep[@]}"}")
}

stop_all() {
    local p
    for p in "${BENCH_PIDS[@]+"${BENCH_PIDS[@]}"}"; do
        stop_pid "$p"
    done
}

# wait_until PID LOGFILE WHAT CMD...: polls CMD every 0.1 s for up to 15 s while PID lives.
wait_until() {
    local pid=$1 logf=$2 what=$3
    shift 3
    for _ in $(seq 1 150); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$logf" >&2 || true
            die "$what exited before it was ready (log: $logf)"
        fi
        sleep 0.1
    done
    tail -n 20 "$logf" >&2 || true
    die "$what not ready after 15 s (log: $logf)"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_herald DATA_DIR LOGFILE: sets HERALD_PID, HERALD_URL.
start_herald() {
    local data=$1 logf=$2 port
    port=$(free_port)
    # shellcheck disable=SC2086
    start_bg herald "$logf" "$HERALD" serve --listen "127.0.0.1:$port" --data "$data" ${BENCH_HERALD_ARGS:-}
    HERALD_PID=$LAST_PID
    HERALD_URL="http://127.0.0.1:$port"
    wait_until "$HERALD_PID" "$logf" herald curl -sf --max-time 2 "$HERALD_URL/healthz"
}

# herald_last_seq URL: the default bus's last seq (0 if none).
herald_last_seq() {
    local s
    s=$(curl -sf --max-time 10 "$1/v1/buses/default" | grep -o '"last_seq":[0-9]*' | cut -d: -f2 || true)
    echo "${s:-0}"
}

# field LINE KEY: the value of KEY=value in a RESULT line.
field() {
    local kv
    for kv in $1; do
        case "$kv" in "$2="*) echo "${kv#*=}"; return 0 ;; esac
    done
    echo ""
}

# CPU accounting from /proc (works without perf). Ticks are USER_HZ.
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
# sys_ticks: "total idle steal" over all CPUs (idle includes iowait; guest time is inside user).
sys_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $5 + $6, $9 }' /proc/stat; }
# proc_ticks PID: user+system ticks of a process (all its threads).
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# cpu_split "SYS_BEFORE" "SYS_AFTER" PROC_BEFORE PROC_AFTER EVENTS SECONDS
#   -> "herald_cpus=A busy_cpus=B idle_cpus=C steal_cpus=D cpu_us_per_event=E" (CPUs = cores' worth)
cpu_split() {
    awk -v a="$1" -v b="$2" -v p0="$3" -v p1="$4" -v ev="$5" -v s="$6" -v hz="$CLK_TCK" 'BEGIN {
        split(a, x, " "); split(b, y, " ");
        t = (y[1] - x[1]) / hz / s; idle = (y[2] - x[2]) / hz / s; st = (y[3] - x[3]) / hz / s;
        h = (p1 - p0) / hz / s;
        printf "herald_cpus=%.2f busy_cpus=%.2f idle_cpus=%.2f steal_cpus=%.2f cpu_us_per_event=%.1f\n",
            h, t - idle - st, idle, st, (ev > 0 ? (p1 - p0) / hz * 1e6 / ev : 0) }'
}

# ---- delivery (bench/delivery.sh, bench/profile_delivery.sh) ----

# start_nginx_sink DIR N: nginx answering 202 with an empty body on N ports (one sink per
# trigger), logging "$msec $http_ce_sent $server_port $status $http_ce_id" per request to
# DIR/access.log (buffered; flushed when nginx stops). Sets SINK_PID and SINK_PORTS (array).
start_nginx_sink() {
    local dir=$1 n=$2 i listen=""
    mkdir -p "$dir"
    SINK_PORTS=()
    for i in $(seq 1 "$n"); do
        SINK_PORTS+=("$(free_port)")
        listen="$listen        listen 127.0.0.1:${SINK_PORTS[$((i - 1))]};
"
    done
    cat >"$dir/nginx.conf" <<NGX
worker_processes auto;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    log_format sink '\$msec \$http_ce_sent \$server_port \$status \$http_ce_id';
    access_log $dir/access.log sink buffer=256k flush=1s;
    client_body_temp_path $dir/body;
    client_body_buffer_size 1m;
    client_max_body_size 32m;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    server {
$listen        location / { return 202; }
    }
}
NGX
    start_bg "nginx sink" "$dir/nginx.log" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    SINK_PID=$LAST_PID
    for i in "${SINK_PORTS[@]}"; do
        wait_until "$SINK_PID" "$dir/nginx.log" "nginx sink" port_open "$i"
    done
}

# put_trigger URL NAME SINK_URL MAX_IN_FLIGHT [PIPELINE]: a trigger on the default bus, no filters
# (PIPELINE: its delivery.pipeline, default 1).
put_trigger() {
    local delivery="" # the default pipeline (1) is left out: older herald builds can be compared
    [ "${5:-1}" = 1 ] || delivery=",\"delivery\":{\"pipeline\":$5}"
    curl -sf --max-time 10 -X PUT -H 'content-type: application/json' \
        -d "{\"bus\":\"default\",\"sink\":\"$3\",\"max_in_flight\":$4$delivery}" \
        "$1/v1/triggers/$2" >/dev/null ||
        die "PUT /v1/triggers/$2 failed"
}

# trigger_status URL NAME -> "cursor last_seq delivered retried failed in_flight" (empty on error)
trigger_status() {
    curl -sf --max-time 10 "$1/v1/triggers/$2" | awk '{
        n = split("cursor last_seq delivered retried failed in_flight", k, " "); o = "";
        for (i = 1; i <= n; i++) { v = ""; if (match($0, "\"" k[i] "\":[0-9]+")) { v = substr($0, RSTART, RLENGTH); sub(/.*:/, "", v) }
            o = o (i > 1 ? " " : "") (v == "" ? "?" : v) }
        print o }' || true
}

# tree_ticks PID: user+system ticks of PID and its direct children (nginx: master + workers).
tree_ticks() {
    local t c kids=()
    t=$(proc_ticks "$1")
    read -ra kids <<<"$(cat "/proc/$1/task/"*/children 2>/dev/null | tr '\n' ' ')"
    for c in "${kids[@]+"${kids[@]}"}"; do
        t=$((t + $(proc_ticks "$c")))
    done
    echo "$t"
}
