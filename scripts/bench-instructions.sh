#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind (callgrind): a steady measure of
# gatehouse's own cost where CPU time per request on a shared machine moves by 10-20 % from
# run to run. Counts only gatehouse's process (the kernel's TCP work is not in it), and counts
# a `rep movsb` copy as one instruction per byte, so large memory copies weigh more here than
# in time.
#
#   scripts/bench-instructions.sh [BINARY...]     default: target/release/gatehouse (built)
#
# For each binary: gatehouse under callgrind (workers = 1, no access log) in front of an nginx
# `return 200` upstream; 3 s of `wrk -t1 -c8` to warm up, counters zeroed, 10 s counted; then
# the same for the error path (an upstream port where nothing listens, one attempt), then HTTP/2
# with prior knowledge (h2c: `h2load -c8 -m10`, 2,000 requests to warm up, 20,000 counted).
# Prints instructions per request for the three. Give two binaries (say, builds of two commits) to compare
# them in one run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need valgrind || missing+=(valgrind)
need nginx || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
need wrk || missing+=(wrk)
need h2load || missing+=(nghttp2-client)
if [ ${#missing[@]} -gt 0 ]; then
    echo "[bench-instructions] installing: ${missing[*]}" >&2
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get install -y "${missing[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
if [ $# -eq 0 ]; then
    (cd "$ROOT" && cargo build --release -p gatehouse >&2)
    set -- "$ROOT/target/release/gatehouse"
fi

KEEP_TMP="${KEEP_TMP:-0}"
log() { printf '[bench-instructions] %s\n' "$*" >&2; }
die() { printf 'bench-instructions.sh: %s\n' "$*" >&2; exit 1; }
TMP="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-instructions.XXXXXX")"
STARTED_PIDS=()
# shellcheck source=SCRIPTDIR/lib/cleanup.sh disable=SC1091 # (followed with shellcheck -x)
source "$ROOT/scripts/lib/cleanup.sh"
# shellcheck source=SCRIPTDIR/lib/bench-common.sh disable=SC1091 # (followed with shellcheck -x)
source "$ROOT/scripts/lib/bench-common.sh"

free_port UPSTREAM_PORT
free_port PROXY_PORT
free_port DEAD_PORT

mkdir -p "$TMP/nginx"
{
    nginx_main_conf "$TMP/nginx" 1 1024
    cat <<EOF
http {
    access_log off;
$(nginx_temp_paths "$TMP/nginx")
    server { listen 127.0.0.1:$UPSTREAM_PORT; location / { return 200 "ok\n"; } }
}
EOF
} >"$TMP/nginx/nginx.conf"
cat >"$TMP/gatehouse.toml" <<EOF
[server]
listen = ["127.0.0.1:$PROXY_PORT"]
workers = 1
access_log = false
log_level = "warn"
log_file = "$TMP/gatehouse.log"
state_dir = "$TMP/state"

[[route]]
path = "/"
upstream = "bench"

[[route]]
path = "/refused"
upstream = "refused"

[upstream.bench]
servers = ["127.0.0.1:$UPSTREAM_PORT"]

[upstream.refused]
servers = ["127.0.0.1:$DEAD_PORT"]

[upstream.refused.retry]
attempts = 1

[upstream.refused.passive]
consecutive_failures = 0
EOF

start_nginx "$TMP/nginx" "$TMP/nginx/nginx.conf"
wait_for_port "$NGINX_PID" "$UPSTREAM_PORT" "$TMP/nginx/error.log"

# Instructions per request of $1 on path $2 (with $3 = h2c: over HTTP/2 with prior knowledge),
# into IR_PER_REQUEST and REQUESTS (not via $(...): the process started must be a child of this
# shell).
measure() {
    local bin="$1" path="$2" protocol="${3:-http1}" url out requests total pid
    url="http://127.0.0.1:$PROXY_PORT$path"
    rm -f "$TMP"/cg.out*
    valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
        "$bin" --config "$TMP/gatehouse.toml" >/dev/null 2>"$TMP/valgrind.err" &
    pid=$!
    STARTED_PIDS+=("$pid")
    # Under valgrind the start takes seconds: poll every 0.5 s (up to 50 s).
    wait_for_port "$pid" "$PROXY_PORT" "$TMP/valgrind.err" 0.5
    if [[ "$protocol" == h2c ]]; then
        h2load -c8 -m10 -n 2000 "$url" >/dev/null 2>&1
        callgrind_control -z "$pid" >/dev/null 2>&1
        out="$(h2load -c8 -m10 -n 20000 "$url" 2>&1)"
        callgrind_control -d "$pid" >/dev/null 2>&1
        sleep 1
        requests="$(echo "$out" | awk '/^requests:/ {print $8}')"
    else
        wrk -t1 -c8 -d3s "$url" >/dev/null 2>&1
        callgrind_control -z "$pid" >/dev/null 2>&1
        out="$(wrk -t1 -c8 -d10s "$url" 2>&1)"
        callgrind_control -d "$pid" >/dev/null 2>&1
        sleep 1
        requests="$(echo "$out" | awk '/requests in/ {print $1}')"
    fi
    # The dump taken after zeroing is the newest file.
    total="$(grep -h '^summary:' "$(ls -t "$TMP"/cg.out* | head -1)" | awk '{print $2}')"
    stop_started "$pid"
    IR_PER_REQUEST=$((total / requests))
    REQUESTS=$requests
}

printf '%-50s %14s %14s %14s\n' binary "keep-alive" "error path" "h2c"
for bin in "$@"; do
    measure "$bin" /
    ka=$IR_PER_REQUEST ka_n=$REQUESTS
    measure "$bin" /refused
    err=$IR_PER_REQUEST err_n=$REQUESTS
    measure "$bin" / h2c
    printf '%-50s %14s %14s %14s\n' "$bin" "$ka Ir/req" "$err Ir/req" "$IR_PER_REQUEST Ir/req"
    echo "  ($ka_n, $err_n and $REQUESTS requests counted)"
done
