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
# the same for the error path (an upstream port where nothing listens, one attempt). Prints
# instructions per request for both. Give two binaries (say, builds of two commits) to compare
# them in one run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need valgrind || missing+=(valgrind)
need nginx || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
need wrk || missing+=(wrk)
need curl || missing+=(curl)
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

TMP="$(mktemp -d)"
UP_PID=""
GH_PID=""
cleanup() {
    [ -n "$GH_PID" ] && kill "$GH_PID" 2>/dev/null && wait "$GH_PID" 2>/dev/null
    [ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UPSTREAM_PORT="$(free_port)"
PROXY_PORT="$(free_port)"
DEAD_PORT="$(free_port)"

cat >"$TMP/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx.err;
events { worker_connections 1024; }
http {
    access_log off;
    server { listen 127.0.0.1:$UPSTREAM_PORT; location / { return 200 "ok\n"; } }
}
EOF
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

"$NGINX" -c "$TMP/nginx.conf" -p "$TMP" >/dev/null 2>&1 &
UP_PID=$!

# Instructions per request of $1 on path $2.
measure() {
    local bin="$1" path="$2" url out requests total
    url="http://127.0.0.1:$PROXY_PORT$path"
    rm -f "$TMP"/cg.out*
    valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
        "$bin" --config "$TMP/gatehouse.toml" >/dev/null 2>"$TMP/valgrind.err" &
    GH_PID=$!
    for _ in $(seq 120); do
        curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT/" && break
        sleep 0.5
    done
    wrk -t1 -c8 -d3s "$url" >/dev/null 2>&1
    callgrind_control -z "$GH_PID" >/dev/null 2>&1
    out="$(wrk -t1 -c8 -d10s "$url" 2>&1)"
    callgrind_control -d "$GH_PID" >/dev/null 2>&1
    sleep 1
    requests="$(echo "$out" | awk '/requests in/ {print $1}')"
    # The dump taken after zeroing is the newest file.
    total="$(grep -h '^summary:' "$(ls -t "$TMP"/cg.out* | head -1)" | awk '{print $2}')"
    kill "$GH_PID" 2>/dev/null && wait "$GH_PID" 2>/dev/null || true
    GH_PID=""
    echo "$((total / requests)) $requests"
}

printf '%-50s %14s %14s\n' binary "keep-alive" "error path"
for bin in "$@"; do
    read -r ka ka_n < <(measure "$bin" /)
    read -r err err_n < <(measure "$bin" /refused)
    printf '%-50s %14s %14s\n' "$bin" "$ka Ir/req" "$err Ir/req"
    echo "  ($ka_n and $err_n requests counted)"
done
