#!/usr/bin/env bash
# Cache-hit benchmark: nginx proxy_cache, Varnish and gatehouse's cache in front of the same
# origin, on one machine, over loopback.
#
#   scripts/bench-cache.sh            run and print the results
#   scripts/bench-cache.sh --write    run, print, and append a dated "Cache hits" section to docs/benchmarks.md
#
# Environment:
#   DURATION=8        seconds per wrk run
#   ROUNDS=3          interleaved rounds (the tables show medians)
#   CONNECTIONS=32    wrk connections (wrk always uses 1 thread: -t1)
#   WARMUP=1          seconds of unmeasured wrk load per target and object before the rounds
#   SKIP_GATEHOUSE=0  1: measure only nginx and Varnish (no build; for while gatehouse lacks a cache)
#   VARNISH_VSL=off   off: mask every Varnish shared-memory log record (-p vsl_mask=-<every tag>)
#                     and shrink the log to its minimum (-p vsl_space=1M), like `access_log off`
#                     for the others; default: Varnish's default mask and size (80M)
#   KEEP_TMP=0        1: keep the temp dir (configs, logs, wrk output, the origin's access log)
#
# The origin is nginx serving two generated static files, /small (1 KiB) and /large (64 KiB),
# with `Cache-Control: public, max-age=3600` (plus the ETag and Last-Modified nginx gives static
# files), and the only process here with an access log. Each cache is warmed and a hit is
# asserted from its own response header before anything is measured (X-Cache-Status: HIT for
# nginx, two ids in X-Varnish for Varnish, `hit` in Cache-Status for gatehouse); each measured
# wrk run counts the origin's access-log lines during the run, and the script stops if they
# exceed 0.1% of the run's requests: a benchmark of misses measures something else.
# Everything runs on 127.0.0.1; nothing is pinned, so wrk and the caches share the cores.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-8}"
ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${CONNECTIONS:-32}"
WARMUP="${WARMUP:-1}"
SKIP_GATEHOUSE="${SKIP_GATEHOUSE:-0}"
VARNISH_VSL="${VARNISH_VSL:-off}"
KEEP_TMP="${KEEP_TMP:-0}"
WRITE=0

SIZES="small large"              # objects, each served as /NAME by the origin
declare -A SIZE_BYTES=([small]=1024 [large]=65536)
ORIGIN_TOLERANCE_PER_MILLE=1    # origin requests allowed during a measured run, per 1000 requests

usage() { sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

for arg in "$@"; do
    case "$arg" in
        --write) WRITE=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench-cache.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

log() { printf '[bench-cache] %s\n' "$*" >&2; }
die() { printf 'bench-cache.sh: %s\n' "$*" >&2; exit 1; }

case "$SKIP_GATEHOUSE" in 0 | 1) ;; *) die "SKIP_GATEHOUSE must be 0 or 1, not '$SKIP_GATEHOUSE'" ;; esac
case "$VARNISH_VSL" in off | default) ;; *) die "VARNISH_VSL must be off or default, not '$VARNISH_VSL'" ;; esac
TARGETS="nginx varnish"
[[ "$SKIP_GATEHOUSE" == 1 ]] || TARGETS+=" gatehouse"

# ---------------------------------------------------------------------------------------------
# Processes and cleanup: remember every PID we start; on exit stop exactly those (TERM, then
# KILL). The nginx masters stop their workers and cache processes, the Varnish manager its child.
# ---------------------------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench-cache.XXXXXX")"
STARTED_PIDS=()

# shellcheck source=SCRIPTDIR/lib/cleanup.sh disable=SC1091 # (followed with shellcheck -x)
source "$(dirname "${BASH_SOURCE[0]}")/lib/cleanup.sh"
# Ports, nginx instances, CPU time, medians, peak RSS, the idle check, the revision.
# shellcheck source=SCRIPTDIR/lib/bench-common.sh disable=SC1091 # (followed with shellcheck -x)
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
ensure_tools() {
    # Run by hand; on a fresh Debian/Ubuntu box (or CI image) install what is missing.
    # Note: on a machine with systemd, installing the varnish package also enables and starts
    # Debian's varnish.service (port 6081); this script neither uses nor touches it.
    local missing=()
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    command -v varnishd >/dev/null 2>&1 || [[ -x /usr/sbin/varnishd ]] || missing+=(varnish)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    if ((${#missing[@]})); then
        log "missing: ${missing[*]}; installing with: apt-get install -y ${missing[*]}"
        local sudo=()
        [[ "$(id -u)" == 0 ]] || sudo=(sudo)
        "${sudo[@]}" apt-get install -y "${missing[@]}" ||
            die "install failed; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    fi
    NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
    VARNISHD="$(command -v varnishd || echo /usr/sbin/varnishd)"
    if [[ "$SKIP_GATEHOUSE" != 1 ]]; then
        command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust: https://rustup.rs)"
    fi
    return 0
}

build_gatehouse() {
    # The revision being built (the tree may move on during a run).
    GATEHOUSE_REV="$(gatehouse_revision "$ROOT")"
    log "building $GATEHOUSE_REV: cargo build --release -p gatehouse"
    (cd "$ROOT" && cargo build --release -p gatehouse)
    GATEHOUSE="$ROOT/target/release/gatehouse"
    [[ -x "$GATEHOUSE" ]] || die "no binary at $GATEHOUSE"
}

# ---------------------------------------------------------------------------------------------
# Waiting for a process (free_port and wait_for_port are in lib/bench-common.sh)
# ---------------------------------------------------------------------------------------------
# Wait until GET $2 answers 200; fail early (with its log) if process $1 died. Varnish's
# manager accepts on the port before its child (which compiles the VCL first) serves anything.
wait_for_http() {
    local pid="$1" url="$2" logfile="$3" status
    for _ in $(seq 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$logfile" >&2 || true
            die "process $pid exited before answering $url (log: $logfile)"
        fi
        status="$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$url" || true)"
        [[ "$status" == 200 ]] && return 0
        sleep 0.1
    done
    cat "$logfile" >&2 || true
    die "GET $url did not answer 200 within 10 s (last status '${status:-none}'; log: $logfile)"
}

# ---------------------------------------------------------------------------------------------
# The origin: static files with freshness for an hour; the only access log in the benchmark.
# ---------------------------------------------------------------------------------------------
make_objects() {
    local www="$TMP/origin/www" size
    mkdir -p "$www"
    for size in $SIZES; do
        # Printable, fixed content of the exact size (generated; no file in the repository).
        yes "gatehouse cache benchmark object $size ................................" |
            head -c "${SIZE_BYTES[$size]}" >"$www/$size" || true
        [[ "$(stat -c %s "$www/$size")" == "${SIZE_BYTES[$size]}" ]] || die "could not write $www/$size"
    done
}

origin_conf() {
    local dir="$1" port="$2"
    nginx_main_conf "$dir"
    cat <<EOF
http {
$(nginx_temp_paths "$dir")
    # One line per request: counted before and after each measured run (no buffer= parameter,
    # so each line is written when its request ends).
    log_format bench '\$request \$status \$body_bytes_sent';
    access_log $dir/access.log bench;
    # wrk and the caches keep connections open; without this nginx closes each one after
    # 1000 requests.
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port;
        root $dir/www;
        default_type application/octet-stream;
        location / {
            # Static files also get ETag and Last-Modified.
            add_header Cache-Control "public, max-age=3600";
        }
    }
}
EOF
}

start_origin() {
    local dir="$TMP/origin"
    mkdir -p "$dir"
    make_objects
    origin_conf "$dir" "$ORIGIN_PORT" >"$dir/nginx.conf"
    start_nginx "$dir" "$dir/nginx.conf"
    ORIGIN_PID=$NGINX_PID
    wait_for_port "$ORIGIN_PID" "$ORIGIN_PORT" "$dir/error.log"
}

# Requests the origin has served so far (lines in its access log).
origin_count() {
    if [[ -f "$TMP/origin/access.log" ]]; then
        wc -l <"$TMP/origin/access.log" | tr -d ' '
    else
        echo 0
    fi
}

# ---------------------------------------------------------------------------------------------
# nginx proxy_cache
# ---------------------------------------------------------------------------------------------
nginx_cache_conf() {
    local dir="$1" port="$2" origin="$3"
    nginx_main_conf "$dir"
    cat <<EOF
http {
$(nginx_temp_paths "$dir")
    access_log off;
    keepalive_requests 1000000;
    # A hit is a file: send it with sendfile(2), as Debian's stock nginx.conf does. Not its
    # tcp_nopush on: over loopback that stalls each 64 KiB response for ~40 ms (delayed ACK;
    # 770 against 46,000 req/s here).
    sendfile on;
    # 256 MiB like Varnish's -s malloc,256m and gatehouse's [cache] memory (here on disk,
    # that is in the page cache; the keys in a 10 MiB shared zone).
    proxy_cache_path $dir/cache levels=1:2 keys_zone=bench:10m max_size=256m inactive=1h use_temp_path=off;
    upstream origin {
        server 127.0.0.1:$origin;
        keepalive 16;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://origin;
            # Keep-alive to the origin needs HTTP/1.1 and no "Connection: close".
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_valid 200 1h;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }
}
EOF
}

start_nginx_cache() {
    local dir="$TMP/nginx"
    mkdir -p "$dir"
    nginx_cache_conf "$dir" "$NGINX_PORT" "$ORIGIN_PORT" >"$dir/nginx.conf"
    start_nginx "$dir" "$dir/nginx.conf"
    NGINX_CACHE_PID=$NGINX_PID
    wait_for_port "$NGINX_CACHE_PID" "$NGINX_PORT" "$dir/error.log"
    NGINX_WORKER_PID="$(nginx_workers "$NGINX_CACHE_PID")" # the one worker (worker_processes 1)
}

# ---------------------------------------------------------------------------------------------
# Varnish: varnishd in the foreground (-F), a child of this shell; its working directory (-n)
# in the temp dir, so it shares nothing with a system varnish.service. -j none: no privilege
# separation, so it runs as the user running this script (as root, the default `unix` jail
# would switch to the varnish/vcache users, which cannot enter the 0700 temp dir). -T none: no
# management CLI port. The manager process forks the child (cache-main) that serves requests.
# ---------------------------------------------------------------------------------------------
varnish_args() {
    local workdir="$1" port="$2" origin="$3"
    # shellcheck disable=SC2054 # the comma in malloc,256m is part of the argument
    local args=(-F -j none -T none -n "$workdir" -a "127.0.0.1:$port" -b "127.0.0.1:$origin"
        -s malloc,256m)
    if [[ "$VARNISH_VSL" == off ]]; then
        # Every record type the shared-memory log knows, masked: Varnish writes no log records
        # (nothing reads them here), as the others run with access_log off.
        local tags
        # (`varnishd -x vsl` documents each tag as a heading: the name, then a line of dashes.)
        tags="$("$VARNISHD" -x vsl | awk '/^-+$/ && prev ~ /^[A-Za-z0-9_]+$/ && length($0) == length(prev) {
            printf "%s-%s", sep, prev; sep = "," } { prev = $0 }')"
        [[ -n "$tags" ]] || die "varnishd -x vsl listed no log record types"
        # With nothing logged, the log's ring buffer can be the minimum size: at the default
        # 80M its file-backed mapping alone (touched at start) makes up ~85 MiB of the child's RSS.
        args+=(-p "vsl_mask=$tags" -p vsl_space=1M)
    fi
    printf '%s\n' "${args[@]}"
}

start_varnish() {
    local dir="$TMP/varnish" args
    mkdir -p "$dir"
    mapfile -t args < <(varnish_args "$dir/work" "$VARNISH_PORT" "$ORIGIN_PORT")
    VARNISH_CMD=("$VARNISHD" "${args[@]}")
    "${VARNISH_CMD[@]}" >"$dir/varnishd.log" 2>&1 &
    VARNISH_PID=$!
    STARTED_PIDS+=("$VARNISH_PID")
    wait_for_port "$VARNISH_PID" "$VARNISH_PORT" "$dir/varnishd.log"
    # Any object will do to see that the child serves (this fetch is the first miss of /small).
    wait_for_http "$VARNISH_PID" "http://127.0.0.1:$VARNISH_PORT/small" "$dir/varnishd.log"
    VARNISH_CHILD_PID="$(pgrep -P "$VARNISH_PID" | head -1 || true)"
    [[ -n "$VARNISH_CHILD_PID" ]] || die "no child process under varnishd $VARNISH_PID"
}

# ---------------------------------------------------------------------------------------------
# gatehouse
# ---------------------------------------------------------------------------------------------
gatehouse_conf() {
    local port="$1" origin="$2"
    cat <<EOF
[server]
listen = ["127.0.0.1:$port"]
workers = 1
access_log = false
log_level = "warn"

[cache]
memory = "256MiB"

[[route]]
path = "/"
upstream = "origin"

[route.cache]

[upstream.origin]
servers = ["127.0.0.1:$origin"]
EOF
}

# Write the config and have gatehouse check it, before anything is started: until gatehouse has
# the [cache] and [route.cache] keys it refuses this config, and the run stops here.
check_gatehouse_conf() {
    local dir="$TMP/gatehouse" out
    mkdir -p "$dir"
    GATEHOUSE_CONF="$dir/gatehouse.toml"
    gatehouse_conf "$GATEHOUSE_PORT" "$ORIGIN_PORT" >"$GATEHOUSE_CONF"
    if ! out="$("$GATEHOUSE" check -c "$GATEHOUSE_CONF" 2>&1)"; then
        {
            echo "The gatehouse config of this benchmark ($GATEHOUSE_CONF):"
            cat -n "$GATEHOUSE_CONF"
            echo "gatehouse check -c $GATEHOUSE_CONF:"
            printf '%s\n' "$out"
        } >&2
        die "gatehouse ($GATEHOUSE_REV) refuses the cache config above (see its errors; until it
    has the [cache] and [route.cache] keys there is no gatehouse cache to measure). Run with
    SKIP_GATEHOUSE=1 to measure only nginx and Varnish."
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
# Targets: URL, the process whose CPU time and peak RSS are reported, the hit check.
# ---------------------------------------------------------------------------------------------
target_port() {
    case "$1" in
        nginx) echo "$NGINX_PORT" ;;
        varnish) echo "$VARNISH_PORT" ;;
        gatehouse) echo "$GATEHOUSE_PORT" ;;
    esac
}
target_url() { echo "http://127.0.0.1:$(target_port "$1")/$2"; }

# The process that serves the requests: nginx's worker, Varnish's child, gatehouse itself.
target_pid() {
    case "$1" in
        nginx) echo "$NGINX_WORKER_PID" ;;
        varnish) echo "$VARNISH_CHILD_PID" ;;
        gatehouse) echo "$GATEHOUSE_PID" ;;
    esac
}

# The response header that says "hit", as a case-insensitive ERE over one header line
# (name: value, CR removed).
hit_pattern() {
    case "$1" in
        nginx) echo '^x-cache-status:[[:space:]]*hit[[:space:]]*$' ;;
        # Two transaction ids: this request's and the one that stored the object.
        varnish) echo '^x-varnish:[[:space:]]*[0-9]+[[:space:]]+[0-9]+[[:space:]]*$' ;;
        # RFC 9211: "Cache-Status: gatehouse; hit; ttl=3599" -- `hit` as a parameter.
        gatehouse) echo '^cache-status:.*;[[:space:]]*hit[[:space:]]*(;|,|$)' ;;
    esac
}

# GET $1; prints the response head (CR removed) and a last line "size=<body bytes>".
fetch() {
    curl -sS --max-time 5 -o /dev/null -D - -w 'size=%{size_download}\n' "$1" | tr -d '\r'
}

# Request the object twice through the target; the second answer must be a 200 of the right
# size and a hit by the target's own header. Logs the headers that show it.
assert_hit() {
    local target="$1" size="$2" url head status got_size
    url="$(target_url "$target" "$size")"
    fetch "$url" >/dev/null || die "GET $url failed"
    head="$(fetch "$url")" || die "GET $url failed"
    status="$(awk 'NR == 1 { print $2 }' <<<"$head")"
    got_size="$(sed -n 's/^size=//p' <<<"$head")"
    [[ "$status" == 200 && "$got_size" == "${SIZE_BYTES[$size]}" ]] ||
        { printf '%s\n' "$head" >&2; die "GET $url: expected 200 with ${SIZE_BYTES[$size]} bytes, got '$status' with '$got_size' bytes"; }
    if ! grep -Eiq "$(hit_pattern "$target")" <<<"$head"; then
        printf '%s\n' "$head" >&2
        die "$target did not serve $url from its cache on the second request (no hit in the headers above); a benchmark of misses is worthless"
    fi
    log "$(printf '%-9s /%-5s hit: %s' "$target" "$size" \
        "$(grep -Ei '^(x-cache-status|x-varnish|age|cache-status):' <<<"$head" | paste -sd ' ' -)")"
}

# ---------------------------------------------------------------------------------------------
# wrk, CPU time, parsing
# ---------------------------------------------------------------------------------------------
wrk_cmd() { echo "wrk -t1 -c$CONNECTIONS -d${1}s --latency $2"; }

# Run wrk once against target $1, object $2; append to $RESULTS:
#   label rps p99_ms non2xx socket_errors requests origin_requests cpu_us_per_request
run_wrk() {
    local target="$1" size="$2" label="$1-$2" url pid out
    local rps p99 non2xx errors requests origin_before origin_after origin cpu_before cpu_after cpu_us
    url="$(target_url "$target" "$size")"
    pid="$(target_pid "$target")"
    kill -0 "$pid" 2>/dev/null || die "$target (pid $pid) is no longer running; its logs are in $TMP (KEEP_TMP=1 keeps them)"
    origin_before="$(origin_count)"
    cpu_before="$(cpu_ticks "$pid")"
    out="$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url")" # = wrk_cmd
    cpu_after="$(cpu_ticks "$pid")"
    origin_after="$(origin_count)"
    printf '%s\n' "$out" >>"$TMP/wrk-$label.log"
    rps="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
    p99="$(awk '$1 == "99%" { print $2 }' <<<"$out")"
    requests="$(awk '/ requests in / { print $1 }' <<<"$out")"
    non2xx="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")"
    # "Socket errors: connect 0, read 0, write 0, timeout 0" -> sum of the four counts
    errors="$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' <<<"$out")"
    [[ -n "$rps" && -n "$p99" && -n "$requests" ]] ||
        { printf '%s\n' "$out" >&2; die "cannot parse wrk output for $label"; }
    p99="$(to_ms "$p99")"
    origin=$((origin_after - origin_before))
    cpu_us="$(cpu_us_per $((cpu_after - cpu_before)) "$requests")"
    log "$(printf '%-16s %12s req/s   p99 %8s ms   CPU %6s us/req   origin requests %s   non-2xx %s   socket errors %s' \
        "$label" "$rps" "$p99" "$cpu_us" "$origin" "${non2xx:-0}" "${errors:-0}")"
    echo "$label $rps $p99 ${non2xx:-0} ${errors:-0} $requests $origin $cpu_us" >>"$RESULTS"
    ((${non2xx:-0} == 0)) ||
        { printf '%s\n' "$out" >&2; die "$label: ${non2xx} responses were not 2xx/3xx"; }
    if ((origin * 1000 > requests * ORIGIN_TOLERANCE_PER_MILLE)); then
        die "$label: the origin served $origin requests during a run of $requests: $target is not serving hits"
    elif ((origin > 0)); then
        log "WARNING: $label: the origin served $origin requests during the run"
    fi
}

# Unmeasured load on each target and object, after the hit check.
warm_up() {
    local target size
    ((WARMUP > 0)) || return 0
    for target in $TARGETS; do
        for size in $SIZES; do
            wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" "$(target_url "$target" "$size")" >/dev/null
        done
    done
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
target_name() {
    case "$1" in
        nginx) echo "nginx proxy_cache" ;;
        varnish) echo "Varnish" ;;
        gatehouse) echo "gatehouse" ;;
    esac
}

print_tables() {
    local size kib target rps p99 ng_rps ng_p99 va_rps va_p99
    for size in $SIZES; do
        ng_rps="$(median "nginx-$size" 2)"; ng_p99="$(median "nginx-$size" 3)"
        va_rps="$(median "varnish-$size" 2)"; va_p99="$(median "varnish-$size" 3)"
        kib=$((SIZE_BYTES[$size] / 1024))
        cat <<EOF
Cache hits, \`/$size\` ($kib KiB body), median of $ROUNDS × ${DURATION}s, wrk -t1 -c$CONNECTIONS
(ratios: req/s and p99 of the row's target divided by nginx's and by Varnish's; CPU = the serving
process's user + system time per request; origin requests and socket errors summed over the rounds):

| target | req/s | p99 (ms) | req/s ÷ nginx | req/s ÷ Varnish | p99 ÷ nginx | p99 ÷ Varnish | CPU (µs/req) | origin requests | socket errors |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
        for target in nginx varnish gatehouse; do
            if [[ " $TARGETS " != *" $target "* ]]; then
                echo "| $(target_name "$target") | not measured (SKIP_GATEHOUSE=1) | | | | | | | | |"
                continue
            fi
            rps="$(median "$target-$size" 2)"; p99="$(median "$target-$size" 3)"
            echo "| $(target_name "$target") | $rps | $p99 | $(ratio "$rps" "$ng_rps") | $(ratio "$rps" "$va_rps") |" \
                "$(ratio "$p99" "$ng_p99") | $(ratio "$p99" "$va_p99") | $(median "$target-$size" 8) |" \
                "$(total "$target-$size" 7) | $(total "$target-$size" 5) |"
        done
        echo
    done
    local rss="Peak RSS (VmHWM) after all runs: nginx proxy_cache worker $NGINX_RSS MiB (its objects"
    rss+=" are files in the page cache, not counted); Varnish child (cache-main, the process"
    rss+=" holding the malloc storage) $VARNISH_RSS MiB, not counting its manager process"
    rss+=" ($VARNISH_MGR_RSS MiB)"
    if [[ " $TARGETS " == *" gatehouse "* ]]; then
        rss+="; gatehouse $GATEHOUSE_RSS MiB."
    else
        rss+="."
    fi
    echo "$rss"
}

print_environment() {
    local cpu
    cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    cat <<EOF
- kernel: \`$(uname -r)\` ($(uname -m))
- CPU: $cpu, nproc $(nproc); CPU busy in the second before the run: ${CPU_BUSY_BEFORE}%
- $("$NGINX" -v 2>&1) (origin and proxy_cache)
- $("$VARNISHD" -V 2>&1 | head -1)
- wrk: $(wrk --version 2>&1 | head -1 | awk '{ print $1, $2 }')
- gatehouse: ${GATEHOUSE_REV:-not measured (SKIP_GATEHOUSE=1)}
- wrk, the origin and the caches share these $(nproc) cores; nothing is pinned. nginx runs
  1 worker and gatehouse \`workers = 1\`; Varnish has no such setting (a thread per
  connection, 2 thread pools by default), so it can use every core: compare CPU per request too.
EOF
}

# shellcheck disable=SC2016 # '$TMP/...' is printed literally, as a placeholder
print_method() {
    local varnish_cmd
    varnish_cmd="$(sed -e "s#$TMP#\$TMP#g" -e "s#$VARNISH_PORT#VARNISH#g" -e "s#$ORIGIN_PORT#ORIGIN#g" \
        -e 's/vsl_mask=[^ ]*/vsl_mask=-Debug,-Error,...(every tag of varnishd -x vsl)/' <<<"${VARNISH_CMD[*]}")"
    cat <<EOF
Commands (ports are chosen at random per run). Before measuring, each target gets each object
twice and the second answer must be a hit by the target's own header (nginx
\`X-Cache-Status: HIT\`, Varnish two ids in \`X-Varnish\`, gatehouse \`hit\` in
\`Cache-Status\`), then ${WARMUP}s of unmeasured load per target and object. $ROUNDS round(s), each
running ${SIZES// / then } through ${TARGETS// / → }:

\`\`\`
$(wrk_cmd "$DURATION" "http://127.0.0.1:CACHE/small")
$(wrk_cmd "$DURATION" "http://127.0.0.1:CACHE/large")
\`\`\`

Origin (nginx, static files \`small\` and \`large\` of 1 KiB and 64 KiB; the only access log,
whose lines during each run give the origin requests column):

\`\`\`nginx
$(origin_conf '$TMP/origin' ORIGIN)
\`\`\`

nginx proxy_cache:

\`\`\`nginx
$(nginx_cache_conf '$TMP/nginx' NGINX ORIGIN)
\`\`\`

Varnish (builtin VCL via \`-b\`; the object's TTL comes from its \`max-age\`$(
        [[ "$VARNISH_VSL" == off ]] && echo "; the shared-memory log
has every record type masked with the \`vsl_mask\` parameter and is 1M instead of 80M, since
nothing reads it here")):

\`\`\`
$varnish_cmd
\`\`\`

gatehouse (\`gatehouse -c gatehouse.toml\`$([[ " $TARGETS " == *" gatehouse "* ]] || echo "; not run: SKIP_GATEHOUSE=1")):

\`\`\`toml
$(gatehouse_conf GATEHOUSE ORIGIN)
\`\`\`
EOF
}

write_docs() {
    local doc="$ROOT/docs/benchmarks.md"
    [[ -f "$doc" ]] || printf '# Benchmarks\n' >"$doc"
    {
        printf '\n## Cache hits %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
        cat <<EOF
\`scripts/bench-cache.sh\`: nginx \`proxy_cache\`, Varnish and gatehouse's cache in front of the
same origin, every measured request a cache hit.

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
    ensure_tools
    free_port ORIGIN_PORT
    free_port NGINX_PORT
    free_port VARNISH_PORT
    if [[ "$SKIP_GATEHOUSE" == 1 ]]; then
        log "SKIP_GATEHOUSE=1: measuring nginx and Varnish only"
    else
        free_port GATEHOUSE_PORT
        build_gatehouse
        check_gatehouse_conf
    fi
    check_idle
    RESULTS="$TMP/results.txt"
    : >"$RESULTS"

    start_origin
    start_nginx_cache
    start_varnish
    [[ "$SKIP_GATEHOUSE" == 1 ]] || start_gatehouse
    log "origin :$ORIGIN_PORT (pid $ORIGIN_PID), nginx :$NGINX_PORT (pid $NGINX_CACHE_PID, worker $NGINX_WORKER_PID)," \
        "varnish :$VARNISH_PORT (pid $VARNISH_PID, child $VARNISH_CHILD_PID)$(
            [[ "$SKIP_GATEHOUSE" == 1 ]] || echo ", gatehouse :$GATEHOUSE_PORT (pid $GATEHOUSE_PID)"); temp dir $TMP"

    local target size r
    for target in $TARGETS; do
        for size in $SIZES; do
            assert_hit "$target" "$size"
        done
    done
    log "origin requests so far (the misses that filled the caches): $(origin_count)"
    log "warm-up: ${WARMUP}s per target and object"
    warm_up

    # Interleave the targets so drift (thermal, noisy neighbours) hits all of them alike.
    for r in $(seq "$ROUNDS"); do
        log "round $r/$ROUNDS"
        for size in $SIZES; do
            for target in $TARGETS; do
                run_wrk "$target" "$size"
            done
        done
    done

    NGINX_RSS="$(peak_rss_mib "$NGINX_WORKER_PID")"
    VARNISH_RSS="$(peak_rss_mib "$VARNISH_CHILD_PID")"
    VARNISH_MGR_RSS="$(peak_rss_mib "$VARNISH_PID")"
    [[ "$SKIP_GATEHOUSE" == 1 ]] || GATEHOUSE_RSS="$(peak_rss_mib "$GATEHOUSE_PID")"

    print_tables >"$TMP/tables.md"
    echo
    cat "$TMP/tables.md"
    [[ "$WRITE" == 1 ]] && write_docs
    return 0
}

main
