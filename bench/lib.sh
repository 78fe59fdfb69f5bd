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
