#!/usr/bin/env bash
# TLS and HTTP/2 benchmark: nginx and gatehouse terminating TLS with the same certificate and
# key, in front of the same origin, on one machine, over loopback.
#
#   scripts/bench-tls.sh            run and print the results
#   scripts/bench-tls.sh --write    run, print, and append a dated "TLS and HTTP/2" section to docs/benchmarks.md
#
# Environment:
#   DURATION=8        seconds per measured run
#   ROUNDS=3          interleaved rounds (the table shows medians)
#   CONNECTIONS=32    wrk connections (wrk -t1), and parallel curl transfers in the handshake runs
#   H2_CLIENTS=16     h2load connections (h2load -t1)
#   H2_STREAMS=10     h2load concurrent streams per connection (-m)
#   WARMUP=1          seconds of unmeasured load per target and measurement before the rounds
#   SKIP_GATEHOUSE=0  1: measure only nginx (no build)
#   KEEP_TMP=0        1: keep the temp dir (certificate, configs, logs, tool output)
#
# Both proxies forward to the origin, an nginx serving a static 1 KiB file /small, over
# keep-alive connections. Measured against each proxy, round by round:
#   1. HTTPS keep-alive, HTTP/1.1: wrk -t1 -cCONNECTIONS              -> req/s, p99
#   2. HTTP/2 over TLS (ALPN h2): h2load -t1 -cH2_CLIENTS -mH2_STREAMS -> req/s, mean request time
#   3. Full TLS handshakes: a new connection per request (Connection: close), CONNECTIONS curl
#      transfers in parallel with --no-sessionid, so no handshake resumes a session, whatever
#      the server offers (wrk and h2load resume when they can)  -> handshakes/s, p99
# and, for each, the proxy's CPU time per request (nginx: its workers; gatehouse: its process).
# One ECDSA P-256 certificate (openssl req, self-signed, made per run) serves both; the clients
# do not verify it. nginx runs 2 workers and gatehouse `workers = 2`, as the machine has 2 cores
# that wrk/h2load/curl and the origin share with them: nothing is pinned.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-8}"
ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${CONNECTIONS:-32}"
H2_CLIENTS="${H2_CLIENTS:-16}"
H2_STREAMS="${H2_STREAMS:-10}"
WARMUP="${WARMUP:-1}"
SKIP_GATEHOUSE="${SKIP_GATEHOUSE:-0}"
KEEP_TMP="${KEEP_TMP:-0}"
WRITE=0

PROXY_WORKERS=2        # nginx worker_processes and gatehouse workers
OBJECT=small           # served by the origin as /small
OBJECT_BYTES=1024
SERVER_NAME=bench.test # the certificate's name (CN and subjectAltName)

usage() { sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

for arg in "$@"; do
    case "$arg" in
        --write) WRITE=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench-tls.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

log() { printf '[bench-tls] %s\n' "$*" >&2; }
die() { printf 'bench-tls.sh: %s\n' "$*" >&2; exit 1; }

case "$SKIP_GATEHOUSE" in 0 | 1) ;; *) die "SKIP_GATEHOUSE must be 0 or 1, not '$SKIP_GATEHOUSE'" ;; esac
for knob in DURATION ROUNDS CONNECTIONS H2_CLIENTS H2_STREAMS; do
    [[ "${!knob}" =~ ^[1-9][0-9]*$ ]] || die "$knob must be a positive integer, not '${!knob}'"
done
[[ "$WARMUP" =~ ^[0-9]+$ ]] || die "WARMUP must be a whole number of seconds, not '$WARMUP'"
TARGETS="nginx"
[[ "$SKIP_GATEHOUSE" == 1 ]] || TARGETS+=" gatehouse"
MEASUREMENTS="h1 h2 hs"

# ---------------------------------------------------------------------------------------------
# Processes and cleanup: remember every PID we start; on exit stop exactly those (TERM, then
# KILL). The nginx masters stop their workers.
# ---------------------------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench-tls.XXXXXX")"
STARTED_PIDS=()

# shellcheck source=SCRIPTDIR/lib/cleanup.sh disable=SC1091 # (followed with shellcheck -x)
source "$(dirname "${BASH_SOURCE[0]}")/lib/cleanup.sh"
# shellcheck source=SCRIPTDIR/lib/bench-common.sh disable=SC1091 # (followed with shellcheck -x)
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
ensure_tools() {
    # Run by hand; on a fresh Debian/Ubuntu box (or CI image) install what is missing.
    local missing=()
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    if ((${#missing[@]})); then
        log "missing: ${missing[*]}; installing with: apt-get install -y ${missing[*]}"
        local sudo=()
        [[ "$(id -u)" == 0 ]] || sudo=(sudo)
        "${sudo[@]}" apt-get install -y "${missing[@]}" ||
            die "install failed; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    fi
    NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
    local v
    v="$("$NGINX" -V 2>&1)"
    [[ "$v" == *--with-http_ssl_module* && "$v" == *--with-http_v2_module* ]] ||
        die "$NGINX lacks the ssl or http_v2 module (nginx -V); install nginx-light or nginx"
    # Handshake runs stop curl after DURATION seconds and count the lines it wrote: stdbuf
    # makes it write each as the transfer ends.
    command -v stdbuf >/dev/null 2>&1 || die "stdbuf (coreutils) not found"
    command -v timeout >/dev/null 2>&1 || die "timeout (coreutils) not found"
    if [[ "$SKIP_GATEHOUSE" != 1 ]]; then
        command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust: https://rustup.rs)"
    fi
    return 0
}

build_gatehouse() {
    # The revision being built (the tree may move on during a run).
    GATEHOUSE_REV="$(gatehouse_revision "$ROOT")"
    log "building $GATEHOUSE_REV: cargo build --release -p gatehouse"
    (cd "$ROOT" && cargo build --release -p gatehouse) || die "cargo build --release -p gatehouse failed"
    GATEHOUSE="$ROOT/target/release/gatehouse"
    [[ -x "$GATEHOUSE" ]] || die "no binary at $GATEHOUSE"
}

# ---------------------------------------------------------------------------------------------
# The certificate: ECDSA P-256, self-signed, for bench.test, shared by both proxies.
# ---------------------------------------------------------------------------------------------
CERT_CMD=(openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30
    -subj "/CN=$SERVER_NAME" -addext "subjectAltName=DNS:$SERVER_NAME")

make_certificate() {
    local dir="$TMP/tls"
    mkdir -p "$dir"
    "${CERT_CMD[@]}" -keyout "$dir/key.pem" -out "$dir/cert.pem" >"$dir/openssl.log" 2>&1 ||
        { cat "$dir/openssl.log" >&2; die "openssl req failed"; }
    CERT_FACTS="$(openssl x509 -in "$dir/cert.pem" -noout -text |
        awk '/Public Key Algorithm:|ASN1 OID:|Signature Algorithm:/ { sub(/^ +/, ""); print }' |
        sort -u | paste -sd ';' - | sed 's/;/; /g')"
}

# ---------------------------------------------------------------------------------------------
# The origin: nginx, 1 worker, the static file; plain HTTP/1.1 with keep-alive.
# ---------------------------------------------------------------------------------------------
origin_conf() {
    local dir="$1" port="$2"
    nginx_main_conf "$dir" 1
    cat <<EOF
http {
$(nginx_temp_paths "$dir")
    access_log off;
    # The proxies keep their connections open; without this nginx closes each one after
    # 1000 requests.
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port;
        root $dir/www;
        default_type application/octet-stream;
    }
}
EOF
}

start_origin() {
    local dir="$TMP/origin"
    mkdir -p "$dir/www"
    # Printable, fixed content of the exact size (generated; no file in the repository).
    yes "gatehouse TLS benchmark object ................................................" |
        head -c "$OBJECT_BYTES" >"$dir/www/$OBJECT" || true
    [[ "$(stat -c %s "$dir/www/$OBJECT")" == "$OBJECT_BYTES" ]] || die "could not write $dir/www/$OBJECT"
    origin_conf "$dir" "$ORIGIN_PORT" >"$dir/nginx.conf"
    start_nginx "$dir" "$dir/nginx.conf"
    ORIGIN_PID=$NGINX_PID
    wait_for_port "$ORIGIN_PID" "$ORIGIN_PORT" "$dir/error.log"
}

# ---------------------------------------------------------------------------------------------
# nginx terminating TLS: 2 workers, HTTP/1.1 and HTTP/2 (ALPN), keep-alive to the origin.
# ---------------------------------------------------------------------------------------------
nginx_tls_conf() {
    local dir="$1" port="$2" origin="$3" tls="$4" listen_http2="" http2_on=""
    # nginx 1.25.1 replaced `listen ... http2` (deprecated since) by the `http2` directive.
    if (($(nginx_version_number) >= 1025001)); then
        http2_on=$'\n        http2 on;'
    else
        listen_http2=" http2"
    fi
    nginx_main_conf "$dir" "$PROXY_WORKERS"
    cat <<EOF
http {
$(nginx_temp_paths "$dir")
    access_log off;
    # Clients keep their connections for the whole run; by default nginx closes each after
    # 1000 requests (HTTP/2 connections too, since 1.19.7).
    keepalive_requests 1000000;
    upstream origin {
        server 127.0.0.1:$origin;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port ssl$listen_http2;$http2_on
        ssl_certificate $tls/cert.pem;
        ssl_certificate_key $tls/key.pem;
        # nginx before 1.23.4 leaves TLSv1.3 out by default; gatehouse's min_version is 1.2.
        ssl_protocols TLSv1.2 TLSv1.3;
        # nginx's default, as gatehouse's http2_max_concurrent_streams.
        http2_max_concurrent_streams 128;
        location / {
            proxy_pass http://origin;
            # Keep-alive to the origin needs HTTP/1.1 and no "Connection: close".
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
}

start_nginx_tls() {
    local dir="$TMP/nginx"
    mkdir -p "$dir"
    nginx_tls_conf "$dir" "$NGINX_PORT" "$ORIGIN_PORT" "$TMP/tls" >"$dir/nginx.conf"
    start_nginx "$dir" "$dir/nginx.conf"
    NGINX_TLS_PID=$NGINX_PID
    wait_for_port "$NGINX_TLS_PID" "$NGINX_PORT" "$dir/error.log"
    # Both workers: nginx forks them after it listens.
    local workers=()
    for _ in $(seq 50); do
        NGINX_WORKER_PIDS="$(nginx_workers "$NGINX_TLS_PID" 2>/dev/null || true)"
        read -r -a workers <<<"$NGINX_WORKER_PIDS"
        ((${#workers[@]} >= PROXY_WORKERS)) && return 0
        sleep 0.1
    done
    die "nginx master $NGINX_TLS_PID has workers '${NGINX_WORKER_PIDS}', expected $PROXY_WORKERS"
}

# ---------------------------------------------------------------------------------------------
# gatehouse terminating TLS: a [[server.tls]] listener, HTTP/2 on, 2 workers.
# ---------------------------------------------------------------------------------------------
gatehouse_conf() {
    local plain="$1" port="$2" origin="$3" tls="$4" state="$5"
    cat <<EOF
[server]
# A plain listener (not measured); the TLS listener is the [[server.tls]] below.
listen = ["127.0.0.1:$plain"]
workers = $PROXY_WORKERS
access_log = false
log_level = "warn"
# Its own state (robots.txt copies), not shared with another gatehouse on the machine.
state_dir = "$state"
http2 = true
http2_max_concurrent_streams = 128

[[server.tls]]
listen = ["127.0.0.1:$port"]
cert = "$tls/cert.pem"
key = "$tls/key.pem"
min_version = "1.2"

[[route]]
path = "/"
upstream = "origin"

[upstream.origin]
servers = ["127.0.0.1:$origin"]
EOF
}

# Write the config and have gatehouse check it, before anything is started: until gatehouse has
# TLS listeners it refuses this config, and the run stops here.
check_gatehouse_conf() {
    local dir="$TMP/gatehouse" out
    mkdir -p "$dir/state"
    GATEHOUSE_CONF="$dir/gatehouse.toml"
    gatehouse_conf "$GATEHOUSE_PLAIN_PORT" "$GATEHOUSE_PORT" "$ORIGIN_PORT" "$TMP/tls" "$dir/state" \
        >"$GATEHOUSE_CONF"
    if ! out="$("$GATEHOUSE" check -c "$GATEHOUSE_CONF" 2>&1)"; then
        {
            echo "The gatehouse config of this benchmark ($GATEHOUSE_CONF):"
            cat -n "$GATEHOUSE_CONF"
            echo "gatehouse check -c $GATEHOUSE_CONF:"
            printf '%s\n' "$out"
        } >&2
        die "gatehouse ($GATEHOUSE_REV) refuses the TLS config above (see its errors; until it
    has [[server.tls]] listeners there is no gatehouse TLS to measure). Run with
    SKIP_GATEHOUSE=1 to measure only nginx."
    fi
}

start_gatehouse() {
    local dir="$TMP/gatehouse"
    "$GATEHOUSE" -c "$GATEHOUSE_CONF" >"$dir/gatehouse.log" 2>&1 &
    GATEHOUSE_PID=$!
    STARTED_PIDS+=("$GATEHOUSE_PID")
    wait_for_port "$GATEHOUSE_PID" "$GATEHOUSE_PORT" "$dir/gatehouse.log"
}

# ---------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------
target_port() {
    case "$1" in
        nginx) echo "$NGINX_PORT" ;;
        gatehouse) echo "$GATEHOUSE_PORT" ;;
    esac
}
target_url() { echo "https://127.0.0.1:$(target_port "$1")/$OBJECT"; }

# The processes that serve the requests: nginx's workers, gatehouse itself.
target_pids() {
    case "$1" in
        nginx) echo "$NGINX_WORKER_PIDS" ;;
        gatehouse) echo "$GATEHOUSE_PID" ;;
    esac
}

target_alive() {
    local target="$1" pid
    for pid in $(target_pids "$target"); do
        kill -0 "$pid" 2>/dev/null ||
            die "$target (pid $pid) is no longer running; its logs are in $TMP (KEEP_TMP=1 keeps them)"
    done
}

# ---------------------------------------------------------------------------------------------
# Checks before measuring
# ---------------------------------------------------------------------------------------------

# GET the object with curl option $2 (--http1.1 or --http2); expects 200, the full body and
# HTTP version $3. Prints the response head on failure.
assert_get() {
    local target="$1" opt="$2" want_version="$3" url out status version size
    url="$(target_url "$target")"
    out="$(curl -sS -k "$opt" --max-time 5 -D "$TMP/head-$target.txt" -o /dev/null \
        -w '%{http_code} %{http_version} %{size_download}' "$url" 2>&1)" ||
        die "$target: curl $opt $url failed: $out"
    read -r status version size <<<"$out"
    if [[ "$status" != 200 || "$version" != "$want_version" || "$size" != "$OBJECT_BYTES" ]]; then
        tr -d '\r' <"$TMP/head-$target.txt" >&2
        die "$target: curl $opt $url: expected 200, HTTP/$want_version, $OBJECT_BYTES bytes; got $status, HTTP/$version, $size bytes"
    fi
}

# Does the target close the connection after answering a request with "Connection: close"?
# The handshake runs depend on it: curl opens a new connection only when the server closed
# the previous one. Two transfers on one curl handle: the second must connect anew.
assert_closes() {
    local target="$1" url out connects head
    url="$(target_url "$target")"
    out="$(curl -sS -k --http1.1 --max-time 5 -H 'Connection: close' -D "$TMP/close-$target.txt" \
        -o /dev/null -o /dev/null -w '%{num_connects}\n' "$url" "$url" 2>&1)" ||
        die "$target: curl (two requests with Connection: close) failed: $out"
    connects="$(paste -sd ' ' - <<<"$out")"
    head="$(tr -d '\r' <"$TMP/close-$target.txt" | grep -i '^connection:' | head -1 || true)"
    if [[ "$connects" != "1 1" ]]; then
        tr -d '\r' <"$TMP/close-$target.txt" >&2
        die "$target keeps the connection open after a request with Connection: close (new connections per request: $connects; response header '${head:-none}'); the handshake runs need one connection per request"
    fi
    CLOSES[$target]="yes${head:+, with $head}"
}

# The TLS session an OpenSSL client (like wrk's and curl's) negotiates, and whether the server
# lets the next connection resume it. s_client reads until the server closes, so that it also
# gets a TLS 1.3 session ticket sent after the handshake.
tls_facts() {
    local target="$1" port sess out1 out2 proto cipher group resumed
    port="$(target_port "$target")"
    sess="$TMP/session-$target.pem"
    local request="GET /$OBJECT HTTP/1.1\r\nHost: $SERVER_NAME\r\nConnection: close\r\n\r\n"
    # shellcheck disable=SC2059 # the request is the format: \r\n are to be expanded
    out1="$(printf "$request" | timeout 10 openssl s_client -connect "127.0.0.1:$port" \
        -servername "$SERVER_NAME" -alpn http/1.1 -ign_eof -sess_out "$sess" 2>&1 || true)"
    proto="$(awk '/^New, / { sub(/,$/, "", $2); print $2; exit }' <<<"$out1")"
    cipher="$(awk '/^New, .*Cipher is/ { print $NF; exit }' <<<"$out1")"
    group="$(awk -F': ' '/^Server Temp Key:/ { print $2; exit }' <<<"$out1")"
    [[ -n "$proto" && -f "$sess" ]] ||
        { printf '%s\n' "$out1" >&2; die "$target: openssl s_client could not complete a TLS handshake"; }
    # shellcheck disable=SC2059
    out2="$(printf "$request" | timeout 10 openssl s_client -connect "127.0.0.1:$port" \
        -servername "$SERVER_NAME" -alpn http/1.1 -ign_eof -sess_in "$sess" 2>&1 || true)"
    if grep -q '^Reused, ' <<<"$out2"; then resumed=yes; else resumed=no; fi
    TLS_FACTS[$target]="$proto $cipher, key exchange ${group:-unknown}"
    RESUMES[$target]="$resumed"
}

# ---------------------------------------------------------------------------------------------
# Measurements. Each appends one line to $RESULTS:
#   label value latency_ms failures socket_errors count cpu_us
# label: h1-TARGET, h2-TARGET or hs-TARGET; value: req/s or handshakes/s; latency: p99 (h1, hs)
# or mean request time (h2, h2load reports no percentiles); count: requests (h1, h2) or
# handshakes (hs); cpu_us: the target's CPU time per request or handshake.
# ---------------------------------------------------------------------------------------------
wrk_cmd() { echo "wrk -t1 -c$CONNECTIONS -d${1}s --latency $2"; }
h2load_cmd() { echo "h2load -t1 -c$H2_CLIENTS -m$H2_STREAMS -D $1 $2"; }
# The URL's #[1-N] fragment only numbers curl's transfers: curl does not send fragments, so each
# request is GET /small.
HS_COUNT=100000000
curl_hs_cmd() {
    echo "curl -k --no-progress-meter --http1.1 --no-sessionid -H 'Connection: close'" \
        "-Z --parallel-max $CONNECTIONS --max-time 10 -o /dev/null -w '%{http_code} %{num_connects} %{time_total}\\n' '$1#[1-$HS_COUNT]'" \
        "# stopped after $2 s"
}

# wrk: HTTPS keep-alive, HTTP/1.1 (wrk offers no ALPN).
run_h1() {
    local target="$1" label="h1-$1" url out rps p99 requests non2xx errors cpu0 cpu1 pids
    url="$(target_url "$target")"
    read -r -a pids <<<"$(target_pids "$target")"
    cpu0="$(cpu_ticks "${pids[@]}")"
    out="$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url")" # = wrk_cmd
    cpu1="$(cpu_ticks "${pids[@]}")"
    printf '%s\n' "$out" >>"$TMP/out-$label.log"
    rps="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
    p99="$(awk '$1 == "99%" { print $2 }' <<<"$out")"
    requests="$(awk '/ requests in / { print $1 }' <<<"$out")"
    non2xx="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")"
    # "Socket errors: connect 0, read 0, write 0, timeout 0" -> sum of the four counts
    errors="$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' <<<"$out")"
    [[ -n "$rps" && -n "$p99" && -n "$requests" ]] ||
        { printf '%s\n' "$out" >&2; die "cannot parse wrk output for $label"; }
    record "$label" "$rps" "$(to_ms "$p99")" "${non2xx:-0}" "${errors:-0}" "$requests" \
        "$(cpu_us_per $((cpu1 - cpu0)) "$requests")" "p99"
    ((${non2xx:-0} == 0)) || { printf '%s\n' "$out" >&2; die "$label: $non2xx responses were not 2xx/3xx"; }
}

# h2load: HTTP/2 over TLS; the protocol must be h2 and every request must succeed with a 2xx.
run_h2() {
    local target="$1" label="h2-$1" url out rps mean requests failures proto cpu0 cpu1 pids
    url="$(target_url "$target")"
    read -r -a pids <<<"$(target_pids "$target")"
    cpu0="$(cpu_ticks "${pids[@]}")"
    out="$(h2load -t1 -c"$H2_CLIENTS" -m"$H2_STREAMS" -D "$DURATION" "$url" 2>&1 | grep -v '^progress:')" ||
        { printf '%s\n' "$out" >&2; die "$label: h2load failed"; } # = h2load_cmd
    cpu1="$(cpu_ticks "${pids[@]}")"
    printf '%s\n' "$out" >>"$TMP/out-$label.log"
    rps="$(awk '/^finished in/ { for (i = 1; i < NF; i++) if ($(i + 1) == "req/s,") print $i }' <<<"$out")"
    mean="$(awk '/^time for request:/ { print $6 }' <<<"$out")"
    # "requests: 138312 total, 138472 started, 138312 done, 138312 succeeded, 0 failed, 0 errored, 0 timeout"
    # "status codes: 138312 2xx, 0 3xx, 0 4xx, 0 5xx"
    requests="$(awk '/^requests:/ { print $8 }' <<<"$out")"
    failures="$(awk '/^requests:/ { print $10 + $12 + $14 } /^status codes:/ { print $5 + $7 + $9 }' <<<"$out" |
        awk '{ s += $1 } END { print s + 0 }')"
    proto="$(awk -F': ' '/^Application protocol:/ { print $2; exit }' <<<"$out")"
    [[ -n "$rps" && -n "$mean" && -n "$requests" ]] ||
        { printf '%s\n' "$out" >&2; die "cannot parse h2load output for $label"; }
    [[ "$proto" == h2 ]] ||
        { printf '%s\n' "$out" >&2; die "$label: h2load negotiated '${proto:-nothing}', not h2"; }
    H2_TLS_FACTS="$(awk -F': ' '/^TLS Protocol:|^Cipher:|^Server Temp Key:/ { printf "%s%s", sep, $2; sep = ", " }' <<<"$out")"
    record "$label" "$rps" "$(to_ms "$mean")" "$failures" 0 "$requests" \
        "$(cpu_us_per $((cpu1 - cpu0)) "$requests")" "mean"
    ((failures == 0)) ||
        { printf '%s\n' "$out" >&2; die "$label: $failures requests failed, errored, timed out or were not 2xx"; }
}

# curl: one full handshake per request. Each transfer prints "status connects seconds"; the
# handshakes are the connections made, which assert_closes checked is one per request.
run_hs() {
    local target="$1" label="hs-$1" url out t0 t1 rc lines connects failures p99 rate cpu0 cpu1 pids
    url="$(target_url "$target")"
    out="$TMP/out-$label.$RANDOM.txt"
    read -r -a pids <<<"$(target_pids "$target")"
    cpu0="$(cpu_ticks "${pids[@]}")"
    t0="$(date +%s%N)"
    rc=0
    # = curl_hs_cmd
    timeout -s INT "$DURATION" stdbuf -oL curl -k --no-progress-meter --http1.1 --no-sessionid \
        -H 'Connection: close' -Z --parallel-max "$CONNECTIONS" --max-time 10 \
        -o /dev/null -w '%{http_code} %{num_connects} %{time_total}\n' \
        "$url#[1-$HS_COUNT]" >"$out" 2>"$out.err" || rc=$?
    t1="$(date +%s%N)"
    cpu1="$(cpu_ticks "${pids[@]}")"
    ((rc == 124)) || { cat "$out.err" >&2; die "$label: curl ended before the ${DURATION}s were up (exit $rc)"; }
    lines="$(wc -l <"$out")"
    connects="$(awk '{ s += $2 } END { print s + 0 }' "$out")"
    failures="$(awk '$1 != 200 { n++ } END { print n + 0 }' "$out")"
    p99="$(awk '{ print $3 }' "$out" | sort -g |
        awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < NR * 0.99) i++; if (i < 1) i = 1; printf "%.3f", v[i] * 1000 }')"
    rate="$(awk -v n="$connects" -v ns=$((t1 - t0)) 'BEGIN { printf "%.2f", n * 1e9 / ns }')"
    ((lines > 0)) || { cat "$out.err" >&2; die "$label: no transfer completed"; }
    record "$label" "$rate" "$p99" "$failures" 0 "$connects" \
        "$(cpu_us_per $((cpu1 - cpu0)) "$connects")" "p99"
    ((failures == 0)) ||
        { sort "$out" | awk '{ print $1 }' | uniq -c >&2; head -5 "$out.err" >&2; die "$label: $failures transfers did not answer 200"; }
    # Every transfer but those cut off at the end made its own connection.
    ((connects * 100 >= lines * 99)) ||
        die "$label: $connects connections for $lines requests: $target reused connections despite Connection: close"
    [[ "$KEEP_TMP" == 1 ]] || rm -f "$out" "$out.err"
}

record() {
    local label="$1" value="$2" latency="$3" failures="$4" errors="$5" count="$6" cpu="$7" what="$8"
    local unit=req/s
    [[ "$label" == hs-* ]] && unit=handshakes/s
    log "$(printf '%-13s %10s %-12s   %-4s %8s ms   CPU %7s us   failures %s   socket errors %s' \
        "$label" "$value" "$unit" "$what" "$latency" "$cpu" "$failures" "$errors")"
    echo "$label $value $latency $failures $errors $count $cpu" >>"$RESULTS"
}

measure() {
    target_alive "$2"
    "run_$1" "$2"
}

# Unmeasured load on each target, after the checks: a short run of each tool.
warm_up() {
    local target url
    ((WARMUP > 0)) || return 0
    for target in $TARGETS; do
        url="$(target_url "$target")"
        wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" "$url" >/dev/null
        h2load -t1 -c"$H2_CLIENTS" -m"$H2_STREAMS" -D "$WARMUP" "$url" >/dev/null 2>&1 ||
            die "$target: h2load warm-up failed"
        timeout -s INT "$WARMUP" curl -sk --http1.1 --no-sessionid -H 'Connection: close' -Z \
            --parallel-max "$CONNECTIONS" -o /dev/null "$url#[1-$HS_COUNT]" >/dev/null 2>&1 || true
    done
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
measurement_name() {
    case "$1" in
        h1) echo "HTTPS keep-alive, HTTP/1.1 (wrk -c$CONNECTIONS)" ;;
        h2) echo "HTTP/2 over TLS (h2load -c$H2_CLIENTS -m$H2_STREAMS)" ;;
        hs) echo "full TLS handshakes, a new connection per request (curl, $CONNECTIONS in parallel)" ;;
    esac
}

# Median of column $2 of measurement $1 for target $3, or "not measured".
cell() {
    if [[ " $TARGETS " == *" $3 "* ]]; then median "$1-$3" "$2"; else echo "not measured"; fi
}

table_row() {
    local name="$1" metric="$2" m="$3" col="$4" ng gh
    ng="$(cell "$m" "$col" nginx)"
    gh="$(cell "$m" "$col" gatehouse)"
    echo "| $name | $metric | $ng | $gh | $(ratio "$gh" "$ng") |"
}

print_tables() {
    local m name
    cat <<EOF
TLS and HTTP/2 through each proxy to a static 1 KiB file, median of $ROUNDS × ${DURATION}s
(ratio: gatehouse ÷ nginx; CPU: the proxy's user + system time per request or handshake, nginx's
$PROXY_WORKERS workers together, gatehouse's process):

| measurement | metric | nginx | gatehouse | gatehouse ÷ nginx |
|---|---|---:|---:|---:|
EOF
    for m in $MEASUREMENTS; do
        name="$(measurement_name "$m")"
        case "$m" in
            h1)
                table_row "$name" "req/s" "$m" 2
                table_row "" "p99 (ms)" "$m" 3
                table_row "" "CPU (µs/req)" "$m" 7 ;;
            h2)
                table_row "$name" "req/s" "$m" 2
                table_row "" "mean request time (ms)" "$m" 3
                table_row "" "CPU (µs/req)" "$m" 7 ;;
            hs)
                table_row "$name" "handshakes/s" "$m" 2
                table_row "" "p99 request time (ms)" "$m" 3
                table_row "" "CPU (µs/handshake)" "$m" 7 ;;
        esac
    done
    echo
    local target line
    for target in $TARGETS; do
        line="- $target: socket errors (wrk) $(total "h1-$target" 5) over the rounds;"
        line+=" $(total "hs-$target" 6) handshakes in the handshake runs;"
        line+=" OpenSSL client (wrk, curl) negotiates ${TLS_FACTS[$target]};"
        line+=" h2load: ${H2_FACTS[$target]:-n/a};"
        line+=" offers session resumption: ${RESUMES[$target]} (not used: curl --no-sessionid);"
        line+=" closes after \`Connection: close\`: ${CLOSES[$target]}; peak RSS ${RSS[$target]} MiB"
        [[ "$target" == nginx ]] && line+=" (the $PROXY_WORKERS workers together)"
        echo "$line."
    done
    [[ " $TARGETS " == *" gatehouse "* ]] || echo "- gatehouse: not measured (SKIP_GATEHOUSE=1)."
}

print_environment() {
    local cpu
    cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    cat <<EOF
- kernel: \`$(uname -r)\` ($(uname -m))
- CPU: $cpu, nproc $(nproc); CPU busy in the second before the run: ${CPU_BUSY_BEFORE}%
- $("$NGINX" -v 2>&1), $("$NGINX" -V 2>&1 | grep -m1 '^built with' || echo "OpenSSL unknown"): origin and TLS proxy
- $(h2load --version 2>&1 | head -1); wrk: $(wrk --version 2>&1 | head -1 | awk '{ print $1, $2 }'); $(curl --version | head -1 | awk '{ print $1, $2, "with", $5 }'); openssl: $(openssl version | awk '{ print $1, $2 }')
- gatehouse: ${GATEHOUSE_REV:-not measured (SKIP_GATEHOUSE=1)}; rustls $(cargo_lock_version "$ROOT/Cargo.lock" rustls) with ring $(cargo_lock_version "$ROOT/Cargo.lock" ring) (Cargo.lock)
- certificate: \`${CERT_CMD[*]}\` ($CERT_FACTS)
- the load generators, the origin and the proxy share these $(nproc) cores; nothing is pinned.
  nginx runs $PROXY_WORKERS workers and gatehouse \`workers = $PROXY_WORKERS\`.
EOF
}

# shellcheck disable=SC2016 # '$TMP/...' is printed literally, as a placeholder
print_method() {
    cat <<EOF
Commands (ports are chosen at random per run). Before measuring, each proxy must answer
\`GET /small\` with 200 and the 1,024 bytes over HTTP/1.1 and over HTTP/2 (\`curl -k --http1.1\`,
\`curl -k --http2\`), and close the connection after a request with \`Connection: close\` (two
requests on one curl handle, the second on a new connection); \`openssl s_client\` records the
TLS session negotiated and whether the server resumes it on a second connection. Then ${WARMUP}s of
unmeasured load per proxy and tool. $ROUNDS round(s), each running the three measurements in
turn, each through ${TARGETS// / → }:

\`\`\`
$(wrk_cmd "$DURATION" "https://127.0.0.1:PROXY/small")
$(h2load_cmd "$DURATION" "https://127.0.0.1:PROXY/small")
$(curl_hs_cmd "https://127.0.0.1:PROXY/small" "$DURATION")
\`\`\`

wrk offers no ALPN, so it speaks HTTP/1.1; h2load must report \`Application protocol: h2\` and
no failed, errored or non-2xx request. Handshakes: curl opens a connection per request because
the proxy closes each after its response; \`--no-sessionid\` makes every handshake a full one
(no session resumption; wrk and h2load would resume sessions a server offers). The handshake
rate is the connections curl made (the sum of \`num_connects\`) divided by the run's wall time,
the p99 is of curl's \`time_total\` (connect, handshake, request and response).

Origin (nginx, the static file \`small\` of 1 KiB):

\`\`\`nginx
$(origin_conf '$TMP/origin' ORIGIN)
\`\`\`

nginx terminating TLS:

\`\`\`nginx
$(nginx_tls_conf '$TMP/nginx' PROXY ORIGIN '$TMP/tls')
\`\`\`

gatehouse (\`gatehouse -c gatehouse.toml\`$([[ " $TARGETS " == *" gatehouse "* ]] || echo "; not run: SKIP_GATEHOUSE=1")):

\`\`\`toml
$(gatehouse_conf PLAIN PROXY ORIGIN '$TMP/tls' '$TMP/gatehouse/state')
\`\`\`
EOF
}

write_docs() {
    local doc="$ROOT/docs/benchmarks.md"
    [[ -f "$doc" ]] || printf '# Benchmarks\n' >"$doc"
    {
        printf '\n## TLS and HTTP/2 %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
        cat <<EOF
\`scripts/bench-tls.sh\`: nginx and gatehouse terminating TLS with the same ECDSA P-256
certificate and key, in front of the same origin: HTTPS keep-alive throughput (HTTP/1.1),
HTTP/2 throughput, and full TLS handshakes per second.

EOF
        print_environment
        echo
        cat "$TMP/tables.md"
        echo
        print_method
    } >>"$doc"
    log "appended results to $doc"
}

# ---------------------------------------------------------------------------------------------
main() {
    declare -gA TLS_FACTS=() RESUMES=() CLOSES=() RSS=() H2_FACTS=()
    ensure_tools
    free_port ORIGIN_PORT
    free_port NGINX_PORT
    if [[ "$SKIP_GATEHOUSE" == 1 ]]; then
        log "SKIP_GATEHOUSE=1: measuring nginx only"
    else
        free_port GATEHOUSE_PORT
        free_port GATEHOUSE_PLAIN_PORT
        build_gatehouse
    fi
    make_certificate
    [[ "$SKIP_GATEHOUSE" == 1 ]] || check_gatehouse_conf
    check_idle
    RESULTS="$TMP/results.txt"
    : >"$RESULTS"

    start_origin
    start_nginx_tls
    [[ "$SKIP_GATEHOUSE" == 1 ]] || start_gatehouse
    log "origin :$ORIGIN_PORT (pid $ORIGIN_PID), nginx :$NGINX_PORT (pid $NGINX_TLS_PID, workers $NGINX_WORKER_PIDS)$(
        [[ "$SKIP_GATEHOUSE" == 1 ]] || echo ", gatehouse :$GATEHOUSE_PORT (pid $GATEHOUSE_PID)"); temp dir $TMP"

    local target m r
    for target in $TARGETS; do
        assert_get "$target" --http1.1 1.1
        assert_get "$target" --http2 2
        assert_closes "$target"
        tls_facts "$target"
        log "$(printf '%-9s 200 over HTTP/1.1 and h2; %s; resumes a session: %s; Connection: close -> %s' \
            "$target" "${TLS_FACTS[$target]}" "${RESUMES[$target]}" "${CLOSES[$target]}")"
    done
    log "warm-up: ${WARMUP}s per target and tool"
    warm_up

    # Interleave the targets so drift (thermal, noisy neighbours) hits all of them alike.
    for r in $(seq "$ROUNDS"); do
        log "round $r/$ROUNDS"
        for m in $MEASUREMENTS; do
            for target in $TARGETS; do
                measure "$m" "$target"
                if [[ "$m" == h2 ]]; then H2_FACTS[$target]="$H2_TLS_FACTS"; fi
            done
        done
    done

    local pids
    for target in $TARGETS; do
        read -r -a pids <<<"$(target_pids "$target")"
        RSS[$target]="$(peak_rss_mib "${pids[@]}")"
    done

    print_tables >"$TMP/tables.md"
    echo
    cat "$TMP/tables.md"
    [[ "$WRITE" == 1 ]] && write_docs
    return 0
}

main
