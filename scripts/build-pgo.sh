#!/usr/bin/env bash
# A release build of gatehouse optimised with a profile of its own hot paths (profile-guided
# optimisation): the compiler lays out and inlines the code by how often each branch and call
# ran while gatehouse proxied traffic, not by guesses.
#
#   scripts/build-pgo.sh        builds target/pgo/<host triple>/release/gatehouse (prints its
#                               path last)
#
# Steps: an instrumented build (target/pgo-gen), gatehouse run from it in front of an nginx
# `return 200` upstream under a training load (HTTP/1.1 keep-alive, a refused upstream, HTTP/2
# over h2c and TLS, request bodies, a download), the counters merged with llvm-profdata, then
# the build that uses them (target/pgo). About twice a release build's time, plus 30 s.
#
# The training covers the request paths the benchmarks measure and what a proxy spends most of
# its time on in production. Code it never runs (cache hits, compression, WebSocket tunnels,
# two workers) the compiler takes for cold: optimised for size and not inlined, so it may be
# slower than in a plain release build. The behaviour is the same: the profile moves code, it
# changes no logic.
#
# Needs: cargo, rustup's llvm-tools (installed when missing), nginx, wrk, h2load, curl, openssl
# (installed with apt-get when missing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KEEP_TMP="${KEEP_TMP:-0}"
log() { printf '[build-pgo] %s\n' "$*" >&2; }
die() { printf 'build-pgo.sh: %s\n' "$*" >&2; exit 1; }
TMP="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-pgo.XXXXXX")"
STARTED_PIDS=()
# shellcheck source=SCRIPTDIR/lib/cleanup.sh disable=SC1091 # (followed with shellcheck -x)
source "$ROOT/scripts/lib/cleanup.sh"
# shellcheck source=SCRIPTDIR/lib/bench-common.sh disable=SC1091 # (followed with shellcheck -x)
source "$ROOT/scripts/lib/bench-common.sh"

command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust: https://rustup.rs)"
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get install -y "${missing[@]}" >/dev/null ||
        die "install failed; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

# llvm-profdata of the toolchain's own LLVM (the raw profile's format follows it).
SYSROOT="$(rustc --print sysroot)"
HOST="$(rustc -vV | awk '/^host:/ {print $2}')"
PROFDATA="$SYSROOT/lib/rustlib/$HOST/bin/llvm-profdata"
if [ ! -x "$PROFDATA" ]; then
    log "installing rustup component llvm-tools (for llvm-profdata)"
    rustup component add llvm-tools >&2 || die "rustup component add llvm-tools failed"
fi
[ -x "$PROFDATA" ] || die "no llvm-profdata at $PROFDATA"

# A fixed path: the instrumented build stays up to date between runs (the path is part of its
# flags); its old counters are cleared first.
RAW="$ROOT/target/pgo-gen/profraw"
# With --target the flags reach gatehouse's own code only, not build scripts or proc-macros
# (which would run instrumented during the build and leave counters of their own).
log "1/4 instrumented build (target/pgo-gen)"
(cd "$ROOT" && RUSTFLAGS="-Cprofile-generate=$RAW" \
    cargo build --release -p gatehouse --target "$HOST" --target-dir "$ROOT/target/pgo-gen" >&2) ||
    die "the instrumented build failed"

log "2/4 training load"
free_port UPSTREAM_PORT
free_port PROXY_PORT
free_port TLS_PORT
free_port DEAD_PORT
mkdir -p "$TMP/nginx" "$TMP/files" "$TMP/gatehouse/state"
truncate -s 64M "$TMP/files/big"
{
    nginx_main_conf "$TMP/nginx" 1 1024
    cat <<EOF
http {
    access_log off;
$(nginx_temp_paths "$TMP/nginx")
    keepalive_requests 1000000;
    client_max_body_size 0;
    server {
        listen 127.0.0.1:$UPSTREAM_PORT;
        location / { return 200 "ok\n"; }
        location /file/ { alias $TMP/files/; default_type application/octet-stream; }
    }
}
EOF
} >"$TMP/nginx/nginx.conf"
start_nginx "$TMP/nginx" "$TMP/nginx/nginx.conf"
wait_for_port "$NGINX_PID" "$UPSTREAM_PORT" "$TMP/nginx/error.log"

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1 ||
    die "openssl could not make a test certificate"
cat >"$TMP/gatehouse.toml" <<EOF
[server]
listen = ["127.0.0.1:$PROXY_PORT"]
workers = 1
access_log = false
log_level = "warn"
log_file = "$TMP/gatehouse/gatehouse.log"
state_dir = "$TMP/gatehouse/state"
http2 = true

[[server.tls]]
listen = ["127.0.0.1:$TLS_PORT"]
cert = "$TMP/cert.pem"
key = "$TMP/key.pem"

[[route]]
path = "/"
upstream = "app"

[[route]]
path = "/refused"
upstream = "refused"

[upstream.app]
servers = ["127.0.0.1:$UPSTREAM_PORT"]

[upstream.refused]
servers = ["127.0.0.1:$DEAD_PORT"]

[upstream.refused.retry]
attempts = 1

[upstream.refused.passive]
consecutive_failures = 0
EOF
# Its counters go to a file named by its pid, in this run's own directory: only this process's
# profile is merged.
PROFILE_OUT="$TMP/profile"
LLVM_PROFILE_FILE="$PROFILE_OUT/gatehouse-%p.profraw" \
    "$ROOT/target/pgo-gen/$HOST/release/gatehouse" run -c "$TMP/gatehouse.toml" \
    >"$TMP/gatehouse/stdout" 2>&1 &
GATEHOUSE_PID=$!
STARTED_PIDS+=("$GATEHOUSE_PID")
wait_for_port "$GATEHOUSE_PID" "$PROXY_PORT" "$TMP/gatehouse/stdout"
BASE="http://127.0.0.1:$PROXY_PORT"
wrk -t2 -c64 -d8s "$BASE/" >/dev/null
wrk -t2 -c64 -d3s "$BASE/refused" >/dev/null
wrk -t1 -c8 -d2s -H "Connection: close" "$BASE/" >/dev/null
h2load -c32 -m10 -n 60000 "$BASE/" >/dev/null
h2load -c8 -m10 -n 20000 "https://127.0.0.1:$TLS_PORT/" >/dev/null
head -c 65536 /dev/zero >"$TMP/body"
for _ in $(seq 200); do
    curl -s -o /dev/null --data-binary @"$TMP/body" "$BASE/post"
done
curl -s -o /dev/null "$BASE/file/big"
# The counters are written when the process exits: it must exit by itself (a graceful
# shutdown; every client connection is closed by now), not be killed.
kill -TERM "$GATEHOUSE_PID"
for _ in $(seq 600); do
    kill -0 "$GATEHOUSE_PID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$GATEHOUSE_PID" 2>/dev/null && die "the instrumented gatehouse did not exit within 60 s of SIGTERM"
status=0
wait "$GATEHOUSE_PID" || status=$?
kept=()
for pid in "${STARTED_PIDS[@]}"; do
    [ "$pid" = "$GATEHOUSE_PID" ] || kept+=("$pid")
done
STARTED_PIDS=("${kept[@]}")
[ "$status" = 0 ] || die "the instrumented gatehouse exited with status $status (log: $TMP/gatehouse)"
PROFILE="$PROFILE_OUT/gatehouse-$GATEHOUSE_PID.profraw"
[ -s "$PROFILE" ] || die "the instrumented gatehouse wrote no profile ($PROFILE)"

log "3/4 merging the profile"
"$PROFDATA" merge -o "$TMP/gatehouse.profdata" "$PROFILE"

log "4/4 optimised build (target/pgo)"
(cd "$ROOT" && RUSTFLAGS="-Cprofile-use=$TMP/gatehouse.profdata" \
    cargo build --release -p gatehouse --target "$HOST" --target-dir "$ROOT/target/pgo" >&2) ||
    die "the profile-guided build failed"
echo "$ROOT/target/pgo/$HOST/release/gatehouse"
