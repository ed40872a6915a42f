#!/usr/bin/env bash
# Failover benchmark: one of two backends fails during load, through nginx, HAProxy and gatehouse.
#
#   scripts/failover.sh            run and print the results
#   scripts/failover.sh --write    run, print, and append a dated "Failover" section to docs/benchmarks.md
#
# Environment:
#   DURATION=20          seconds of load per run
#   ROUNDS=3             interleaved rounds per scenario (the tables show medians)
#   CONNECTIONS=16       failover-load connections (closed loop, one thread each)
#   SLOW=1               a request slower than this many seconds counts as slow
#   FAIL_AT=5            second of the run at which backend B fails (refused, hanging, frozen)
#   RESTART_EVERY=4      restarting: B is killed every this many seconds ...
#   RESTART_DOWN=1       ... and started again this many seconds later
#   SCENARIOS="refused hanging restarting"   subset/order; "frozen" is an extra scenario
#   PROXIES="nginx haproxy gatehouse"        subset/order
#   KEEP_TMP=0           1: keep the temp dir (configs, logs, the load tool's JSON per run)
#
# Each run starts two fresh backends A and B (`failover-backend`, `200 ok`, keep-alive) and a
# fresh proxy in front of both with its retry / failover settings on, waits 2 s for health checks
# to settle, then runs `failover-load` against the proxy while B fails:
#   refused     B is killed (SIGKILL) FAIL_AT s in and stays down: connections are refused
#   hanging     B is killed FAIL_AT s in and restarted at once on the same port in hang mode
#               (accepts and reads requests, never answers)
#   restarting  B is killed every RESTART_EVERY s and started again RESTART_DOWN s later
#   frozen      B stops answering FAIL_AT s in on the connections it already has, without a
#               restart (a deadlocked process: pooled keep-alive connections hang too)
# Client-visible errors = 5xx responses + transport errors (reset, closed, timeout) seen by the
# load tool. Everything runs on 127.0.0.1 and shares the machine's cores.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-20}"
ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${CONNECTIONS:-16}"
SLOW="${SLOW:-1}"
FAIL_AT="${FAIL_AT:-5}"
RESTART_EVERY="${RESTART_EVERY:-4}"
RESTART_DOWN="${RESTART_DOWN:-1}"
SCENARIOS="${SCENARIOS:-refused hanging restarting}"
PROXIES="${PROXIES:-nginx haproxy gatehouse}"
KEEP_TMP="${KEEP_TMP:-0}"
SETTLE=2            # seconds between the proxy accepting connections and the load
REQUEST_TIMEOUT=10  # the load tool's per-request deadline (s)
WRITE=0

usage() { sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

for arg in "$@"; do
    case "$arg" in
        --write) WRITE=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "failover.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

log() { printf '[failover] %s\n' "$*" >&2; }
die() { printf 'failover.sh: %s\n' "$*" >&2; exit 1; }

for s in $SCENARIOS; do
    case "$s" in refused | hanging | restarting | frozen) ;; *) die "unknown scenario: $s" ;; esac
done
for p in $PROXIES; do
    case "$p" in nginx | haproxy | gatehouse) ;; *) die "unknown proxy: $p" ;; esac
done
((FAIL_AT < DURATION)) || die "FAIL_AT ($FAIL_AT) must be less than DURATION ($DURATION)"
((RESTART_DOWN < RESTART_EVERY)) || die "RESTART_DOWN ($RESTART_DOWN) must be less than RESTART_EVERY ($RESTART_EVERY)"

# ---------------------------------------------------------------------------------------------
# Processes and cleanup: remember every PID we start; on exit stop exactly those (TERM, then
# KILL). A PID we stop and reap during the run is removed from the list at once, so that
# cleanup can never signal an unrelated process that reused the number.
# ---------------------------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-failover.XXXXXX")"
STARTED_PIDS=()

forget_pid() {
    local pid="$1" p kept=()
    for p in "${STARTED_PIDS[@]}"; do
        [[ "$p" == "$pid" ]] || kept+=("$p")
    done
    STARTED_PIDS=("${kept[@]}")
}

# Stop one process we started: signal $2 (default TERM), up to ~5 s, then KILL; reap; forget.
# (The braces send bash's own "Killed" job notice to /dev/null.)
stop_pid() {
    local pid="$1" sig="${2:-TERM}"
    {
        kill "-$sig" "$pid" || true
        for _ in $(seq 50); do
            kill -0 "$pid" || break
            sleep 0.1
        done
        kill -KILL "$pid" || true
        wait "$pid" || true
    } 2>/dev/null
    forget_pid "$pid"
}

# shellcheck source=SCRIPTDIR/lib/cleanup.sh disable=SC1091 # (followed with shellcheck -x)
source "$(dirname "${BASH_SOURCE[0]}")/lib/cleanup.sh"
# Ports (below the kernel's ephemeral range: health checks and reconnects leave thousands of
# client sockets in TIME_WAIT there, and B restarted on its port could not bind one they hold),
# nginx instances, the idle check, the revision.
# shellcheck source=SCRIPTDIR/lib/bench-common.sh disable=SC1091 # (followed with shellcheck -x)
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
ensure_tools() {
    # Run by hand; on a fresh Debian/Ubuntu box (or CI image) install what is missing.
    local missing=()
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    command -v haproxy >/dev/null 2>&1 || [[ -x /usr/sbin/haproxy ]] || missing+=(haproxy)
    if ((${#missing[@]})); then
        log "missing: ${missing[*]}; installing with: apt-get install -y ${missing[*]}"
        local sudo=()
        [[ "$(id -u)" == 0 ]] || sudo=(sudo)
        "${sudo[@]}" apt-get install -y "${missing[@]}" ||
            die "install failed; run: sudo apt-get install -y ${missing[*]}"
    fi
    NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
    HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
    command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust: https://rustup.rs)"
}

build() {
    # gatehouse only when it is measured, so nginx/HAProxy runs work while the workspace is
    # mid-change.
    local packages=(-p gatehouse-bench) bins=()
    [[ " $PROXIES " == *" gatehouse "* ]] && packages=(-p gatehouse "${packages[@]}")
    # The revision being built (the tree may move on during a long run).
    GATEHOUSE_REV="$(gatehouse_revision "$ROOT")"
    log "building $GATEHOUSE_REV: cargo build --release ${packages[*]}"
    (cd "$ROOT" && cargo build --release "${packages[@]}")
    GATEHOUSE="$ROOT/target/release/gatehouse"
    BACKEND="$ROOT/target/release/failover-backend"
    LOAD="$ROOT/target/release/failover-load"
    bins=("$BACKEND" "$LOAD")
    [[ " $PROXIES " == *" gatehouse "* ]] && bins+=("$GATEHOUSE")
    local bin
    for bin in "${bins[@]}"; do
        [[ -x "$bin" ]] || die "no binary at $bin"
    done
}

# ---------------------------------------------------------------------------------------------
# Waiting and probing (free_port and wait_for_port are in lib/bench-common.sh)
# ---------------------------------------------------------------------------------------------
# Poll for a listener every 0.05 s, not 0.1: B's restarts are timed within the measured load.
PORT_POLL=0.05

# Minimal HTTP/1.1 GET over bash's /dev/tcp; prints the status code.
http_status() {
    local port="$1" line
    exec 4<>"/dev/tcp/127.0.0.1/$port" || return 0
    printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$port" >&4
    IFS= read -r -t 5 line <&4 || true
    exec 4>&-
    line="${line#HTTP/1.? }"
    echo "${line%% *}"
}

# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------

# start_backend VAR PORT MODE [EXTRA...]: start failover-backend, set VAR to its PID.
start_backend() {
    local var="$1" port="$2" mode="$3"
    shift 3
    "$BACKEND" --listen "127.0.0.1:$port" --mode "$mode" "$@" >>"$RUN_DIR/backend-$port.log" 2>&1 &
    local pid=$!
    STARTED_PIDS+=("$pid")
    printf -v "$var" '%s' "$pid"
    wait_for_port "$pid" "$port" "$RUN_DIR/backend-$port.log" "$PORT_POLL"
}

# ---------------------------------------------------------------------------------------------
# Proxy configs: each generator prints the config for (dir, listen port, backend A, backend B),
# so the docs can show them with symbolic ports.
# ---------------------------------------------------------------------------------------------
nginx_conf() {
    local dir="$1" listen="$2" a="$3" b="$4"
    nginx_main_conf "$dir"
    cat <<EOF
http {
$(nginx_temp_paths "$dir")
    access_log off;
    keepalive_requests 1000000;
    upstream app {
        # Passive health: one failure takes a server out for 10 s, then one request probes it.
        server 127.0.0.1:$a max_fails=1 fail_timeout=10s;
        server 127.0.0.1:$b max_fails=1 fail_timeout=10s;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$listen;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_read_timeout 1s;
            proxy_send_timeout 1s;
            # Retries: GET is idempotent, so any of these goes to the other server (default:
            # error timeout only); at most 2 tries per request.
            proxy_next_upstream error timeout http_502 http_503 http_504;
            proxy_next_upstream_tries 2;
        }
    }
}
EOF
}

haproxy_conf() {
    local dir="$1" listen="$2" a="$3" b="$4"
    cat <<EOF
global
    nbthread 1
    maxconn 4096
    pidfile $dir/haproxy.pid

defaults
    mode http
    timeout client 30s
    timeout http-keep-alive 30s
    timeout connect 1s
    timeout server 1s
    timeout check 500ms
    # One retry, on another server (redispatch on the last retry), for every retryable error:
    # conn-failure empty-response junk-response response-timeout 0rtt-rejected 500 502 503 504.
    retries 1
    option redispatch
    retry-on all-retryable-errors

frontend fe
    bind 127.0.0.1:$listen
    default_backend app

backend app
    balance roundrobin
    # HTTP checks (a TCP check would pass on a backend that accepts and never answers).
    option httpchk GET /
    server a 127.0.0.1:$a check inter 500ms fall 2 rise 2
    server b 127.0.0.1:$b check inter 500ms fall 2 rise 2
EOF
}

gatehouse_conf() {
    local dir="$1" listen="$2" a="$3" b="$4"
    cat <<EOF
[server]
listen = ["127.0.0.1:$listen"]
workers = 1
access_log = false
log_level = "warn"

[[route]]
path = "/"
upstream = "app"

[upstream.app]
servers = ["127.0.0.1:$a", "127.0.0.1:$b"]
connect_timeout = "1s"
response_timeout = "1s"

[upstream.app.health]
path = "/"
interval = "500ms"
timeout = "500ms"
unhealthy_threshold = 2
healthy_threshold = 2

[upstream.app.passive]
consecutive_failures = 2

[upstream.app.retry]
attempts = 2
EOF
}

# start_proxy NAME: config in $RUN_DIR, listening on $PROXY_PORT; sets PROXY_PID.
start_proxy() {
    local name="$1" dir="$RUN_DIR/$1" logfile
    mkdir -p "$dir"
    case "$name" in
        nginx)
            nginx_conf "$dir" "$PROXY_PORT" "$PORT_A" "$PORT_B" >"$dir/nginx.conf"
            logfile="$dir/error.log"
            start_nginx "$dir" "$dir/nginx.conf" # (adds the master to STARTED_PIDS)
            PROXY_PID=$NGINX_PID
            ;;
        haproxy)
            haproxy_conf "$dir" "$PROXY_PORT" "$PORT_A" "$PORT_B" >"$dir/haproxy.cfg"
            logfile="$dir/haproxy.log"
            "$HAPROXY" -c -q -f "$dir/haproxy.cfg" >"$logfile" 2>&1 ||
                { cat "$logfile" >&2; die "haproxy -c failed for $dir/haproxy.cfg"; }
            # -db: stay in the foreground (no daemon, no master-worker): one process to stop.
            "$HAPROXY" -db -f "$dir/haproxy.cfg" >>"$logfile" 2>&1 &
            PROXY_PID=$!
            STARTED_PIDS+=("$PROXY_PID")
            ;;
        gatehouse)
            gatehouse_conf "$dir" "$PROXY_PORT" "$PORT_A" "$PORT_B" >"$dir/gatehouse.toml"
            logfile="$dir/gatehouse.log"
            "$GATEHOUSE" check -c "$dir/gatehouse.toml" >"$logfile" 2>&1 ||
                { cat "$logfile" >&2; die "gatehouse check rejected $dir/gatehouse.toml"; }
            "$GATEHOUSE" run -c "$dir/gatehouse.toml" >>"$logfile" 2>&1 &
            PROXY_PID=$!
            STARTED_PIDS+=("$PROXY_PID")
            ;;
    esac
    wait_for_port "$PROXY_PID" "$PROXY_PORT" "$logfile" "$PORT_POLL"
}

# ---------------------------------------------------------------------------------------------
# One run: fresh backends and proxy, load, B fails on schedule, record the load tool's JSON.
# ---------------------------------------------------------------------------------------------

# Sleep until $1 seconds (may be fractional) after $T0_NS.
sleep_until() {
    local wait
    wait="$(awk -v t="$1" -v t0="$T0_NS" -v now="$(date +%s%N)" \
        'BEGIN { d = t - (now - t0) / 1e9; printf "%.3f", (d > 0 ? d : 0) }')"
    sleep "$wait"
}

kill_b() { stop_pid "$PID_B" KILL; }

scenario_events() {
    local scenario="$1" t
    case "$scenario" in
        refused)
            sleep_until "$FAIL_AT"; kill_b
            ;;
        hanging)
            sleep_until "$FAIL_AT"; kill_b
            start_backend PID_B "$PORT_B" hang
            ;;
        frozen)
            sleep_until "$FAIL_AT"; : >"$RUN_DIR/freeze-b"
            ;;
        restarting)
            for ((t = RESTART_EVERY; t < DURATION; t += RESTART_EVERY)); do
                sleep_until "$t"; kill_b
                sleep_until "$((t + RESTART_DOWN))"
                start_backend PID_B "$PORT_B" serve
            done
            ;;
    esac
}

json_field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<<"$1"; }

run_one() {
    local scenario="$1" proxy="$2" round="$3"
    RUN_DIR="$TMP/r$round-$scenario-$proxy"
    mkdir -p "$RUN_DIR"
    free_port PORT_A
    free_port PORT_B
    free_port PROXY_PORT

    start_backend PID_A "$PORT_A" serve
    local b_extra=()
    [[ "$scenario" == frozen ]] && b_extra=(--hang-when-exists "$RUN_DIR/freeze-b")
    start_backend PID_B "$PORT_B" serve "${b_extra[@]}"
    start_proxy "$proxy"
    sleep "$SETTLE"
    # Both backends serve through the proxy before the load starts (round robin: 4 requests).
    local got
    for _ in 1 2 3 4; do
        got="$(http_status "$PROXY_PORT")"
        [[ "$got" == 200 ]] || die "$proxy: GET / before the load: expected 200, got '${got:-nothing}' (logs: $RUN_DIR)"
    done

    "$LOAD" --url "http://127.0.0.1:$PROXY_PORT/" --connections "$CONNECTIONS" \
        --duration "${DURATION}s" --slow "${SLOW}s" --timeout "${REQUEST_TIMEOUT}s" \
        >"$RUN_DIR/load.json" 2>"$RUN_DIR/load.err" &
    local load_pid=$!
    STARTED_PIDS+=("$load_pid")
    T0_NS="$(date +%s%N)"
    scenario_events "$scenario"
    wait "$load_pid" || { cat "$RUN_DIR/load.err" >&2; die "failover-load failed ($RUN_DIR)"; }
    forget_pid "$load_pid"

    stop_pid "$PROXY_PID"
    stop_pid "$PID_A"
    stop_pid "$PID_B"

    local j
    j="$(cat "$RUN_DIR/load.json")"
    local requests errors s5xx transport slow p50 p99 max rps on_reuse bad
    requests="$(json_field "$j" requests)"; errors="$(json_field "$j" errors)"
    s5xx="$(json_field "$j" status_5xx)"; transport="$(json_field "$j" transport_errors)"
    slow="$(json_field "$j" slow)"; p50="$(json_field "$j" p50_ms)"
    p99="$(json_field "$j" p99_ms)"; max="$(json_field "$j" max_ms)"
    rps="$(json_field "$j" rps)"; on_reuse="$(json_field "$j" closed_on_reuse)"
    [[ -n "$requests" && -n "$errors" && -n "$max" ]] || die "cannot parse $RUN_DIR/load.json: $j"
    bad="$(sed -n 's/.*"bad_seconds":\[\(.*\)\]}.*/\1/p' <<<"$j")"
    log "$(printf '%-10s %-9s r%s: %7s req  %5s errors (5xx %s, transport %s)  %4s slow  p50 %s  p99 %s  max %s ms' \
        "$scenario" "$proxy" "$round" "$requests" "$errors" "$s5xx" "$transport" "$slow" "$p50" "$p99" "$max")"
    [[ -n "$bad" ]] && log "    seconds with errors/slow [s, requests, errors, slow]: $bad"
    echo "$scenario $proxy $round $requests $errors $s5xx $transport $slow $p50 $p99 $max $rps $on_reuse" >>"$RESULTS"
    printf '%s %s %s %s\n' "$scenario" "$proxy" "$round" "$j" >>"$TMP/runs.jsonl"
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
# Columns of $RESULTS: 1 scenario 2 proxy 3 round 4 requests 5 errors 6 5xx 7 transport 8 slow
#                      9 p50 10 p99 11 max 12 rps 13 closed_on_reuse

# median SCENARIO PROXY COLUMN (mean of the middle two for an even count); latencies (columns
# 9-11) with two decimals, counts as integers unless the mean of two makes a half.
# (Its own, not lib/bench-common.sh's: keyed by scenario and proxy, formatted by column.)
median() {
    awk -v s="$1" -v p="$2" -v c="$3" '$1 == s && $2 == p { print $c }' "$RESULTS" | sort -g |
        awk -v c="$3" '{ v[NR] = $1 } END {
            if (NR == 0) { print "n/a"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            if (c >= 9 && c <= 11) printf "%.2f", m
            else if (c == 4) printf "%.0f", m
            else if (m == int(m)) printf "%d", m
            else printf "%.1f", m
        }'
}

# The value per round, "a, b, c" (only when there is more than one round).
per_round() {
    awk -v s="$1" -v p="$2" -v c="$3" '$1 == s && $2 == p { printf "%s%s", sep, $c; sep = ", " }' "$RESULTS"
}

cell() {
    local m
    m="$(median "$@")"
    if ((ROUNDS > 1)); then echo "$m ($(per_round "$@"))"; else echo "$m"; fi
}

scenario_title() {
    case "$1" in
        refused) echo "B killed ${FAIL_AT} s in, stays down (connections refused)" ;;
        hanging) echo "B restarted ${FAIL_AT} s in, in hang mode on the same port (accepts, never answers)" ;;
        restarting) echo "B killed every ${RESTART_EVERY} s, back ${RESTART_DOWN} s later" ;;
        frozen) echo "B stops answering ${FAIL_AT} s in, on its existing connections too (no restart)" ;;
    esac
}

print_tables() {
    local s p
    local what="median of $ROUNDS × ${DURATION}s"
    ((ROUNDS > 1)) && what+=", per round in parentheses"
    ((ROUNDS == 1)) && what="1 × ${DURATION}s"
    for s in $SCENARIOS; do
        cat <<EOF
**$s**: $(scenario_title "$s") ($what; failover-load -c $CONNECTIONS):

| proxy | requests | client-visible errors | of which 5xx | of which transport | slow (> ${SLOW} s) | p50 (ms) | p99 (ms) | max (ms) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
        for p in $PROXIES; do
            printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$p" \
                "$(median "$s" "$p" 4)" "$(cell "$s" "$p" 5)" "$(median "$s" "$p" 6)" \
                "$(median "$s" "$p" 7)" "$(cell "$s" "$p" 8)" "$(median "$s" "$p" 9)" \
                "$(median "$s" "$p" 10)" "$(median "$s" "$p" 11)"
        done
        echo
        verdict "$s"
        echo
    done
}

# Whether gatehouse beats each other proxy on (median) errors and slow requests in scenario $1:
# strictly fewer, or zero where the other also has zero (nothing to beat).
verdict() {
    local s="$1" ge gs p e sl cmp errs="" slows="" missed=""
    [[ " $PROXIES " == *" gatehouse "* ]] || return 0
    [[ "$PROXIES" != gatehouse ]] || return 0
    ge="$(median "$s" gatehouse 5)"; gs="$(median "$s" gatehouse 8)"
    cmp='BEGIN { exit !(a < b || (a == 0 && b == 0)) }'
    for p in $PROXIES; do
        [[ "$p" == gatehouse ]] && continue
        e="$(median "$s" "$p" 5)"; sl="$(median "$s" "$p" 8)"
        errs+="${errs:+, }$p $e"; slows+="${slows:+, }$p $sl"
        awk -v a="$ge" -v b="$e" "$cmp" || missed+=" errors vs $p;"
        awk -v a="$gs" -v b="$sl" "$cmp" || missed+=" slow vs $p;"
    done
    printf 'gatehouse: %s client-visible errors (%s), %s slow (%s): ' "$ge" "$errs" "$gs" "$slows"
    if [[ -z "$missed" ]]; then
        echo "target met (fewer, or zero where the other is also zero)."
    else
        missed="${missed# }"
        echo "target **not** met (${missed%;})."
    fi
}

print_environment() {
    local cpu
    cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    cat <<EOF
- kernel: \`$(uname -srm)\`
- CPU: $cpu, nproc $(nproc); CPU busy in the second before the run: ${CPU_BUSY_BEFORE}%
- $("$NGINX" -v 2>&1)
- $("$HAPROXY" -v 2>&1 | head -1 | sed 's/ - https.*//')
- gatehouse: $GATEHOUSE_REV, as built at the start of the run
- The load tool, both backends and the proxy share these $(nproc) cores; nothing is pinned.
  nginx runs 1 worker, HAProxy 1 thread, gatehouse \`workers = 1\`.
EOF
}

scenario_bullets() {
    local s
    for s in $SCENARIOS; do
        case "$s" in
            refused) echo "- **refused**: at ${FAIL_AT}s, \`kill -KILL\` B; it stays down, so connects to it are refused." ;;
            hanging) echo "- **hanging**: at ${FAIL_AT}s, \`kill -KILL\` B and at once start \`failover-backend --mode hang\`"
                     echo "  on the same port (accepts connections and reads requests, never answers)." ;;
            restarting) echo "- **restarting**: at ${RESTART_EVERY}s, $((2 * RESTART_EVERY))s, ... \`kill -KILL\` B and start it again ${RESTART_DOWN}s later." ;;
            frozen) echo "- **frozen**: at ${FAIL_AT}s, B stops answering on every connection, pooled ones"
                    echo "  included, without closing any (\`failover-backend --hang-when-exists FILE\`): a deadlocked process." ;;
        esac
    done
}

# shellcheck disable=SC2016 # '$TMP/...' is printed literally, as a placeholder
print_method() {
    cat <<EOF
Each run starts two fresh backends A and B (\`failover-backend\`, \`200 ok\`, HTTP/1.1
keep-alive) and a fresh proxy in front of both, checks that 4 requests through the proxy get
200, waits ${SETTLE}s for health checks to settle, and then runs

\`\`\`
failover-load --url http://127.0.0.1:PROXY/ --connections $CONNECTIONS --duration ${DURATION}s --slow ${SLOW}s --timeout ${REQUEST_TIMEOUT}s
\`\`\`

(closed loop, one keep-alive connection per thread, reconnecting when the proxy closes) while
B fails:

$(scenario_bullets)

Client-visible errors = 5xx responses + transport errors (connection reset, closed before the
response was complete, no response within ${REQUEST_TIMEOUT}s). Slow = took longer than ${SLOW}s (failed
requests included). Latency percentiles are over all requests. Proxies are interleaved
(${PROXIES// / → }) within each round and scenario. The script logs each run's counts and the
seconds in which errors and slow requests happened; with \`KEEP_TMP=1\` the temp dir keeps
each run's JSON from the load tool and the proxies' logs.

Proxy settings (ports: PROXY, A, B; \`\$TMP\` is the run's temp dir):

nginx (\`proxy_next_upstream\` defaults to \`error timeout\`; GET is idempotent, so it is retried):

\`\`\`nginx
$(nginx_conf '$TMP/nginx' PROXY A B)
\`\`\`

HAProxy (\`haproxy -db -f haproxy.cfg\`):

\`\`\`haproxy
$(haproxy_conf '$TMP/haproxy' PROXY A B)
\`\`\`

gatehouse (\`gatehouse run -c gatehouse.toml\`; retry budget and ejection times at their defaults):

\`\`\`toml
$(gatehouse_conf '$TMP/gatehouse' PROXY A B)
\`\`\`
EOF
}

write_docs() {
    local doc="$ROOT/docs/benchmarks.md"
    [[ -f "$doc" ]] || printf '# Benchmarks\n' >"$doc"
    {
        printf '\n## Failover %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
        cat <<EOF
\`scripts/failover.sh\`: two backends behind each proxy, one of them fails during a
${DURATION}s closed-loop load; what the client sees. Target (issue 3): gatehouse has fewer
client-visible errors and fewer slow requests than both nginx and HAProxy, each with its retry
settings on.

EOF
        print_environment
        echo
        cat "$TMP/tables.md"
        print_method
    } >>"$doc"
    log "appended results to $doc"
}

# ---------------------------------------------------------------------------------------------
main() {
    ensure_tools
    build
    check_idle
    RESULTS="$TMP/results.txt"
    : >"$RESULTS"
    local runs total_s
    runs=$(($(wc -w <<<"$SCENARIOS") * $(wc -w <<<"$PROXIES") * ROUNDS))
    total_s=$((runs * (DURATION + SETTLE + 1)))
    log "$runs runs of ${DURATION}s (about $((total_s / 60)) min); temp dir $TMP"

    local r s p
    for r in $(seq "$ROUNDS"); do
        for s in $SCENARIOS; do
            for p in $PROXIES; do
                run_one "$s" "$p" "$r"
            done
        done
    done

    print_tables >"$TMP/tables.md"
    echo
    cat "$TMP/tables.md"
    [[ "$WRITE" == 1 ]] && write_docs
    return 0
}

main
