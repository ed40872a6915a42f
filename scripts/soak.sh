#!/usr/bin/env bash
# Soak test: MINUTES (default 30) of mixed load through gatehouse while its upstreams are killed
# and restarted and its config is reloaded every 10 s (docs/soak.md).
#
#   scripts/soak.sh [MINUTES]
#
# Environment:
#   KILL_EVERY=60     seconds between backend kills (±5 s); the first one 30 s in
#   MIN_RESPONSE_RATE unset: gatehouse's default; a number: server.min_response_rate for the run
#                     (0 turns it off; the default is 240 B/s)
#   KEEP_TMP=0        1: keep the temp dir (config, logs, outcomes, samples) even after a pass
#                     (it is always kept after a failure)
#
# Builds gatehouse and the `soak` tool (crates/bench) in release mode, starts three backends
# (`soak --mode backend` on 127.0.0.1) and gatehouse in front of them (workers = 2, JSON access
# log and log in the temp dir, admin listener on 127.0.0.1), then runs `soak --mode load` for
# MINUTES: keep-alive GETs, a new connection per GET, POST uploads of 64 KiB to 1 MiB, request
# bodies trickled at ~1 KB/s, responses read at 0.6 to 16 KB/s (up to 1 MiB) and at 32 to
# 128 KB/s (5 to 8 MiB, more than the socket buffers hold), and WebSocket echo sessions: about
# 200 requests a second; beside it, h2load keeps three side loads of about 20 requests a second
# each for the whole run: HTTP/2 with prior knowledge (h2c), HTTP/2 over TLS and HTTP/1.1 over
# TLS (a TLS listener with a self-signed certificate). Meanwhile, once a second, it:
#   - every 10 s samples gatehouse's VmRSS, open fds, open connections and tunnels;
#   - every 10 s reloads the config, alternating POST /reload and SIGHUP and alternating
#     upstream.app.response_timeout between 10s and 11s, so that each reload swaps a snapshot;
#   - every ~KILL_EVERY s SIGKILLs one backend (in turn) and starts it again 10 to 20 s later;
#     never more than one is down.
# At the end it stops gatehouse (SIGTERM; it must exit 0) and runs `soak --mode report`, which
# classifies every failed request with gatehouse's access log and the kills, and compares the
# median RSS and fds of the last 5 minutes with those of minutes 2-7. Exit status: 0 pass, 1 a
# request was lost that a healthy server could have answered, RSS or fds grew, gatehouse
# crashed, a reload failed, or gatehouse did not stop cleanly. The side loads' counts (requests,
# failed, errored, status classes) are reported beside the verdict; a side load whose requests
# did not all succeed fails the run only when more failed than backends were killed (a kill can
# cut a response in flight on its stream).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MINUTES="${1:-30}"
KILL_EVERY="${KILL_EVERY:-60}"
KEEP_TMP="${KEEP_TMP:-0}"
MIN_RESPONSE_RATE="${MIN_RESPONSE_RATE:-}"
TICK=10 # seconds between samples, and between reloads

[[ "$MIN_RESPONSE_RATE" =~ ^[0-9]*$ ]] || { echo "soak.sh: MIN_RESPONSE_RATE must be a number" >&2; exit 2; }
case "$MINUTES" in
    -h | --help) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *[!0-9]* | '' | 0) echo "soak.sh: MINUTES must be a whole number of minutes ≥ 1, got '$MINUTES'" >&2; exit 2 ;;
esac

log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'soak.sh: %s\n' "$*" >&2; KEEP_TMP=1; exit 1; }
now_ms() { date +%s%3N; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-soak.XXXXXX")"
STARTED_PIDS=()
# shellcheck source=SCRIPTDIR/lib/cleanup.sh disable=SC1091 # (followed with shellcheck -x)
source "$(dirname "${BASH_SOURCE[0]}")/lib/cleanup.sh"
# shellcheck source=SCRIPTDIR/lib/bench-common.sh disable=SC1091 # (followed with shellcheck -x)
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"

forget_pid() {
    local pid="$1" p kept=()
    for p in "${STARTED_PIDS[@]}"; do
        [[ "$p" == "$pid" ]] || kept+=("$p")
    done
    STARTED_PIDS=("${kept[@]}")
}

# ---------------------------------------------------------------------------------------------
# Build and start
# ---------------------------------------------------------------------------------------------
log "building (release) ..."
(cd "$ROOT" && cargo build --release -q -p gatehouse -p gatehouse-bench --bin gatehouse --bin soak) ||
    die "cargo build failed"
GATEHOUSE="$ROOT/target/release/gatehouse"
SOAK="$ROOT/target/release/soak"
REVISION="$(gatehouse_revision "$ROOT")"

CHAOS="$TMP/chaos.log"       # ms event [arg]: load-start, load-end, kill ADDR, start ADDR, reload-*
SAMPLES="$TMP/samples.txt"   # ms rss_kib fds open_connections tunnels_open
: >"$CHAOS"
: >"$SAMPLES"
event() { echo "$(now_ms) $*" >>"$CHAOS"; }

BACKEND_PORTS=()
BACKEND_PIDS=()
for i in 0 1 2; do
    free_port backend_port
    BACKEND_PORTS[i]="$backend_port"
done
free_port LISTEN_PORT
free_port TLS_PORT
free_port ADMIN_PORT
need_cmd() { command -v "$1" >/dev/null 2>&1 || die "$1 is needed (Debian: $2)"; }
need_cmd h2load nghttp2-client
need_cmd openssl openssl
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/tls-key.pem" -out "$TMP/tls-cert.pem" \
    -days 2 -subj "/CN=soak.test" -addext "subjectAltName=DNS:soak.test" >/dev/null 2>&1 ||
    die "openssl could not make the TLS listener's certificate"
ADMIN="http://127.0.0.1:$ADMIN_PORT"

start_backend() {
    local i="$1" port="${BACKEND_PORTS[$1]}"
    "$SOAK" --mode backend --listen "127.0.0.1:$port" >>"$TMP/backend-$i.log" 2>&1 &
    BACKEND_PIDS[i]=$!
    STARTED_PIDS+=("${BACKEND_PIDS[i]}")
    wait_for_port "${BACKEND_PIDS[i]}" "$port" "$TMP/backend-$i.log" 0.05
    event start "127.0.0.1:$port"
}

kill_backend() {
    local i="$1" pid="${BACKEND_PIDS[$1]}"
    event kill "127.0.0.1:${BACKEND_PORTS[i]}"
    { kill -KILL "$pid"; wait "$pid"; } 2>/dev/null || true
    forget_pid "$pid"
    BACKEND_PIDS[i]=""
}

# The config; $1 (0 or 1) picks the variant: only response_timeout differs.
write_config() {
    local timeout=$((10 + $1))
    cat >"$TMP/gatehouse.toml.new" <<EOF
# written by scripts/soak.sh (variant $1)
[server]
listen = ["127.0.0.1:$LISTEN_PORT"]
admin = "127.0.0.1:$ADMIN_PORT"
workers = 2
proxy_status = "full"
log_file = "$TMP/gatehouse.log"
log_level = "info"
access_log_format = "json"
access_log_file = "$TMP/access.log"
state_dir = "$TMP/state"
${MIN_RESPONSE_RATE:+min_response_rate = $MIN_RESPONSE_RATE}

[[server.tls]]
listen = ["127.0.0.1:$TLS_PORT"]
cert = "$TMP/tls-cert.pem"
key = "$TMP/tls-key.pem"

[[route]]
path = "/"
upstream = "app"

[upstream.app]
servers = ["127.0.0.1:${BACKEND_PORTS[0]}", "127.0.0.1:${BACKEND_PORTS[1]}", "127.0.0.1:${BACKEND_PORTS[2]}"]
connect_timeout = "1s"
response_timeout = "${timeout}s"

[upstream.app.health]
path = "/health"
interval = "1s"
timeout = "500ms"

[upstream.app.retry]
attempts = 3
EOF
    mv "$TMP/gatehouse.toml.new" "$TMP/gatehouse.toml"
}

for i in 0 1 2; do start_backend "$i"; done
write_config 0
"$GATEHOUSE" check -c "$TMP/gatehouse.toml" >"$TMP/check.out" 2>&1 ||
    { cat "$TMP/check.out" >&2; die "gatehouse check rejected $TMP/gatehouse.toml"; }
"$GATEHOUSE" run -c "$TMP/gatehouse.toml" >"$TMP/gatehouse.out" 2>&1 &
GH_PID=$!
STARTED_PIDS+=("$GH_PID")
wait_for_port "$GH_PID" "$LISTEN_PORT" "$TMP/gatehouse.out" 0.05
for _ in $(seq 100); do
    curl -fsS -o /dev/null "$ADMIN/ready" 2>/dev/null && break
    sleep 0.05
done
sleep 2 # the first health checks

# Every backend answers through gatehouse before the load starts.
seen=""
for _ in $(seq 9); do
    b="$(curl -fsS -D - -o /dev/null "http://127.0.0.1:$LISTEN_PORT/get?size=10" | tr -d '\r' |
        awk -F': ' 'tolower($1) == "x-backend" { print $2 }')" || die "GET through gatehouse failed (logs: $TMP)"
    [[ " $seen " == *" $b "* ]] || seen+=" $b"
done
(($(wc -w <<<"$seen") == 3)) || die "expected three backends behind gatehouse, saw:$seen"

# ---------------------------------------------------------------------------------------------
# Load and chaos
# ---------------------------------------------------------------------------------------------
sample() {
    local rss fds metrics conns tunnels
    rss="$(awk '/^VmRSS:/ { print $2 }' "/proc/$GH_PID/status" 2>/dev/null)" || return 0
    fds="$(fd_count "$GH_PID")"
    metrics="$(curl -fsS --max-time 5 "$ADMIN/metrics" 2>/dev/null || true)"
    conns="$(awk '$1 == "gatehouse_open_connections" { print $2 }' <<<"$metrics")"
    tunnels="$(awk '/^gatehouse_tunnels_open[{ ]/ { s += $NF } END { print s + 0 }' <<<"$metrics")"
    echo "$(now_ms) $rss $fds ${conns:--} ${tunnels:--}" >>"$SAMPLES"
}

RELOADS=0
reload() {
    RELOADS=$((RELOADS + 1))
    write_config $((RELOADS % 2))
    if ((RELOADS % 2)); then
        local code
        code="$(curl -sS --max-time 10 -o "$TMP/reload-answer.txt" -w '%{http_code}' -X POST "$ADMIN/reload" 2>>"$TMP/reload-errors.txt")" || code=000
        event reload-post "$code"
        [[ "$code" == 200 ]] || log "POST /reload answered $code: $(head -c 300 "$TMP/reload-answer.txt" 2>/dev/null)"
    else
        kill -HUP "$GH_PID"
        event reload-hup
    fi
}

"$SOAK" --mode load --target "127.0.0.1:$LISTEN_PORT" --duration "${MINUTES}m" \
    --out "$TMP/outcomes.tsv" >"$TMP/load.out" 2>"$TMP/load.log" &
LOAD_PID=$!
STARTED_PIDS+=("$LOAD_PID")
# The side loads: h2load, two clients of 10 requests a second each, for the whole run.
SIDE_NAMES=(h2c h2-tls h1-tls)
SIDE_ARGS=("http://127.0.0.1:$LISTEN_PORT/get?size=100" "https://127.0.0.1:$TLS_PORT/get?size=100" "--h1 https://127.0.0.1:$TLS_PORT/get?size=100")
SIDE_PIDS=()
for i in 0 1 2; do
    # shellcheck disable=SC2086 # the arguments are split on purpose (--h1 URL)
    h2load -c2 -m1 --rps 10 -D "$((MINUTES * 60))" ${SIDE_ARGS[i]} >"$TMP/side-${SIDE_NAMES[i]}.out" 2>&1 &
    SIDE_PIDS[i]=$!
    STARTED_PIDS+=("${SIDE_PIDS[i]}")
done
event load-start
START_S="$(date +%s)"
log "load running for $MINUTES min against gatehouse (pid $GH_PID) on 127.0.0.1:$LISTEN_PORT; backends on ports ${BACKEND_PORTS[*]}; temp dir $TMP"

next_tick=$((START_S + TICK))
next_kill=$((START_S + 30))
victim=0
down="" # index of the backend that is down, if any
restart_at=0
next_progress=$((START_S + 300))
sample
while kill -0 "$LOAD_PID" 2>/dev/null; do
    sleep 1
    now="$(date +%s)"
    if ! kill -0 "$GH_PID" 2>/dev/null; then
        event gatehouse-died
        tail -20 "$TMP/gatehouse.out" "$TMP/gatehouse.log" >&2 || true
        die "gatehouse exited during the run (logs: $TMP)"
    fi
    if ((now >= next_tick)); then
        sample
        reload
        next_tick=$((next_tick + TICK))
    fi
    if [[ -n "$down" ]] && ((now >= restart_at)); then
        start_backend "$down"
        log "started backend $down again (127.0.0.1:${BACKEND_PORTS[down]})"
        down=""
    elif [[ -z "$down" ]] && ((now >= next_kill)) && ((now < START_S + MINUTES * 60 - 20)); then
        kill_backend "$victim"
        down="$victim"
        restart_at=$((now + 10 + RANDOM % 11))
        log "killed backend $victim (127.0.0.1:${BACKEND_PORTS[victim]}); back in $((restart_at - now)) s"
        victim=$(((victim + 1) % 3))
        next_kill=$((now + KILL_EVERY - 5 + RANDOM % 11))
    fi
    if ((now >= next_progress)); then
        log "$(tail -1 "$TMP/load.log" 2>/dev/null)"
        next_progress=$((next_progress + 300))
    fi
done
LOAD_RC=0
wait "$LOAD_PID" || LOAD_RC=$?
forget_pid "$LOAD_PID"
for pid in "${SIDE_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
done
event load-end
sample
[[ -z "$down" ]] || start_backend "$down"
((LOAD_RC == 0)) || { cat "$TMP/load.log" >&2; die "the load tool failed (status $LOAD_RC)"; }
log "$(tail -1 "$TMP/load.log")"

curl -fsS "$ADMIN/metrics" >"$TMP/metrics.txt" || die "cannot scrape $ADMIN/metrics at the end"
curl -fsS "$ADMIN/status.json" >"$TMP/status.json" || true
kill -TERM "$GH_PID"
GH_RC=0
wait "$GH_PID" || GH_RC=$?
forget_pid "$GH_PID"

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
FAILED=0
{
    echo "# Soak $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- gatehouse $REVISION; $MINUTES min; min_response_rate ${MIN_RESPONSE_RATE:-at its default}; kernel \`$(uname -srm)\`; CPU $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), nproc $(nproc)"
    echo "- gatehouse exit status after SIGTERM at the end: $GH_RC"
    echo "- gatehouse log: $(grep -c 'config reloaded' "$TMP/gatehouse.log" || true) 'config reloaded', $(grep -c 'reload refused' "$TMP/gatehouse.log" || true) 'reload refused', $(grep -ci 'panic' "$TMP/gatehouse.log" || true) panics, $(grep -c 'reason="slow_reader"' "$TMP/gatehouse.log" || true) clients disconnected as slow readers; failure warnings by kind:"
    grep -o 'kind="[a-z_0-9]*"' "$TMP/gatehouse.log" | sort | uniq -c | sort -rn | sed 's/^ */  - /' || true
    echo "- access log: $(wc -l <"$TMP/access.log") records; final failures by kind:"
    grep -o '"failure":"[a-z_0-9]*"' "$TMP/access.log" | sort | uniq -c | sort -rn | sed 's/^ */  - /' || true
    echo
} >"$TMP/report.md"
KILLS="$(grep -c ' kill ' "$CHAOS" || true)"
{
    echo "Side loads (h2load, ~20 requests a second each; $KILLS backend kills in the run):"
    echo
    for name in "${SIDE_NAMES[@]}"; do
        out="$TMP/side-$name.out"
        requests="$(grep -m1 '^requests:' "$out" || echo 'requests: (no summary)')"
        codes="$(grep -m1 '^status codes:' "$out" || echo 'status codes: (none)')"
        echo "- $name: $requests; $codes"
        total="$(awk '/^requests:/ { print $2 }' "$out")"
        succeeded="$(awk '/^requests:/ { print $8 }' "$out")"
        if [[ -z "$total" || -z "$succeeded" ]] || ((total == 0)); then
            echo "FAIL: side load $name made no requests (see $out)"
            FAILED=1
        elif ((total - succeeded > KILLS)); then
            echo "FAIL: side load $name lost $((total - succeeded)) requests, more than the $KILLS kills explain"
            FAILED=1
        fi
    done
    echo
} >>"$TMP/report.md"
"$SOAK" --mode report --outcomes "$TMP/outcomes.tsv" --access-log "$TMP/access.log" \
    --chaos "$CHAOS" --samples "$SAMPLES" --metrics "$TMP/metrics.txt" >>"$TMP/report.md" || FAILED=1
if ((GH_RC != 0)); then
    echo "FAIL: gatehouse exited with status $GH_RC after SIGTERM" >>"$TMP/report.md"
    FAILED=1
fi
if grep -qi 'panic' "$TMP/gatehouse.log" "$TMP/gatehouse.out"; then
    echo "FAIL: gatehouse logged a panic" >>"$TMP/report.md"
    FAILED=1
fi
# A backend that panics drops its connections like a crash: the soak tool's own bug, which
# would be counted against gatehouse.
if grep -l 'panicked' "$TMP"/backend-*.log "$TMP/load.log" >/dev/null 2>&1; then
    echo "FAIL: the soak tool panicked ($(grep -l 'panicked' "$TMP"/backend-*.log "$TMP/load.log" | tr '\n' ' ')): its figures are not gatehouse's" >>"$TMP/report.md"
    FAILED=1
fi
cat "$TMP/report.md"
if ((FAILED)); then
    KEEP_TMP=1
    log "FAILED; kept $TMP"
    exit 1
fi
log "passed"
