# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Herald's delivery benchmark: publish -> herald (fsync=always, default bus) -> trigger(s) -> an
# nginx sink answering 202. Sourced by bench/run.sh, which runs these cases in the same rounds as
# its `nginx` case (the HTTP ceiling the ratios use) and calls delivery_report at the end.
#
#   BENCH_CASES="nginx delivery delivery_paced fanout" bench/run.sh build   (just these)
#
# Per case: start an nginx sink (one port per trigger) and a fresh herald, PUT the trigger(s)
# (no filters), run wrk (ce.lua, binary 1 KiB events, each with the extension ce-sent = wall-clock
# µs at send) for warm-up + window; sample the bus's last_seq and the triggers' cursors at the
# window's ends; after wrk stops, wait (bounded) until every trigger's cursor == last_seq; stop
# herald and nginx by PID; then read the sink's access log ($msec = receive time):
#   delivered/s = sink log lines with $msec inside the window / window length,
#   latency     = $msec - ce-sent for the events sent inside the window (1 ms resolution: $msec),
#   lost        = published (last_seq) - distinct ids the sink saw, per trigger; dup = lines - ids.
# Uses run.sh's globals (RUN, round, SECS, SHORT, CONNS, THREADS, NONCE, DATA_BYTES, HERE, HERALD)
# and its record/get/med/median/ratio helpers.
# shellcheck disable=SC2154 # round: run.sh's loop variable

DELIVERY_MIF=${BENCH_DELIVERY_MIF:-"64 256"}     # max_in_flight values for the closed-loop case
DELIVERY_WARM=$(int_env BENCH_DELIVERY_WARMUP 2 0 600)
DELIVERY_DRAIN=$(int_env BENCH_DELIVERY_DRAIN 120 1 3600) # longest wait for the cursors
# events/s of the paced case; "auto" = a little above the throughput target (0.3 x this round's
# nginx rate), so the paced case shows the latency herald gives AT the target throughput
DELIVERY_PACE=${BENCH_DELIVERY_PACE:-auto}
[ "$DELIVERY_PACE" = auto ] || DELIVERY_PACE=$(int_env BENCH_DELIVERY_PACE 5000 1 10000000)
FANOUT=$(int_env BENCH_FANOUT 10 1 100)
# delivery.pipeline of the *_pipe cases (HTTP/1.1 pipelining to the sink; the default is 1)
PIPELINE=$(int_env BENCH_PIPELINE 8 2 64)
for m in $DELIVERY_MIF; do
    case "$m" in '' | *[!0-9]* | 0) die "BENCH_DELIVERY_MIF: positive integers (got '$m')" ;; esac
done

# delivery_case NAME TRIGGERS MAX_IN_FLIGHT WINDOW_SECS RATE(events/s; 0 = closed loop) [PIPELINE]
delivery_case() {
    local name=$1 ntrig=$2 mif=$3 win=$4 rate=$5 pipe=${6:-1} dir=$RUN/$1.$round
    mkdir -p "$dir"
    start_nginx_sink "$dir/sink" "$ntrig"
    # shellcheck disable=SC2153 # SINK_PID, SINK_PORTS: set by start_nginx_sink (lib.sh)
    local sink_pid=$SINK_PID ports=("${SINK_PORTS[@]}") i
    start_herald "$dir/data" "$dir/herald.log"
    for i in $(seq 1 "$ntrig"); do
        put_trigger "$HERALD_URL" "t$i" "http://127.0.0.1:${ports[$((i - 1))]}/t$i" "$mif" "$pipe"
    done

    start_bg wrk "$dir/wrk.out" env BENCH_CASE="$name" BENCH_BATCH=0 BENCH_SENT=1 BENCH_RATE="$rate" BENCH_WRK_THREADS="$THREADS" \
        BENCH_NONCE="$NONCE-$name-$round" BENCH_DATA_BYTES="$DATA_BYTES" \
        timeout $((DELIVERY_WARM + win + 60)) wrk -t"$THREADS" -c"$CONNS" -d"$((DELIVERY_WARM + win + 1))s" \
        --timeout 10s --latency -s "$HERE/ce.lua" "$HERALD_URL/v1/buses/default/events"
    local wrk_pid=$LAST_PID
    sleep "$DELIVERY_WARM"

    # cursors(): "min_cursor" over the triggers (the least advanced one) and the bus's last_seq
    cursors() {
        local j st c min=""
        for j in $(seq 1 "$ntrig"); do
            st=$(trigger_status "$HERALD_URL" "t$j")
            c=${st%% *}
            case "$c" in '' | *[!0-9]*) c=0 ;; esac
            if [ -z "$min" ] || [ "$c" -lt "$min" ]; then min=$c; fi
        done
        echo "$min $(herald_last_seq "$HERALD_URL")"
    }
    local t0 t1 c0 c1 s0 s1 p0 p1 q0 q1
    s0=$(sys_ticks) p0=$(proc_ticks "$HERALD_PID") q0=$(tree_ticks "$sink_pid")
    t0=$(date +%s.%N)
    c0=$(cursors)
    sleep "$win"
    t1=$(date +%s.%N)
    c1=$(cursors)
    s1=$(sys_ticks) p1=$(proc_ticks "$HERALD_PID") q1=$(tree_ticks "$sink_pid")
    wait "$wrk_pid" 2>/dev/null || true
    stop_pid "$wrk_pid"
    local c2
    c2=$(cursors) # when the load stopped: what is still owed is delivered with no ingest running
    local line
    line=$(grep '^RESULT ' "$dir/wrk.out" | tail -n 1 || true)
    [ -n "$line" ] || { cat "$dir/wrk.out" >&2; die "wrk printed no RESULT for $name"; }

    # Drain: bounded wait for every cursor to reach the last seq.
    local td0 td1 cd last drained=0
    td0=$(date +%s.%N)
    last=${c2#* }
    for _ in $(seq 1 $((DELIVERY_DRAIN * 10))); do
        cd=$(cursors)
        last=${cd#* } # publishes in flight when wrk stopped may still land: compare with the latest
        if [ "${cd%% *}" -ge "$last" ]; then
            drained=1
            break
        fi
        sleep 0.1
    done
    td1=$(date +%s.%N)
    [ "$drained" = 1 ] || log "$name: NOT DRAINED after ${DELIVERY_DRAIN}s: least cursor ${cd%% *} < last_seq $last"
    local st stats="" retried=0 failed=0 delivered=0
    for i in $(seq 1 "$ntrig"); do
        st=$(trigger_status "$HERALD_URL" "t$i")
        stats="$stats t$i=[$st]"
        local d r f
        read -r _ _ d r f _ <<<"$st"
        delivered=$((delivered + ${d//\?/0})) retried=$((retried + ${r//\?/0})) failed=$((failed + ${f//\?/0}))
    done
    echo "cursor/last_seq/delivered/retried/failed/in_flight after drain:$stats" >"$dir/status.txt"
    stop_pid "$HERALD_PID"
    stop_pid "$sink_pid" # flushes the access log

    # The sink log: window rate, per trigger; latency of events sent inside the window; loss.
    local ana cpu
    ana=$(awk -v t0="$t0" -v t1="$t1" -v n="$ntrig" -v last="$last" '
        { ms = $1 + 0; port = $3; id = $5
          if (!(port in seen_port)) { seen_port[port] = 1 }
          lines[port]++
          if (!((port, id) in ids)) { ids[port, id] = 1; uniq[port]++ }
          if (ms >= t0 && ms < t1) win[port]++
          if ($2 ~ /^[0-9]+$/) { s = $2 / 1e6; if (s >= t0 && s < t1) { d = (ms - s) * 1e6; print (d < 0 ? 0 : d) > "/dev/stderr" } }
          if ($4 != 202) bad++ }
        END { tot = 0; mn = -1; mx = 0; lost = 0; dup = 0
          for (p in seen_port) { tot += win[p]; if (mn < 0 || win[p] < mn) mn = win[p]; if (win[p] > mx) mx = win[p]
                                 if (uniq[p] < last) lost += last - uniq[p]; else extra += uniq[p] - last
                                 dup += lines[p] - uniq[p] }
          np = 0; for (p in seen_port) np++
          if (np < n) { lost += (n - np) * last; mn = 0 }
          w = t1 - t0
          printf "ops_per_s=%.1f per_trigger_min=%.1f per_trigger_max=%.1f lost=%d extra=%d dup=%d non202=%d sink_lines=%d\n",
              tot / w, mn / w, mx / w, lost, extra + 0, dup, bad + 0, NR }' "$dir/sink/access.log" 2>"$dir/latency_us.txt")
    local pct
    pct=$(sort -g "$dir/latency_us.txt" | awk '{ v[NR] = $1 } END {
        if (!NR) { print "p50_us= p99_us= lat_samples=0"; exit }
        i50 = int(NR * 0.50); i99 = int(NR * 0.99); i999 = int(NR * 0.999); if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1; if (i999 < 1) i999 = 1
        printf "p50_us=%d p99_us=%d p999_us=%d max_us=%d lat_samples=%d\n", v[i50], v[i99], v[i999], v[NR], NR }')
    cleanup_data "$dir/latency_us.txt" "$dir/sink/access.log" # big: 1.8M lines for fan-out
    cpu=$(awk -v p0="$q0" -v p1="$q1" -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN { printf "sink_cpus=%.2f", (p1 - p0) / hz / (b - a) }')
    local pub_rate lag0 lag1 drain_s drain_rate
    read -r pub_rate lag0 lag1 drain_s drain_rate < <(awk -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" \
        -v d0="$td0" -v d1="$td1" -v c2="$c2" -v n="$ntrig" 'BEGIN {
            split(c0, a, " "); split(c1, b, " "); split(c2, c, " ");
            # drain rate: deliveries (all triggers) still owed when the load stopped / drain time
            # (only when that took >= 0.5 s: otherwise nothing to measure, reported as "-")
            ds = d1 - d0; owed = (c[2] - c[1]) * n
            printf "%.1f %d %d %.2f %s\n", (b[2] - a[2]) / (t1 - t0), a[2] - a[1], b[2] - b[1], ds, (ds >= 0.5 ? sprintf("%.1f", owed / ds) : "") }')
    record "$name" "$round" "RESULT case=$name triggers=$ntrig max_in_flight=$mif pipeline=$pipe $(field "$line" ops_per_s | sed 's/^/wrk_pub_per_s=/') \
pub_per_s=$pub_rate pub_p50_us=$(field "$line" p50_us) pub_p99_us=$(field "$line" p99_us) errors=$(field "$line" errors) \
non2xx=$(field "$line" non2xx) $ana $pct lag_start=$lag0 lag_end=$lag1 last_seq=$last drained=$drained drain_s=$drain_s \
drain_per_s=${drain_rate:-} delivered=$delivered retried=$retried failed=$failed \
$(cpu_split "$s0" "$s1" "$p0" "$p1" "$(awk -v a="$c0" -v b="$c1" -v n="$ntrig" 'BEGIN { split(a, x, " "); split(b, y, " "); print (y[1] - x[1]) * n }')" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')") $cpu"
    cleanup_data "$dir/data"
}

case_delivery() {
    local m
    for m in $DELIVERY_MIF; do
        log "  delivery, 1 trigger, max_in_flight $m"
        delivery_case "delivery_$m" 1 "$m" "$SECS" 0
    done
}
# Paced: DELIVERY_PACE events/s, open loop (ce.lua's BENCH_RATE: send slots 1/rate apart), to
# see the publish->delivery latency when herald is not saturated. With "auto", the rate is
# 0.32 x this round's nginx rate (run nginx first): the latency AT the throughput target.
paced_rate() {
    local rate=$DELIVERY_PACE
    if [ "$rate" = auto ]; then
        rate=$(awk -v n="$(field "${RES[nginx.$round]:-}" ops_per_s)" 'BEGIN { print (n > 0 ? int(n * 0.32) : 5000) }')
    fi
    echo "$rate"
}
case_delivery_paced() {
    delivery_case delivery_paced 1 "${DELIVERY_MIF%% *}" "$SECS" "$(paced_rate)"
}
# The same two loads with delivery.pipeline = BENCH_PIPELINE (opt-in HTTP/1.1 pipelining).
case_delivery_pipe() {
    delivery_case delivery_pipe 1 "${DELIVERY_MIF%% *}" "$SECS" 0 "$PIPELINE"
}
case_delivery_paced_pipe() {
    delivery_case delivery_paced_pipe 1 "${DELIVERY_MIF%% *}" "$SECS" "$(paced_rate)" "$PIPELINE"
}
case_fanout() {
    local m=${DELIVERY_MIF%% *}
    delivery_case fanout "$FANOUT" "$m" "$SHORT" 0
}

# paced_target CASE LABEL: the p99 latency target of a paced case (p99 <= 5x nginx's p99), met
# only at >= 0.3x nginx's rate. LABEL "" = the main line; nothing when the case did not run.
paced_target() {
    local r t l=$2
    r=$(ratio "$1" p99_us nginx p99_us) t=$(ratio "$1" ops_per_s nginx ops_per_s)
    if [ -z "$r" ] || [ -z "$t" ]; then
        [ -n "$l" ] || printf "  %-54s %7s  target <= 5.00x  (case %s not run)\n" \
            "p99 publish->delivery at the target rate vs nginx p99" "n/a" "$1"
        return 0
    fi
    l=${l:-"p99 publish->delivery"}" at $(printf %.2f "$t")x nginx rate"
    [ -n "$2" ] || l="$l vs nginx p99"
    awk -v l="$l" -v r="$r" -v t="$t" 'BEGIN {
        printf "  %-54s %6.2fx  target <= 5.00x  %s\n", l, r,
            (t < 0.3 ? "NOT MET (paced rate under 0.3x nginx)" : (r <= 5 ? "met" : "NOT MET")) }'
}

delivery_report() {
    local have=0 c
    for c in $(printf '%s\n' "${!RES[@]}" | sed 's/\.[0-9]*$//' | sort -u); do
        case "$c" in delivery_* | fanout) have=1 ;; esac
    done
    [ "$have" = 1 ] || return 0
    local first=${DELIVERY_MIF%% *} R_TPUT R_P99 m
    drow() { # drow CASE LABEL
        local ops
        ops=$(med "$1" ops_per_s)
        [ -n "$ops" ] || return 0
        awk -v l="$2" -v o="$ops" -v pub="$(med "$1" pub_per_s)" -v a="$(med "$1" p50_us)" -v b="$(med "$1" p99_us)" \
            -v pp="$(med "$1" pub_p99_us)" -v mn="$(med "$1" per_trigger_min)" -v mx="$(med "$1" per_trigger_max)" \
            -v dr="$(med "$1" drain_per_s)" -v x="$(ratio "$1" ops_per_s nginx ops_per_s)" -v n="$3" 'BEGIN {
            printf "  %-46s %9.0f %9.0f %8.2f %8.2f %8.2f %9s %9s  %s\n", l, o, pub, a / 1000, b / 1000, pp / 1000, (dr == "" ? "-" : sprintf("%.0f", dr)),
                (x == "" ? "-" : sprintf("%.2fx", x)), n }'
    }
    dnotes() { # lag growth, drain, loss, errors, CPU
        local r n="" lost dup st e s dr lag0 lag1 f x
        for r in $(seq 1 "$ROUNDS"); do
            [ -n "$(get "$1" "$r" ops_per_s)" ] || continue
            lost=$(get "$1" "$r" lost) dup=$(get "$1" "$r" dup) dr=$(get "$1" "$r" drained) f=$(get "$1" "$r" failed)
            e=$(get "$1" "$r" errors) s=$(get "$1" "$r" non2xx) st=$(get "$1" "$r" non202)
            [ "$dr" = 1 ] || n="$n r$r: NOT DRAINED in ${DELIVERY_DRAIN}s;"
            [ "${lost:-0}" = 0 ] || n="$n r$r: LOST $lost;"
            x=$(get "$1" "$r" extra)
            [ "${x:-0}" = 0 ] || n="$n r$r: $x ids beyond last_seq at the sink;"
            [ "${dup:-0}" = 0 ] || n="$n r$r: $dup duplicate deliveries;"
            [ "${f:-0}" = 0 ] || n="$n r$r: $f dead-lettered;"
            [ "${e:-0}${s:-0}${st:-0}" = 000 ] || n="$n r$r: publish errors $e, non-2xx $s, sink non-202 $st;"
        done
        lag0=$(med "$1" lag_start) lag1=$(med "$1" lag_end)
        n=${n%;}
        n=${n:-"all delivered, once"}
        echo "${n# }; lag ${lag0}->${lag1} events over the window; herald $(med "$1" herald_cpus) CPUs, sink $(med "$1" sink_cpus), idle $(med "$1" idle_cpus)"
    }
    R_TPUT=$(ratio "delivery_$first" ops_per_s nginx ops_per_s)
    R_P99=$(ratio "delivery_$first" p99_us nginx p99_us)
    {
        echo
        echo "  delivery: publish (wrk, $CONNS conns, binary 1 KiB, ce-sent) -> herald fsync=always -> trigger(s) -> nginx 202"
        printf "  %-46s %9s %9s %8s %8s %8s %9s %9s  %s\n" "case (median of $ROUNDS round(s))" "deliv/s" "publish/s" \
            "p50 ms" "p99 ms" "pub p99" "drain/s" "vs nginx" notes
        for m in $DELIVERY_MIF; do
            drow "delivery_$m" "1 trigger, max_in_flight $m, closed loop" "$(dnotes "delivery_$m")"
        done
        drow delivery_paced "1 trigger, paced (open loop, $DELIVERY_PACE)" "$(dnotes delivery_paced)"
        drow delivery_pipe "  same, closed loop, pipeline $PIPELINE" "$(dnotes delivery_pipe)"
        drow delivery_paced_pipe "  same, paced, pipeline $PIPELINE" "$(dnotes delivery_paced_pipe)"
        drow fanout "$FANOUT triggers (total), closed loop, ${SHORT}s" "$(dnotes fanout)"
        local pmin pmax
        pmin=$(med fanout per_trigger_min) pmax=$(med fanout per_trigger_max)
        [ -z "$pmin" ] || printf "  %-46s %9.0f..%.0f per trigger (least..most delivered)\n" "  fan-out per trigger" "$pmin" "$pmax"
        printf "  %-46s %9.0f req/s, p50 %.2f ms, p99 %.2f ms (the ceiling; access_log off)\n" "nginx 'return 202', direct POST (wrk)" \
            "$(med nginx ops_per_s)" "$(awk -v v="$(med nginx p50_us)" 'BEGIN { print v / 1000 }')" \
            "$(awk -v v="$(med nginx p99_us)" 'BEGIN { print v / 1000 }')"
        echo
        echo "  delivery targets: same run; median of the per-round ratios"
        target "end-to-end delivered/s vs nginx 202 (mif $first)" "$R_TPUT" 0.3 ""
        # The latency target is judged where latency means something: at (at least) the
        # throughput target, paced. A closed loop that publishes faster than one sink is fed
        # only measures how fast the backlog grows (shown for information).
        paced_target delivery_paced ""
        paced_target delivery_paced_pipe "  same with delivery.pipeline $PIPELINE"
        [ -z "$(med delivery_pipe ops_per_s)" ] ||
            target "  end-to-end delivered/s with delivery.pipeline $PIPELINE" \
                "$(ratio delivery_pipe ops_per_s nginx ops_per_s)" 0.3 ""
        [ -z "$R_P99" ] || awk -v l="p99 publish->delivery, closed loop (mif $first)" -v r="$R_P99" 'BEGIN {
                printf "  %-54s %6.2fx  (information: backlog growth when publishers outrun delivery)\n", l, r }'
        echo
        echo "  deliv/s: sink log lines received inside the window (after ${DELIVERY_WARM}s warm-up) / window;"
        echo "  publish/s: the bus's last_seq over the same window; p50/p99: sink \$msec - ce-sent for events sent"
        echo "  in the window (1 ms resolution); pub p99: wrk's publish latency; drain/s: deliveries still owed"
        echo "  when wrk stopped / time until every cursor == last_seq (delivery alone; - if under 0.5 s)."
        echo "  lag: last_seq - least cursor at the window's start and end. \$msec is truncated to the ms, so"
        echo "  delivery latencies read up to 1 ms low."
    } | tee -a "$RUN/table.txt"
}
