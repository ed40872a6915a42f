#!/usr/bin/env bash
# What a proxy costs: gatehouse, nginx and HAProxy as reverse proxies side by side, in one run,
# on one machine, over loopback; one table of medians and gatehouse/nginx ratios.
#
#   scripts/bench-cost.sh            run and print the table
#   scripts/bench-cost.sh --write    run, print, and append a dated section to docs/benchmarks.md
#
# Environment:
#   DURATION=8          seconds per wrk / h2load run
#   ROUNDS=3            interleaved rounds (the table shows medians)
#   IDLE_CONNS=10000    idle keep-alive client connections held open for the memory row
#   TRANSFER_MIB=1024   size of the download and of the upload, in MiB
#   WARMUP=1            seconds of unmeasured load per proxy before the rounds
#   SKIP_KEEPALIVE=0    1: skip rows 1-2 (keep-alive req/s and CPU per request)
#   SKIP_ERROR=0        1: skip row 3 (error path)
#   SKIP_IDLE=0         1: skip row 4 (memory and fds per idle connection)
#   SKIP_H2=0           1: skip row 5 (HTTP/2, h2c and TLS)
#   SKIP_TRANSFER=0     1: skip row 6 (download and upload)
#   SKIP_WORKERS=0      1: skip row 7 (keep-alive with two workers per proxy)
#   KEEP_TMP=0          1: keep the temp dir (configs, logs, tool output)
#   PGO=0               1: benchmark the profile-guided build (scripts/build-pgo.sh) instead
#                       of the plain release build
#
# Rows (see docs/benchmarks.md, "Cost per request, connection and byte"):
#   1. keep-alive req/s, wrk -t2 -c64, fast upstream (nginx `return 200 "ok\n"`), through
#      nginx, nginx adding gatehouse's forwarding headers, HAProxy, gatehouse
#   2. CPU time of the proxy process per request in those runs (nginx: its worker)
#   3. error path: upstream port where nothing listens; req/s and CPU per request
#   4. RSS and fds per idle keep-alive client connection (IDLE_CONNS of them, fresh proxies)
#   5. HTTP/2 to the client (h2load -c32 -m10), h2c and TLS; HTTP/1.1 to the upstream
#   6. TRANSFER_MIB download and upload through each proxy: MB/s and the proxy's peak RSS
#   7. workers = 2: rows 1-2 (plain proxies, no added headers) with two workers per proxy:
#      nginx worker_processes 2 (CPU: both workers), HAProxy nbthread 2, gatehouse workers = 2
#      (a current-thread runtime and SO_REUSEPORT socket per worker) and gatehouse workers = 2
#      with work_stealing = true (one multi-thread runtime of 2 threads); ratios vs nginx 2 workers
# Apart from row 7 every proxy runs one worker (nginx 1 worker, HAProxy nbthread 1, gatehouse
# workers = 1); none writes an access log. Nothing is pinned: the load tool, the upstream and the
# proxy share the cores, so compare ratios from one run, not absolute numbers across machines.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-8}"
ROUNDS="${ROUNDS:-3}"
IDLE_CONNS="${IDLE_CONNS:-10000}"
TRANSFER_MIB="${TRANSFER_MIB:-1024}"
WARMUP="${WARMUP:-1}"
SKIP_KEEPALIVE="${SKIP_KEEPALIVE:-0}"
SKIP_ERROR="${SKIP_ERROR:-0}"
SKIP_IDLE="${SKIP_IDLE:-0}"
SKIP_H2="${SKIP_H2:-0}"
SKIP_TRANSFER="${SKIP_TRANSFER:-0}"
SKIP_WORKERS="${SKIP_WORKERS:-0}"
KEEP_TMP="${KEEP_TMP:-0}"
WRITE=0

# The load of each row, fixed so that runs stay comparable.
WRK_ARGS=(-t2 -c64)
H2LOAD_ARGS=(-t1 -c32 -m10)
SERVER_NAME=bench.test # the certificate's name

# The header comment (every line after the #! line up to the first that is not a comment).
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

for arg in "$@"; do
    case "$arg" in
        --write) WRITE=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench-cost.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

log() { printf '[bench-cost] %s\n' "$*" >&2; }
die() { printf 'bench-cost.sh: %s\n' "$*" >&2; exit 1; }

for knob in DURATION ROUNDS IDLE_CONNS TRANSFER_MIB; do
    [[ "${!knob}" =~ ^[1-9][0-9]*$ ]] || die "$knob must be a positive integer, not '${!knob}'"
done
[[ "$WARMUP" =~ ^[0-9]+$ ]] || die "WARMUP must be a whole number of seconds, not '$WARMUP'"
for knob in SKIP_KEEPALIVE SKIP_ERROR SKIP_IDLE SKIP_H2 SKIP_TRANSFER SKIP_WORKERS KEEP_TMP; do
    case "${!knob}" in 0 | 1) ;; *) die "$knob must be 0 or 1, not '${!knob}'" ;; esac
done

# ---------------------------------------------------------------------------------------------
# Processes and cleanup: remember every PID we start; on exit stop exactly those (TERM, then
# KILL). The nginx masters stop their workers.
# ---------------------------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench-cost.XXXXXX")"
STARTED_PIDS=()

# shellcheck source=SCRIPTDIR/lib/cleanup.sh disable=SC1091 # (followed with shellcheck -x)
source "$(dirname "${BASH_SOURCE[0]}")/lib/cleanup.sh"
# shellcheck source=SCRIPTDIR/lib/bench-common.sh disable=SC1091 # (followed with shellcheck -x)
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
ensure_tools() {
    # Run by hand; on a fresh Debian/Ubuntu box install what is missing.
    local missing=()
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    command -v haproxy >/dev/null 2>&1 || [[ -x /usr/sbin/haproxy ]] || missing+=(haproxy)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    if ((${#missing[@]})); then
        log "missing: ${missing[*]}; installing with: apt-get install -y ${missing[*]}"
        local sudo=()
        [[ "$(id -u)" == 0 ]] || sudo=(sudo)
        "${sudo[@]}" apt-get install -y "${missing[@]}" ||
            die "install failed; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    fi
    NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
    HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
    local v
    v="$("$NGINX" -V 2>&1)"
    [[ "$v" == *--with-http_ssl_module* && "$v" == *--with-http_v2_module* ]] ||
        die "$NGINX lacks the ssl or http_v2 module (nginx -V); install nginx-light or nginx"
    command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust: https://rustup.rs)"
}

build() {
    # The revision being built (other work may move the tree on during a run).
    GATEHOUSE_REV="$(gatehouse_revision "$ROOT")"
    log "building $GATEHOUSE_REV: cargo build --release -p gatehouse -p gatehouse-bench"
    (cd "$ROOT" && cargo build --release -p gatehouse -p gatehouse-bench) ||
        die "cargo build --release -p gatehouse -p gatehouse-bench failed"
    GATEHOUSE="$ROOT/target/release/gatehouse"
    HELPER="$ROOT/target/release/cost-helper" # upload sink and idle-connection holder
    [[ -x "$GATEHOUSE" && -x "$HELPER" ]] || die "no binaries in $ROOT/target/release"
    GATEHOUSE_BUILD="release build (\`cargo build --release\`)"
    if [[ "${PGO:-0}" == 1 ]]; then
        log "building $GATEHOUSE_REV with profile-guided optimisation: scripts/build-pgo.sh"
        GATEHOUSE="$("$ROOT/scripts/build-pgo.sh")" || die "scripts/build-pgo.sh failed"
        GATEHOUSE_BUILD="profile-guided build (\`scripts/build-pgo.sh\`)"
    fi
}

# The idle row needs IDLE_CONNS open sockets in the proxy and as many in the holder: each
# inherits this shell's limit (nginx and HAProxy are also told in their configs).
set_fd_limits() {
    raise_nofile $((IDLE_CONNS + 4096))
    if [[ "$SKIP_IDLE" != 1 ]] && ((NOFILE < IDLE_CONNS + 1024)); then
        die "the open-files limit is $NOFILE (ulimit -Hn $(ulimit -Hn)): too low for IDLE_CONNS=$IDLE_CONNS; lower IDLE_CONNS or raise the hard limit"
    fi
    # Connections each proxy must accept at once: the idle ones plus upstream and load-tool ones.
    MAX_CONNS=$((IDLE_CONNS + 1024))
}

# ---------------------------------------------------------------------------------------------
# Files: the certificate (ECDSA P-256, self-signed; the clients do not verify it) and the file
# the download row fetches (sparse: its pages come from the page cache, not the disk).
# ---------------------------------------------------------------------------------------------
CERT_CMD=(openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30
    -subj "/CN=$SERVER_NAME" -addext "subjectAltName=DNS:$SERVER_NAME")

make_files() {
    local tls="$TMP/tls"
    mkdir -p "$tls" "$TMP/files"
    "${CERT_CMD[@]}" -keyout "$tls/key.pem" -out "$tls/cert.pem" >"$tls/openssl.log" 2>&1 ||
        { cat "$tls/openssl.log" >&2; die "openssl req failed"; }
    # HAProxy wants the certificate and its key in one file.
    cat "$tls/cert.pem" "$tls/key.pem" >"$tls/haproxy.pem"
    BIG_FILE="$TMP/files/big"
    truncate -s "${TRANSFER_MIB}M" "$BIG_FILE"
    # Read it once, so that no transfer pays for filling the page cache.
    cat "$BIG_FILE" >/dev/null
    TRANSFER_BYTES=$((TRANSFER_MIB * 1024 * 1024))
}

# ---------------------------------------------------------------------------------------------
# The upstreams: nginx answering `ok` (and serving the download file), the upload sink, and a
# port where nothing listens.
# ---------------------------------------------------------------------------------------------
upstream_conf() {
    local dir="$1" port="$2" files="$3"
    nginx_main_conf "$dir" 1
    cat <<EOF
http {
$(nginx_temp_paths "$dir")
    access_log off;
    default_type text/plain;
    # The proxies keep their connections open; by default nginx closes each after 1000 requests.
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port;
        location / {
            return 200 "ok\n";
        }
        location /file/ {
            alias $files/;
            default_type application/octet-stream;
            sendfile on;
        }
    }
}
EOF
}

start_upstreams() {
    local dir="$TMP/upstream"
    mkdir -p "$dir"
    upstream_conf "$dir" "$UPSTREAM_PORT" "$TMP/files" >"$dir/nginx.conf"
    start_nginx "$dir" "$dir/nginx.conf"
    UPSTREAM_PID=$NGINX_PID
    wait_for_port "$UPSTREAM_PID" "$UPSTREAM_PORT" "$dir/error.log"

    mkdir -p "$TMP/sink"
    "$HELPER" --mode sink --listen "127.0.0.1:$SINK_PORT" >"$TMP/sink/sink.log" 2>&1 &
    SINK_PID=$!
    STARTED_PIDS+=("$SINK_PID")
    wait_for_port "$SINK_PID" "$SINK_PORT" "$TMP/sink/sink.log"
}

# ---------------------------------------------------------------------------------------------
# nginx: 1 worker (row 7: 2); one server with the plain, h2c and TLS listeners, one (plain) that
# adds the forwarding headers gatehouse adds. Ports given as "-" are left out (the idle row's and
# row 7's instances listen on one port only).
# ---------------------------------------------------------------------------------------------
nginx_proxy_conf() {
    local dir="$1" plain="$2" headers="$3" h2c="$4" tls="$5" tlsdir="$6" workers="${7:-1}"
    local h2_listen="" h2_on=""
    # nginx 1.25.1 replaced `listen ... http2` (deprecated since) by the `http2` directive.
    if (($(nginx_version_number) >= 1025001)); then
        h2_on="http2 on;"
    else
        h2_listen=" http2"
    fi
    nginx_main_conf "$dir" "$workers" "$MAX_CONNS" "$NOFILE"
    cat <<EOF
http {
$(nginx_temp_paths "$dir")
    access_log off;
    # Clients keep their connections for the whole run (HTTP/2 ones too), and the idle row's
    # connections must outlive the time it takes to open all of them.
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    http2_max_concurrent_streams 128;
    upstream bench {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    upstream sink {
        server 127.0.0.1:$SINK_PORT;
        keepalive 8;
    }
    server {
        listen 127.0.0.1:$plain;
EOF
    [[ "$h2c" == - ]] || echo "        listen 127.0.0.1:$h2c$h2_listen;"
    if [[ "$tls" != - ]]; then
        cat <<EOF
        listen 127.0.0.1:$tls ssl$h2_listen;
        ssl_certificate $tlsdir/cert.pem;
        ssl_certificate_key $tlsdir/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
EOF
    fi
    [[ -z "$h2_on" || ("$h2c" == - && "$tls" == -) ]] || echo "        $h2_on"
    cat <<EOF
        location / {
            proxy_pass http://bench;
            # Keep-alive to the upstream needs HTTP/1.1 and no "Connection: close".
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Large downloads stream through nginx's memory buffers instead of a temp file.
            proxy_max_temp_file_size 0;
        }
        location /refused {
            proxy_pass http://127.0.0.1:$DEAD_PORT;
        }
        location /upload {
            proxy_pass http://sink;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Stream the upload to the sink as it arrives, whatever its size.
            client_max_body_size 0;
            proxy_request_buffering off;
        }
    }
EOF
    [[ "$headers" == - ]] || cat <<EOF
    # What gatehouse adds to each forwarded request (and X-Request-Id to each response).
    server {
        listen 127.0.0.1:$headers;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header Via "1.1 nginx";
            proxy_set_header X-Request-Id \$request_id;
            add_header X-Request-Id \$request_id;
        }
    }
EOF
    echo "}"
}

# Each start_* function sets PROXY_PID (the process to stop: nginx's master) and WORK_PID (the
# process that serves the requests, to measure: nginx's one worker; with more workers, their
# PIDs, space-separated).

# Start nginx in prefix dir $1 with the listeners $2..$5 (plain, headers, h2c, TLS) and $6
# worker processes (default 1).
start_nginx_proxy() {
    local dir="$1" workers="${6:-1}" found
    mkdir -p "$dir"
    nginx_proxy_conf "$dir" "$2" "$3" "$4" "$5" "$TMP/tls" "$workers" >"$dir/nginx.conf"
    start_nginx "$dir" "$dir/nginx.conf"
    PROXY_PID=$NGINX_PID
    wait_for_port "$PROXY_PID" "$2" "$dir/error.log"
    # The workers: nginx forks them after it listens.
    for _ in $(seq 50); do
        WORK_PID="$(nginx_workers "$PROXY_PID" 2>/dev/null || true)"
        read -r -a found <<<"$WORK_PID"
        ((${#found[@]} == workers)) && return 0
        sleep 0.1
    done
    die "nginx master $PROXY_PID started ${#found[@]} worker(s), not $workers"
}

# ---------------------------------------------------------------------------------------------
# HAProxy: 1 thread (row 7: 2), server connections shared between clients (http-reuse always),
# no retry (retries 0) so the error path is one refused connect per request, like the others.
# ---------------------------------------------------------------------------------------------
haproxy_conf() {
    local dir="$1" plain="$2" h2c="$3" tls="$4" tlsdir="$5" threads="${6:-1}"
    cat <<EOF
global
    nbthread $threads
    maxconn $MAX_CONNS
    # HAProxy wants two descriptors per connection (client and server side) and by default
    # refuses to start when it cannot raise its limit that far; an idle client connection
    # needs one, so it runs with the limit the script has ($NOFILE), as the others do.
    no strict-limits
    pidfile $dir/haproxy.pid

defaults
    mode http
    maxconn $MAX_CONNS
    timeout connect 1s
    timeout client 120s
    timeout server 30s
    timeout http-keep-alive 120s
    http-reuse always
    retries 0

frontend fe
    bind 127.0.0.1:$plain
EOF
    [[ "$h2c" == - ]] || echo "    bind 127.0.0.1:$h2c proto h2"
    [[ "$tls" == - ]] || echo "    bind 127.0.0.1:$tls ssl crt $tlsdir/haproxy.pem alpn h2,http/1.1"
    cat <<EOF
    use_backend refused if { path_beg /refused }
    use_backend sink if { path_beg /upload }
    default_backend bench

backend bench
    server up 127.0.0.1:$UPSTREAM_PORT

backend refused
    server dead 127.0.0.1:$DEAD_PORT

backend sink
    server sink 127.0.0.1:$SINK_PORT
EOF
}

# Start HAProxy in dir $1 with the listeners $2..$4 (plain, h2c, TLS) and $5 threads (default 1).
start_haproxy() {
    local dir="$1" logfile="$1/haproxy.log"
    mkdir -p "$dir"
    haproxy_conf "$dir" "$2" "$3" "$4" "$TMP/tls" "${5:-1}" >"$dir/haproxy.cfg"
    "$HAPROXY" -c -q -f "$dir/haproxy.cfg" >"$logfile" 2>&1 ||
        { cat "$logfile" >&2; die "haproxy -c failed for $dir/haproxy.cfg"; }
    # -db: foreground, no master-worker: one process to measure and to stop.
    "$HAPROXY" -db -f "$dir/haproxy.cfg" >>"$logfile" 2>&1 &
    PROXY_PID=$!
    WORK_PID=$PROXY_PID
    STARTED_PIDS+=("$PROXY_PID")
    wait_for_port "$PROXY_PID" "$2" "$logfile"
}

# ---------------------------------------------------------------------------------------------
# gatehouse: workers = 1 (row 7: 2, and 2 with work_stealing = true), no access log, warn lines
# (the error path's) to a log file. The plain listener speaks HTTP/1.1 and h2c; the TLS one h2
# and HTTP/1.1 (ALPN). The refused upstream gets one attempt per request and no passive
# ejection, so every request really connects, as with the other two.
# ---------------------------------------------------------------------------------------------
gatehouse_conf() {
    local dir="$1" plain="$2" tls="$3" tlsdir="$4" workers="${5:-1}" stealing="${6:-false}"
    cat <<EOF
[server]
listen = ["127.0.0.1:$plain"]
workers = $workers
EOF
    [[ "$stealing" == false ]] || echo "work_stealing = $stealing"
    cat <<EOF
access_log = false
log_level = "warn"
log_file = "$dir/gatehouse.log"
# Its own state (robots.txt copies), not shared with another gatehouse on the machine.
state_dir = "$dir/state"
# Idle keep-alive connections are kept this long (the idle row holds them for a while).
client_header_timeout = "120s"
http2 = true
EOF
    [[ "$tls" == - ]] || cat <<EOF

[[server.tls]]
listen = ["127.0.0.1:$tls"]
cert = "$tlsdir/cert.pem"
key = "$tlsdir/key.pem"
EOF
    cat <<EOF

[[route]]
path = "/"
upstream = "bench"

[[route]]
path = "/refused"
upstream = "refused"

[[route]]
path = "/upload"
upstream = "sink"

[upstream.bench]
servers = ["127.0.0.1:$UPSTREAM_PORT"]

[upstream.refused]
servers = ["127.0.0.1:$DEAD_PORT"]

[upstream.refused.retry]
attempts = 1

[upstream.refused.passive]
consecutive_failures = 0

[upstream.sink]
servers = ["127.0.0.1:$SINK_PORT"]
EOF
}

# Start gatehouse in dir $1 with the listeners $2 (plain, and h2c) and $3 (TLS), $4 workers
# (default 1) and work_stealing = $5 (default false).
start_gatehouse() {
    local dir="$1" conf="$1/gatehouse.toml"
    mkdir -p "$dir/state"
    gatehouse_conf "$dir" "$2" "$3" "$TMP/tls" "${4:-1}" "${5:-false}" >"$conf"
    "$GATEHOUSE" check -c "$conf" >"$dir/check.log" 2>&1 ||
        { cat "$dir/check.log" >&2; die "gatehouse check rejected $conf"; }
    "$GATEHOUSE" run -c "$conf" >"$dir/stdout.log" 2>&1 &
    PROXY_PID=$!
    WORK_PID=$PROXY_PID
    STARTED_PIDS+=("$PROXY_PID")
    wait_for_port "$PROXY_PID" "$2" "$dir/stdout.log"
}

# ---------------------------------------------------------------------------------------------
# Targets. Keep-alive rows have four (nginx twice: plain and adding headers), row 7 four
# (gatehouse twice: per-core workers and work stealing; instances of their own), the others three.
# ---------------------------------------------------------------------------------------------
KA_TARGETS="nginx nginx-headers haproxy gatehouse"
W2_TARGETS="nginx haproxy gatehouse gatehouse-ws"
TARGETS="nginx haproxy gatehouse"

# The URL of target $2 for measurement $1 (ka, err, h2c, tls, down, up; w2: row 7's instances).
target_url() {
    local m="$1" t="$2" port
    case "$m:$t" in
        w2:nginx) port=$NGINX_W2_PORT ;;
        w2:haproxy) port=$HAPROXY_W2_PORT ;;
        w2:gatehouse) port=$GATEHOUSE_W2_PORT ;;
        w2:gatehouse-ws) port=$GATEHOUSE_WS_PORT ;;
        w2:*) die "no URL for $m:$t" ;;
        ka:nginx-headers) port=$NGINX_HEADERS_PORT ;;
        h2c:nginx) port=$NGINX_H2C_PORT ;;
        h2c:haproxy) port=$HAPROXY_H2C_PORT ;;
        h2c:gatehouse) port=$GATEHOUSE_PORT ;; # h1 and h2c on one listener
        tls:nginx) port=$NGINX_TLS_PORT ;;
        tls:haproxy) port=$HAPROXY_TLS_PORT ;;
        tls:gatehouse) port=$GATEHOUSE_TLS_PORT ;;
        *:nginx) port=$NGINX_PORT ;;
        *:haproxy) port=$HAPROXY_PORT ;;
        *:gatehouse) port=$GATEHOUSE_PORT ;;
        *) die "no URL for $m:$t" ;;
    esac
    case "$m" in
        ka | w2 | h2c) echo "http://127.0.0.1:$port/" ;;
        tls) echo "https://127.0.0.1:$port/" ;;
        err) echo "http://127.0.0.1:$port/refused" ;;
        down) echo "http://127.0.0.1:$port/file/big" ;;
        up) echo "http://127.0.0.1:$port/upload" ;;
    esac
}

# The processes that do the work for target $1 (measurement $2: w2 for row 7's instances, else
# any), space-separated: nginx's workers (not its master), HAProxy, gatehouse.
target_pid() {
    case "${2:-}:$1" in
        w2:nginx) echo "$NGINX_W2_WORKER_PIDS" ;;
        w2:haproxy) echo "$HAPROXY_W2_PID" ;;
        w2:gatehouse) echo "$GATEHOUSE_W2_PID" ;;
        w2:gatehouse-ws) echo "$GATEHOUSE_WS_PID" ;;
        *:nginx | *:nginx-headers) echo "$NGINX_WORKER_PID" ;;
        *:haproxy) echo "$HAPROXY_PID" ;;
        *:gatehouse) echo "$GATEHOUSE_PID" ;;
    esac # (the long-lived instances; set in main)
}

# Fails unless every process of target $1 (measurement $2, as for target_pid) still runs.
target_alive() {
    local pid
    for pid in $(target_pid "$1" "${2:-}"); do
        kill -0 "$pid" 2>/dev/null ||
            die "$1 (pid $pid) is no longer running; its logs are in $TMP (KEEP_TMP=1 keeps them)"
    done
}

# Targets $1 (a list) rotated by $2 places: each round starts with another proxy, so that
# whatever comes first (a cold cache, a compile starting) does not always hit the same one.
rotated() {
    local -a list
    read -r -a list <<<"$1"
    local n=${#list[@]} i out=()
    for ((i = 0; i < n; i++)); do out+=("${list[(i + $2) % n]}"); done
    echo "${out[*]}"
}

# ---------------------------------------------------------------------------------------------
# Checks before measuring: the status (and HTTP version) each target answers with.
# ---------------------------------------------------------------------------------------------
# expect NAME WANT_STATUS WANT_VERSION CURL_ARGS... ; records the status for the table.
expect() {
    local name="$1" want="$2" version="$3" out status got_version
    shift 3
    out="$(curl -sS -k --max-time 5 -o /dev/null -w '%{http_code} %{http_version}' "$@" 2>&1)" ||
        die "$name: curl $* failed: $out"
    read -r status got_version <<<"$out"
    [[ "$status" == "$want" && "$got_version" == "$version" ]] ||
        die "$name: curl $*: expected $want over HTTP/$version, got $status over HTTP/$got_version"
    STATUS[$name]="$status"
}

check_targets() {
    local t
    [[ "$SKIP_KEEPALIVE" == 1 ]] || for t in $KA_TARGETS; do
        expect "ka-$t" 200 1.1 "$(target_url ka "$t")"
    done
    [[ "$SKIP_WORKERS" == 1 ]] || for t in $W2_TARGETS; do
        expect "w2-$t" 200 1.1 "$(target_url w2 "$t")"
    done
    [[ "$SKIP_ERROR" == 1 ]] || {
        expect err-nginx 502 1.1 "$(target_url err nginx)"
        expect err-haproxy 503 1.1 "$(target_url err haproxy)" # HAProxy: 503 when it cannot connect
        expect err-gatehouse 502 1.1 "$(target_url err gatehouse)"
    }
    [[ "$SKIP_H2" == 1 ]] || for t in $TARGETS; do
        expect "h2c-$t" 200 2 --http2-prior-knowledge "$(target_url h2c "$t")"
        expect "tls-$t" 200 2 --http2 "$(target_url tls "$t")"
    done
    [[ "$SKIP_TRANSFER" == 1 ]] || for t in $TARGETS; do
        expect "down-$t" 200 1.1 --head "$(target_url down "$t")"
        expect "up-$t" 200 1.1 -d x "$(target_url up "$t")"
    done
    return 0
}

# ---------------------------------------------------------------------------------------------
# Measurements. Each appends "label value cpu_us count failures" to $RESULTS (transfers:
# "label MB/s peak_MiB rss_before_MiB"; idle: "label bytes/conn fds/conn details").
# ---------------------------------------------------------------------------------------------
record() {
    log "$(printf '%-22s %s' "$1" "${*:2}")"
    echo "$*" >>"$RESULTS"
}

# wrk: HTTP/1.1 keep-alive. For the error path every response is a 502/503, which wrk counts
# as "Non-2xx"; elsewhere any is fatal. CPU: all the target's processes (row 7's nginx: both
# workers) together.
run_wrk() {
    local m="$1" t="$2" url pids out rps requests non2xx errors cpu0 cpu1
    url="$(target_url "$m" "$t")"
    read -r -a pids <<<"$(target_pid "$t" "$m")"
    cpu0="$(cpu_ticks "${pids[@]}")"
    out="$(wrk "${WRK_ARGS[@]}" -d"${DURATION}s" "$url")"
    cpu1="$(cpu_ticks "${pids[@]}")"
    printf '%s\n' "$out" >>"$TMP/out-$m-$t.log"
    rps="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
    requests="$(awk '/ requests in / { print $1 }' <<<"$out")"
    non2xx="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")"
    # "Socket errors: connect 0, read 0, write 0, timeout 0" -> the sum of the four
    errors="$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' <<<"$out")"
    [[ -n "$rps" && -n "$requests" ]] || { printf '%s\n' "$out" >&2; die "cannot parse wrk output for $m-$t"; }
    record "$m-$t" "$rps" "$(cpu_us_per $((cpu1 - cpu0)) "$requests")" "$requests" "${errors:-0}"
    if [[ "$m" != err ]] && ((${non2xx:-0} > 0)); then
        printf '%s\n' "$out" >&2
        die "$m-$t: $non2xx responses were not 2xx"
    fi
    return 0
}

# h2load: HTTP/2 with prior knowledge (http://, h2c) or ALPN (https://); every request must
# succeed with a 2xx.
run_h2load() {
    local m="$1" t="$2" url pid out rps requests failures proto cpu0 cpu1 want=h2
    url="$(target_url "$m" "$t")"
    [[ "$m" == h2c ]] && want=h2c
    pid="$(target_pid "$t")"
    cpu0="$(cpu_ticks "$pid")"
    out="$(h2load "${H2LOAD_ARGS[@]}" -D "$DURATION" "$url" 2>&1 | grep -v '^progress:')" ||
        { printf '%s\n' "$out" >&2; die "$m-$t: h2load failed"; }
    cpu1="$(cpu_ticks "$pid")"
    printf '%s\n' "$out" >>"$TMP/out-$m-$t.log"
    rps="$(awk '/^finished in/ { for (i = 1; i < NF; i++) if ($(i + 1) == "req/s,") print $i }' <<<"$out")"
    # "requests: 138312 total, 138472 started, 138312 done, 138312 succeeded, 0 failed, 0 errored, 0 timeout"
    # "status codes: 138312 2xx, 0 3xx, 0 4xx, 0 5xx"
    requests="$(awk '/^requests:/ { print $8 }' <<<"$out")"
    failures="$(awk '/^requests:/ { print $10 + $12 + $14 } /^status codes:/ { print $5 + $7 + $9 }' <<<"$out" |
        awk '{ s += $1 } END { print s + 0 }')"
    proto="$(awk -F': ' '/^Application protocol:/ { print $2; exit }' <<<"$out")"
    [[ -n "$rps" && -n "$requests" ]] || { printf '%s\n' "$out" >&2; die "cannot parse h2load output for $m-$t"; }
    [[ "$proto" == "$want" ]] ||
        { printf '%s\n' "$out" >&2; die "$m-$t: h2load negotiated '${proto:-nothing}', not $want"; }
    record "$m-$t" "$rps" "$(cpu_us_per $((cpu1 - cpu0)) "$requests")" "$requests" "$failures"
    ((failures == 0)) || { printf '%s\n' "$out" >&2; die "$m-$t: $failures requests failed or were not 2xx"; }
}

# One download (m=down) or upload (m=up) of TRANSFER_MIB with curl, through target $2 or, for
# "direct", straight to the upstream / sink: MB/s (10^6 bytes per second, over curl's total
# time) and the proxy's peak RSS during the transfer.
run_transfer() {
    local m="$1" t="$2" url pid="" out code bytes secs mbps peak=n/a rss_before=n/a body="$TMP/transfer-body.txt"
    if [[ "$t" == direct ]]; then
        if [[ "$m" == down ]]; then url="http://127.0.0.1:$UPSTREAM_PORT/file/big"; else url="http://127.0.0.1:$SINK_PORT/upload"; fi
    else
        url="$(target_url "$m" "$t")"
        pid="$(target_pid "$t")"
        # VmHWM is the peak since the process started; reset it to measure this transfer's.
        reset_peak_rss "$pid" || PEAK_IS_LIFETIME=1
        rss_before="$(awk -v k="$(rss_kib "$pid")" 'BEGIN { printf "%.1f", k / 1024 }')"
    fi
    if [[ "$m" == down ]]; then
        out="$(curl -sS --max-time 600 -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$url")" ||
            die "$m-$t: curl failed: $out"
    else
        # PUT from the file, streamed; no "Expect: 100-continue" round trip (proxies differ there).
        out="$(curl -sS --max-time 600 -T "$BIG_FILE" -H 'Expect:' -o "$body" \
            -w '%{http_code} %{size_upload} %{time_total}' "$url")" || die "$m-$t: curl failed: $out"
        [[ "$(cat "$body")" == "$TRANSFER_BYTES" ]] ||
            die "$m-$t: the sink read $(cat "$body") body bytes, not $TRANSFER_BYTES"
    fi
    read -r code bytes secs <<<"$out"
    [[ "$code" == 200 && "$bytes" == "$TRANSFER_BYTES" ]] ||
        die "$m-$t: expected 200 and $TRANSFER_BYTES bytes, got $code and $bytes"
    mbps="$(awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%.1f", (s > 0) ? b / s / 1e6 : 0 }')"
    [[ -z "$pid" ]] || peak="$(awk -v k="$(peak_rss_kib "$pid")" 'BEGIN { printf "%.1f", k / 1024 }')"
    record "$m-$t" "$mbps" "$peak" "$rss_before"
}

# Idle keep-alive connections: a fresh instance of target $1 (so that memory freed after the
# other rows' load is not reused and hidden), a few requests to warm it up, then RSS and fds;
# the holder opens IDLE_CONNS connections with one request each and keeps them idle; RSS and
# fds again. The difference per connection is what an idle client costs.
run_idle() {
    local t="$1" dir="$TMP/idle-$1" pid started holder held rss0 rss1 fds0 fds1 hrss
    case "$t" in
        nginx) start_nginx_proxy "$dir" "$IDLE_PORT" - - - ;;
        haproxy) start_haproxy "$dir" "$IDLE_PORT" - - ;;
        gatehouse) start_gatehouse "$dir" "$IDLE_PORT" - ;;
    esac
    pid=$WORK_PID
    started=$PROXY_PID
    curl -sS --max-time 5 -o /dev/null "http://127.0.0.1:$IDLE_PORT/?warm=[1-20]" ||
        die "idle-$t: warm-up requests failed"
    sleep 0.5
    rss0="$(rss_kib "$pid")"
    fds0="$(fd_count "$pid")"
    # Created here: the background child opens it only when it gets to run.
    : >"$dir/holder.out"
    "$HELPER" --mode hold --connect "127.0.0.1:$IDLE_PORT" --count "$IDLE_CONNS" \
        >>"$dir/holder.out" 2>"$dir/holder.err" &
    holder=$!
    STARTED_PIDS+=("$holder")
    held=""
    for _ in $(seq 1200); do # up to 120 s
        held="$(cat "$dir/holder.out")"
        [[ -n "$held" ]] && break
        kill -0 "$holder" 2>/dev/null || { cat "$dir/holder.err" >&2; die "idle-$t: the connection holder failed"; }
        sleep 0.1
    done
    [[ "$held" == "held $IDLE_CONNS connections" ]] || die "idle-$t: holder said '${held:-nothing}' after 120 s"
    sleep 0.5 # let the proxy finish with the last request
    rss1="$(rss_kib "$pid")"
    fds1="$(fd_count "$pid")"
    hrss="$(rss_kib "$holder")"
    stop_started "$holder"
    stop_started "$started"
    if ((fds1 - fds0 < IDLE_CONNS * 9 / 10)); then
        log "WARNING: idle-$t: only $((fds1 - fds0)) more fds for $IDLE_CONNS connections: did it close idle ones?"
    fi
    record "idle-$t" \
        "$(awk -v a="$rss0" -v b="$rss1" -v n="$IDLE_CONNS" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')" \
        "$(awk -v a="$fds0" -v b="$fds1" -v n="$IDLE_CONNS" 'BEGIN { printf "%.3f", (b - a) / n }')" \
        "rss_kib=$rss0->$rss1 fds=$fds0->$fds1 holder_rss_kib=$hrss"
}

# Unmeasured load on each long-lived target before the rounds.
warm_up() {
    local t
    ((WARMUP > 0)) || return 0
    log "warm-up: ${WARMUP}s per target"
    for t in $KA_TARGETS; do
        wrk "${WRK_ARGS[@]}" -d"${WARMUP}s" "$(target_url ka "$t")" >/dev/null
    done
    [[ "$SKIP_WORKERS" == 1 ]] || for t in $W2_TARGETS; do
        wrk "${WRK_ARGS[@]}" -d"${WARMUP}s" "$(target_url w2 "$t")" >/dev/null
    done
    [[ "$SKIP_H2" == 1 ]] || for t in $TARGETS; do
        h2load "${H2LOAD_ARGS[@]}" -D "$WARMUP" "$(target_url tls "$t")" >/dev/null 2>&1 ||
            die "$t: h2load warm-up failed"
    done
    return 0
}

one_round() {
    local r="$1" t
    if [[ "$SKIP_KEEPALIVE" != 1 ]]; then
        for t in $(rotated "$KA_TARGETS" "$r"); do target_alive "$t"; run_wrk ka "$t"; done
    fi
    if [[ "$SKIP_WORKERS" != 1 ]]; then
        for t in $(rotated "$W2_TARGETS" "$r"); do target_alive "$t" w2; run_wrk w2 "$t"; done
    fi
    if [[ "$SKIP_ERROR" != 1 ]]; then
        for t in $(rotated "$TARGETS" "$r"); do target_alive "$t"; run_wrk err "$t"; done
    fi
    if [[ "$SKIP_H2" != 1 ]]; then
        for t in $(rotated "$TARGETS" "$r"); do target_alive "$t"; run_h2load h2c "$t"; done
        for t in $(rotated "$TARGETS" "$r"); do target_alive "$t"; run_h2load tls "$t"; done
    fi
    if [[ "$SKIP_TRANSFER" != 1 ]]; then
        run_transfer down direct
        run_transfer up direct
        for t in $(rotated "$TARGETS" "$r"); do
            target_alive "$t"
            run_transfer down "$t"
            run_transfer up "$t"
        done
    fi
    if [[ "$SKIP_IDLE" != 1 ]]; then
        for t in $(rotated "$TARGETS" "$r"); do run_idle "$t"; done
    fi
    return 0
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

# The median of column $2 for label $1 (unrounded: ratios are taken from it), "—" for a target
# a row does not measure, "skipped" for a skipped row.
cell() {
    local label="$1" col="$2" skip="$3"
    if [[ "$skip" == 1 ]]; then echo skipped
    elif grep -q "^$label " "$RESULTS"; then median "$label" "$col"
    else echo "—"
    fi
}

# Column $2 for label $1, round by round in printf format $3, comma-separated.
by_round() {
    awk -v l="$1" -v c="$2" -v f="$3" '$1 == l { printf "%s" f, sep, $c; sep = ", " }' "$RESULTS"
}

# A number in printf format $2 (other cells as they are).
fmt() {
    if [[ "$1" =~ ^[0-9]+([.][0-9]*)?$ ]]; then awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; else echo "$1"; fi
}

# One table row: name, metric, measurement prefix, column, skip flag, number format; ratios
# against nginx (and against nginx with headers for the keep-alive rows). A 7th argument names
# another gatehouse target (row 7's gatehouse-ws): its row leaves the nginx and HAProxy cells
# empty (they are the row above's) but still takes its ratio against nginx.
row() {
    local name="$1" metric="$2" m="$3" col="$4" skip="$5" f="$6" gt="${7:-gatehouse}" ng ngh ha gh r1="" r2=""
    ng="$(cell "$m-nginx" "$col" "$skip")"
    ngh="$(cell "$m-nginx-headers" "$col" "$skip")"
    ha="$(cell "$m-haproxy" "$col" "$skip")"
    gh="$(cell "$m-$gt" "$col" "$skip")"
    if [[ "$skip" != 1 ]]; then
        r1="$(ratio "$gh" "$ng")"
        [[ "$ngh" == "—" ]] || r2="$(ratio "$gh" "$ngh")"
    fi
    if [[ "$gt" != gatehouse ]]; then
        echo "| $name | $metric | | | | $(fmt "$gh" "$f") | $r1 | $r2 |"
        return 0
    fi
    echo "| $name | $metric | $(fmt "$ng" "$f") | $(fmt "$ngh" "$f") | $(fmt "$ha" "$f") | $(fmt "$gh" "$f") | $r1 | $r2 |"
}

status_row() {
    if [[ "$SKIP_ERROR" == 1 ]]; then
        echo "| | status answered | skipped | skipped | skipped | skipped | | |"
    else
        echo "| | status answered | ${STATUS[err-nginx]} | — | ${STATUS[err-haproxy]} | ${STATUS[err-gatehouse]} | | |"
    fi
}

print_table() {
    local mib="$TRANSFER_MIB MiB"
    ((TRANSFER_MIB % 1024)) || mib="$((TRANSFER_MIB / 1024)) GiB"
    cat <<EOF
Median of $ROUNDS round(s); rates over ${DURATION}s runs. CPU is the proxy process's user +
system time per request (nginx: its one worker process; row 7: both nginx workers, all threads
of HAProxy and gatehouse). Lower is better for CPU, memory and fds; higher for req/s and MB/s.
Row 7 runs two workers per proxy (nginx \`worker_processes 2\`, HAProxy \`nbthread 2\`, gatehouse
\`workers = 2\`, per-core runtimes and SO_REUSEPORT sockets, then \`workers = 2\` with
\`work_stealing = true\`, one multi-thread runtime); its ratios are against nginx with 2 workers.

| measurement | metric | nginx | nginx + headers | HAProxy | gatehouse | gatehouse ÷ nginx | gatehouse ÷ nginx + headers |
|---|---|---:|---:|---:|---:|---:|---:|
EOF
    row "1. keep-alive, HTTP/1.1 (\`wrk ${WRK_ARGS[*]}\`)" "req/s" ka 2 "$SKIP_KEEPALIVE" %.0f
    row "2. CPU per request (row 1's runs)" "µs/req" ka 3 "$SKIP_KEEPALIVE" %.1f
    row "3. error path: upstream port closed" "req/s" err 2 "$SKIP_ERROR" %.0f
    row "" "CPU µs/req" err 3 "$SKIP_ERROR" %.1f
    status_row
    row "4. idle keep-alive client connections ($IDLE_CONNS)" "RSS bytes/conn" idle 2 "$SKIP_IDLE" %.0f
    row "" "fds/conn" idle 3 "$SKIP_IDLE" %.2f
    row "5. HTTP/2 h2c (\`h2load ${H2LOAD_ARGS[*]}\`)" "req/s" h2c 2 "$SKIP_H2" %.0f
    row "" "CPU µs/req" h2c 3 "$SKIP_H2" %.1f
    row "   HTTP/2 over TLS (ALPN h2)" "req/s" tls 2 "$SKIP_H2" %.0f
    row "" "CPU µs/req" tls 3 "$SKIP_H2" %.1f
    row "6. download $mib" "MB/s" down 2 "$SKIP_TRANSFER" %.0f
    row "" "peak RSS MiB" down 3 "$SKIP_TRANSFER" %.1f
    row "   upload $mib" "MB/s" up 2 "$SKIP_TRANSFER" %.0f
    row "" "peak RSS MiB" up 3 "$SKIP_TRANSFER" %.1f
    row "7. workers = 2, keep-alive (\`wrk ${WRK_ARGS[*]}\`)" "req/s" w2 2 "$SKIP_WORKERS" %.0f
    row "" "CPU µs/req" w2 3 "$SKIP_WORKERS" %.1f
    row "   gatehouse \`work_stealing = true\`" "req/s" w2 2 "$SKIP_WORKERS" %.0f gatehouse-ws
    row "" "CPU µs/req" w2 3 "$SKIP_WORKERS" %.1f gatehouse-ws
    echo
    local t line
    if [[ "$SKIP_TRANSFER" != 1 ]]; then
        echo "- Without a proxy (curl straight to the upstream nginx / the sink): download $(fmt "$(median down-direct 2)" %.0f) MB/s, upload $(fmt "$(median up-direct 2)" %.0f) MB/s."
        if [[ "$PEAK_IS_LIFETIME" == 1 ]]; then
            echo "- Peak RSS could not be reset before each transfer (/proc/PID/clear_refs refused): it is each process's peak since it started."
        else
            echo "- Peak RSS is VmHWM, reset (/proc/PID/clear_refs) just before each transfer: the peak during it."
        fi
        line="- RSS just before the transfers (median, download / upload; the peak includes what each process kept from the rows before):"
        for t in $TARGETS; do
            line+=" $t $(fmt "$(median "down-$t" 4)" %.1f) / $(fmt "$(median "up-$t" 4)" %.1f) MiB,"
        done
        echo "${line%,}."
    fi
    if [[ "$SKIP_KEEPALIVE" != 1 || "$SKIP_ERROR" != 1 || "$SKIP_WORKERS" != 1 ]]; then
        line="- wrk socket errors summed over the rounds:"
        [[ "$SKIP_KEEPALIVE" == 1 ]] || for t in $KA_TARGETS; do line+=" $t $(total "ka-$t" 5)"; done
        [[ "$SKIP_ERROR" == 1 ]] || line+="; error path: nginx $(total err-nginx 5), haproxy $(total err-haproxy 5), gatehouse $(total err-gatehouse 5)"
        [[ "$SKIP_WORKERS" == 1 ]] || {
            line+="; workers = 2:"
            for t in $W2_TARGETS; do line+=" $t $(total "w2-$t" 5)"; done
        }
        echo "${line/:;/:}."
    fi
    if [[ "$SKIP_KEEPALIVE" != 1 ]]; then
        # The spread shows how steady the machine was (other work on it moves req/s first).
        line="- Row 1 by round (req/s):"
        for t in $KA_TARGETS; do line+=" $t $(by_round "ka-$t" 2 %.0f);"; done
        echo "${line%;}."
        line="- Row 2 by round (µs/req):"
        for t in $KA_TARGETS; do line+=" $t $(by_round "ka-$t" 3 %.1f);"; done
        echo "${line%;}."
    fi
    if [[ "$SKIP_WORKERS" != 1 ]]; then
        line="- Row 7 by round (req/s):"
        for t in $W2_TARGETS; do line+=" $t $(by_round "w2-$t" 2 %.0f);"; done
        echo "${line%;}."
        line="- Row 7 by round (µs/req):"
        for t in $W2_TARGETS; do line+=" $t $(by_round "w2-$t" 3 %.1f);"; done
        echo "${line%;}."
    fi
    if [[ "$SKIP_IDLE" != 1 ]]; then
        echo "- Row 4, fresh proxies each round; VmRSS in KiB and open fds before → after opening the connections, and the holder's own RSS, by round:"
        for t in $TARGETS; do
            awk -v l="idle-$t" '$1 == l { printf "%s%s %s %s", sep, $4, $5, $6; sep = "; " }' "$RESULTS" |
                sed "s/->/ → /g; s/^/  - $t: /; s/\$/./"
            echo
        done
    fi
}

print_environment() {
    local cpu
    cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    cat <<EOF
- kernel: \`$(uname -srm)\`
- CPU: $cpu, nproc $(nproc); CPU busy in the second before the run: ${CPU_BUSY_BEFORE}%
- $("$NGINX" -v 2>&1); $("$HAPROXY" -v 2>&1 | head -1 | sed 's/ - https.*//')
- wrk $(wrk --version 2>&1 | head -1 | awk '{ print $2 }'); $(h2load --version 2>&1 | head -1); $(curl --version | head -1 | awk '{ print $1, $2 }')
- gatehouse: $GATEHOUSE_REV, $GATEHOUSE_BUILD
- open-files limit $NOFILE; the load tool, the upstream and the proxy share the $(nproc) cores, nothing is pinned
EOF
}

# shellcheck disable=SC2016 # '$TMP/...' is printed literally, as a placeholder
print_method() {
    # The configs as run, with placeholders for the random ports and the temp dir.
    local UPSTREAM_PORT=UPSTREAM SINK_PORT=SINK DEAD_PORT=DEAD
    cat <<EOF
Each round runs, each through the proxies in turn (the order rotates by one each round):
\`wrk ${WRK_ARGS[*]} -d${DURATION}s URL\` for rows 1-3 and 7, \`h2load ${H2LOAD_ARGS[*]} -D $DURATION URL\`
(\`http://\`: h2c by prior knowledge; \`https://\`: ALPN h2) for row 5, \`curl -o /dev/null URL/file/big\`
and \`curl -T big -H 'Expect:' URL/upload\` for row 6, then row 4: for each proxy a fresh instance
on a port of its own, 20 warm-up requests, \`cost-helper --mode hold --count $IDLE_CONNS\` (one
keep-alive GET per connection, then idle).

Upstream (nginx, 1 worker; \`big\` is a sparse $TRANSFER_MIB MiB file):

\`\`\`nginx
$(upstream_conf '$TMP/upstream' UPSTREAM '$TMP/files')
\`\`\`

The upload sink: \`cost-helper --mode sink --listen 127.0.0.1:SINK\` (crates/bench).

nginx:

\`\`\`nginx
$(nginx_proxy_conf '$TMP/nginx' PROXY PROXY_HEADERS PROXY_H2C PROXY_TLS '$TMP/tls')
\`\`\`

HAProxy (\`haproxy -db -f haproxy.cfg\`):

\`\`\`haproxy
$(haproxy_conf '$TMP/haproxy' PROXY PROXY_H2C PROXY_TLS '$TMP/tls')
\`\`\`

gatehouse (\`gatehouse run -c gatehouse.toml\`):

\`\`\`toml
$(gatehouse_conf '$TMP/gatehouse' PROXY PROXY_TLS '$TMP/tls')
\`\`\`

Row 7 runs instances of its own, started with the others and listening on one plain port each
(no headers, h2c or TLS listener), the configs above otherwise: nginx with
\`worker_processes 2;\` (its CPU is both workers'), HAProxy with \`nbthread 2\`, gatehouse with
\`workers = 2\` and, for the second gatehouse, \`workers = 2\` and \`work_stealing = true\`.
EOF
}

write_docs() {
    local doc="$ROOT/docs/benchmarks.md"
    [[ -f "$doc" ]] || printf '# Benchmarks\n' >"$doc"
    {
        printf '\n## Cost per request, connection and byte %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "\`scripts/bench-cost.sh\` (DURATION=$DURATION ROUNDS=$ROUNDS IDLE_CONNS=$IDLE_CONNS TRANSFER_MIB=$TRANSFER_MIB):"
        echo
        print_environment
        echo
        cat "$TMP/table.md"
        echo
        print_method
    } >>"$doc"
    log "appended results to $doc"
}

# Row 7's instances, long-lived like the others, plain listener only: two workers each.
start_workers_2() {
    start_nginx_proxy "$TMP/nginx-w2" "$NGINX_W2_PORT" - - - 2
    NGINX_W2_WORKER_PIDS=$WORK_PID
    start_haproxy "$TMP/haproxy-w2" "$HAPROXY_W2_PORT" - - 2
    HAPROXY_W2_PID=$WORK_PID
    start_gatehouse "$TMP/gatehouse-w2" "$GATEHOUSE_W2_PORT" - 2
    GATEHOUSE_W2_PID=$WORK_PID
    start_gatehouse "$TMP/gatehouse-ws" "$GATEHOUSE_WS_PORT" - 2 true
    GATEHOUSE_WS_PID=$WORK_PID
    log "workers = 2: nginx :$NGINX_W2_PORT (workers $NGINX_W2_WORKER_PIDS), HAProxy" \
        ":$HAPROXY_W2_PORT (pid $HAPROXY_W2_PID), gatehouse :$GATEHOUSE_W2_PORT (pid" \
        "$GATEHOUSE_W2_PID), gatehouse work_stealing :$GATEHOUSE_WS_PORT (pid $GATEHOUSE_WS_PID)"
}

# ---------------------------------------------------------------------------------------------
main() {
    declare -gA STATUS=()
    PEAK_IS_LIFETIME=0
    ensure_tools
    build
    set_fd_limits
    make_files
    check_idle

    local p
    for p in UPSTREAM_PORT SINK_PORT DEAD_PORT NGINX_PORT NGINX_HEADERS_PORT NGINX_H2C_PORT \
        NGINX_TLS_PORT HAPROXY_PORT HAPROXY_H2C_PORT HAPROXY_TLS_PORT GATEHOUSE_PORT \
        GATEHOUSE_TLS_PORT IDLE_PORT NGINX_W2_PORT HAPROXY_W2_PORT GATEHOUSE_W2_PORT \
        GATEHOUSE_WS_PORT; do
        free_port "$p" # DEAD_PORT is never listened on: connections to it are refused
    done
    RESULTS="$TMP/results.txt"
    : >"$RESULTS"

    start_upstreams
    start_nginx_proxy "$TMP/nginx" "$NGINX_PORT" "$NGINX_HEADERS_PORT" "$NGINX_H2C_PORT" "$NGINX_TLS_PORT"
    NGINX_WORKER_PID=$WORK_PID
    start_haproxy "$TMP/haproxy" "$HAPROXY_PORT" "$HAPROXY_H2C_PORT" "$HAPROXY_TLS_PORT"
    HAPROXY_PID=$WORK_PID
    start_gatehouse "$TMP/gatehouse" "$GATEHOUSE_PORT" "$GATEHOUSE_TLS_PORT"
    GATEHOUSE_PID=$WORK_PID
    log "upstream :$UPSTREAM_PORT, sink :$SINK_PORT, refused :$DEAD_PORT; nginx :$NGINX_PORT" \
        "(worker $NGINX_WORKER_PID), HAProxy :$HAPROXY_PORT (pid $HAPROXY_PID), gatehouse" \
        ":$GATEHOUSE_PORT (pid $GATEHOUSE_PID); open files $NOFILE; temp dir $TMP"
    [[ "$SKIP_WORKERS" == 1 ]] || start_workers_2

    check_targets
    warm_up
    local r
    for r in $(seq "$ROUNDS"); do
        log "round $r/$ROUNDS"
        one_round "$r"
    done

    print_table >"$TMP/table.md"
    echo
    cat "$TMP/table.md"
    [[ "$WRITE" == 1 ]] && write_docs
    return 0
}

main
