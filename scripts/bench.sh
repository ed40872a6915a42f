#!/usr/bin/env bash
# Benchmark gatehouse against nginx as a reverse proxy, on one machine, over loopback.
#
#   scripts/bench.sh            run and print the results
#   scripts/bench.sh --write    run, print, and append a dated section to docs/benchmarks.md
#
# Environment:
#   DURATION=8      seconds per wrk run
#   ROUNDS=3        interleaved rounds per scenario (the tables show medians)
#   CONNECTIONS=32  wrk connections (wrk always uses 1 thread: -t1)
#   WARMUP=1        seconds of unmeasured wrk load per target before the rounds
#   PERF=0          1: after the runs, `perf record -g` gatehouse under load and print the top symbols
#   KEEP_TMP=0      1: keep the temp dir (configs, logs) instead of deleting it
#
# What is measured (see docs/benchmarks.md): a fast nginx upstream answering `200 ok`, reached
#   (a) directly, (b) through nginx as a keep-alive reverse proxy, (c) through gatehouse;
# and the error path: both proxies answering 502 for an upstream that refuses connections.
# Everything runs on 127.0.0.1; nothing is pinned, so wrk, the proxy and the upstream share the
# machine's cores -- compare ratios from the same run, not absolute numbers across machines.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-8}"
ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${CONNECTIONS:-32}"
WARMUP="${WARMUP:-1}"
PERF="${PERF:-0}"
KEEP_TMP="${KEEP_TMP:-0}"
WRITE=0

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

for arg in "$@"; do
    case "$arg" in
        --write) WRITE=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Processes and cleanup: remember every PID we start; on exit stop exactly those (TERM, then KILL).
# ---------------------------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")"
STARTED_PIDS=()

# shellcheck source=SCRIPTDIR/lib/cleanup.sh disable=SC1091 # (followed with shellcheck -x)
source "$(dirname "${BASH_SOURCE[0]}")/lib/cleanup.sh"
# Ports, nginx instances, medians, peak RSS, the idle check, the revision.
# shellcheck source=SCRIPTDIR/lib/bench-common.sh disable=SC1091 # (followed with shellcheck -x)
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
ensure_tools() {
    # The benchmark is run by hand; on a fresh Debian/Ubuntu box (or CI image) install what is missing.
    local missing=()
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    if ((${#missing[@]})); then
        log "installing: ${missing[*]}"
        local sudo=()
        [[ "$(id -u)" == 0 ]] || sudo=(sudo)
        "${sudo[@]}" apt-get install -y "${missing[@]}"
    fi
    NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
    command -v cargo >/dev/null 2>&1 || die "cargo not found"
}

build_gatehouse() {
    log "building: cargo build --release -p gatehouse"
    (cd "$ROOT" && cargo build --release -p gatehouse)
    GATEHOUSE="$ROOT/target/release/gatehouse"
    [[ -x "$GATEHOUSE" ]] || die "no binary at $GATEHOUSE"
}

# ---------------------------------------------------------------------------------------------
# nginx (lib/bench-common.sh): one non-daemon master + 1 worker per instance, its own prefix,
# pid file and error log.
# ---------------------------------------------------------------------------------------------
start_upstream() {
    local dir="$TMP/upstream"
    mkdir -p "$dir"
    {
        nginx_main_conf "$dir"
        cat <<EOF
http {
$(nginx_temp_paths "$dir")
    access_log off;
    # wrk and the proxies keep connections open; without this nginx closes each one after
    # 1000 requests and the run measures reconnects as well.
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$UPSTREAM_PORT;
        location / {
            default_type text/plain;
            return 200 "ok\n";
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    start_nginx "$dir" "$dir/nginx.conf"
    UPSTREAM_PID=$NGINX_PID
    wait_for_port "$UPSTREAM_PID" "$UPSTREAM_PORT" "$dir/error.log"
}

start_nginx_proxy() {
    local dir="$TMP/nginx-proxy"
    mkdir -p "$dir"
    {
        nginx_main_conf "$dir"
        cat <<EOF
http {
$(nginx_temp_paths "$dir")
    access_log off;
    keepalive_requests 1000000;
    upstream bench {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://bench;
            # Keep-alive to the upstream needs HTTP/1.1 and no "Connection: close".
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /refused {
            proxy_pass http://127.0.0.1:$DEAD_PORT;
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    start_nginx "$dir" "$dir/nginx.conf"
    NGINX_PROXY_PID=$NGINX_PID
    wait_for_port "$NGINX_PROXY_PID" "$NGINX_PORT" "$dir/error.log"
}

# ---------------------------------------------------------------------------------------------
# gatehouse
# ---------------------------------------------------------------------------------------------
start_gatehouse() {
    local dir="$TMP/gatehouse"
    mkdir -p "$dir"
    GATEHOUSE_CONF="$dir/gatehouse.toml"
    cat >"$GATEHOUSE_CONF" <<EOF
[server]
listen = ["127.0.0.1:$GATEHOUSE_PORT"]
workers = 1
access_log = false
log_level = "warn"

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
EOF
    "$GATEHOUSE" check -c "$GATEHOUSE_CONF" >&2 || die "gatehouse check rejected $GATEHOUSE_CONF"
    "$GATEHOUSE" -c "$GATEHOUSE_CONF" >"$dir/gatehouse.log" 2>&1 &
    GATEHOUSE_PID=$!
    STARTED_PIDS+=("$GATEHOUSE_PID")
    wait_for_port "$GATEHOUSE_PID" "$GATEHOUSE_PORT" "$dir/gatehouse.log"
}

# Sanity check before measuring: the expected status code through each target.
expect_status() {
    local url="$1" want="$2" got
    got="$(http_status "$url")"
    [[ "$got" == "$want" ]] || die "GET $url: expected $want, got '${got:-nothing}'"
}

# Minimal HTTP/1.1 GET over bash's /dev/tcp (no curl needed); prints the status code.
http_status() {
    local url="$1" hostport path port
    hostport="${url#http://}"; path="/${hostport#*/}"; hostport="${hostport%%/*}"; port="${hostport#*:}"
    exec 4<>"/dev/tcp/127.0.0.1/$port" || return 0
    printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$hostport" >&4
    local line
    IFS= read -r -t 5 line <&4 || true
    exec 4>&-
    line="${line#HTTP/1.? }"
    echo "${line%% *}"
}

# ---------------------------------------------------------------------------------------------
# wrk and parsing
# ---------------------------------------------------------------------------------------------
wrk_cmd() { echo "wrk -t1 -c$CONNECTIONS -d${1}s --latency $2"; }

# Run wrk once against $2 (label $1); append "label rps p99_ms non2xx socket_errors" to $RESULTS.
run_wrk() {
    local label="$1" url="$2" out rps p99 non2xx errors
    # shellcheck disable=SC2091 # runs the command wrk_cmd prints, the one print_method shows
    out="$($(wrk_cmd "$DURATION" "$url"))"
    printf '%s\n' "$out" >>"$TMP/wrk-$label.log"
    rps="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
    p99="$(awk '$1 == "99%" { print $2 }' <<<"$out")"
    non2xx="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")"
    # "Socket errors: connect 0, read 0, write 0, timeout 0" -> sum of the four counts
    errors="$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' <<<"$out")"
    [[ -n "$rps" && -n "$p99" ]] || { printf '%s\n' "$out" >&2; die "cannot parse wrk output for $label"; }
    p99="$(to_ms "$p99")"
    log "$(printf '%-16s %12s req/s   p99 %9s ms   non-2xx %s   socket errors %s' \
        "$label" "$rps" "$p99" "${non2xx:-0}" "${errors:-0}")"
    echo "$label $rps $p99 ${non2xx:-0} ${errors:-0}" >>"$RESULTS"
}

warm_up() {
    local url
    ((WARMUP > 0)) || return 0
    for url in "$@"; do
        wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" "$url" >/dev/null
    done
}

# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------
bench_keepalive() {
    local upstream_url="http://127.0.0.1:$UPSTREAM_PORT/"
    local nginx_url="http://127.0.0.1:$NGINX_PORT/"
    local gatehouse_url="http://127.0.0.1:$GATEHOUSE_PORT/"
    log "keep-alive: warm-up ${WARMUP}s per target"
    warm_up "$upstream_url" "$nginx_url" "$gatehouse_url"
    # Interleave the targets so drift (thermal, noisy neighbours) hits all of them alike.
    local r
    for r in $(seq "$ROUNDS"); do
        log "keep-alive round $r/$ROUNDS"
        run_wrk upstream "$upstream_url"
        run_wrk nginx "$nginx_url"
        run_wrk gatehouse "$gatehouse_url"
    done
}

bench_refused() {
    local nginx_url="http://127.0.0.1:$NGINX_PORT/refused"
    local gatehouse_url="http://127.0.0.1:$GATEHOUSE_PORT/refused"
    log "refused upstream: warm-up ${WARMUP}s per target"
    warm_up "$nginx_url" "$gatehouse_url"
    local r
    for r in $(seq "$ROUNDS"); do
        log "refused round $r/$ROUNDS"
        run_wrk nginx-refused "$nginx_url"
        run_wrk gatehouse-refused "$gatehouse_url"
    done
}

# Optional: where gatehouse spends its time under the keep-alive load.
profile_gatehouse() {
    command -v perf >/dev/null 2>&1 || { log "PERF=1 but perf is not installed; skipping"; return 0; }
    local data="$TMP/perf.data"
    log "perf record -g -p $GATEHOUSE_PID during a ${DURATION}s wrk run"
    perf record -q -g -o "$data" -p "$GATEHOUSE_PID" -- sleep "$DURATION" 2>"$TMP/perf.log" &
    local perf_pid=$!
    STARTED_PIDS+=("$perf_pid")
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$GATEHOUSE_PORT/" >/dev/null
    wait "$perf_pid" || true
    # Flat top symbols first (the call graphs are in perf.data; keep it with KEEP_TMP=1), then
    # the kernel/user split, which says whether the time is in syscalls or in our code.
    echo
    echo "perf: top symbols in gatehouse (self time)"
    perf report -i "$data" --no-children --stdio -g none --percent-limit 0.7 2>/dev/null |
        grep -v -e '^#' -e '^$' | head -60 || true
    echo
    echo "perf: time by shared object"
    perf report -i "$data" --no-children --stdio -g none --sort dso 2>/dev/null |
        grep -v -e '^#' -e '^$' | head -10 || true
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
print_tables() {
    local up_rps ng_rps gh_rps up_p99 ng_p99 gh_p99
    up_rps="$(median upstream 2)"; ng_rps="$(median nginx 2)"; gh_rps="$(median gatehouse 2)"
    up_p99="$(median upstream 3)"; ng_p99="$(median nginx 3)"; gh_p99="$(median gatehouse 3)"
    cat <<EOF
Keep-alive, \`200 ok\` upstream (median of $ROUNDS × ${DURATION}s, wrk -t1 -c$CONNECTIONS):

| target | req/s | p99 (ms) | socket errors |
|---|---:|---:|---:|
| upstream direct (nginx) | $up_rps | $up_p99 | $(total upstream 5) |
| nginx proxy | $ng_rps | $ng_p99 | $(total nginx 5) |
| gatehouse | $gh_rps | $gh_p99 | $(total gatehouse 5) |
| **gatehouse / nginx** | **$(ratio "$gh_rps" "$ng_rps")** | **$(ratio "$gh_p99" "$ng_p99")** | |

EOF
    local ngr_rps ghr_rps ngr_p99 ghr_p99
    ngr_rps="$(median nginx-refused 2)"; ghr_rps="$(median gatehouse-refused 2)"
    ngr_p99="$(median nginx-refused 3)"; ghr_p99="$(median gatehouse-refused 3)"
    cat <<EOF
Error path, upstream refuses connections → 502 (median of $ROUNDS × ${DURATION}s; non-2xx summed over all rounds):

| target | req/s | p99 (ms) | non-2xx responses | socket errors |
|---|---:|---:|---:|---:|
| nginx proxy | $ngr_rps | $ngr_p99 | $(total nginx-refused 4) | $(total nginx-refused 5) |
| gatehouse | $ghr_rps | $ghr_p99 | $(total gatehouse-refused 4) | $(total gatehouse-refused 5) |
| **gatehouse / nginx** | **$(ratio "$ghr_rps" "$ngr_rps")** | **$(ratio "$ghr_p99" "$ngr_p99")** | | |

Peak RSS (VmHWM) after all runs: gatehouse $GATEHOUSE_RSS MiB; nginx proxy worker $NGINX_RSS MiB.
EOF
}

print_environment() {
    local cpu
    cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    cat <<EOF
- kernel: \`$(uname -srm)\`
- CPU: $cpu, nproc $(nproc); CPU busy in the second before the run: ${CPU_BUSY_BEFORE}%
- $("$NGINX" -v 2>&1)
- wrk: $(wrk --version 2>&1 | head -1 | awk '{ print $1, $2 }')
- gatehouse: $(gatehouse_revision "$ROOT")
EOF
}

print_method() {
    cat <<EOF
Commands (ports are chosen at random per run; wrk, both nginx instances and gatehouse share the
$(nproc) cores, no pinning). $ROUNDS rounds, each running the targets back to back
(upstream → nginx → gatehouse, then nginx/refused → gatehouse/refused), after ${WARMUP}s of
unmeasured warm-up per target:

\`\`\`
$(wrk_cmd "$DURATION" "http://127.0.0.1:UPSTREAM/")        # (a) upstream directly
$(wrk_cmd "$DURATION" "http://127.0.0.1:NGINX/")           # (b) nginx proxy
$(wrk_cmd "$DURATION" "http://127.0.0.1:GATEHOUSE/")       # (c) gatehouse
$(wrk_cmd "$DURATION" "http://127.0.0.1:NGINX/refused")    # error path, nginx
$(wrk_cmd "$DURATION" "http://127.0.0.1:GATEHOUSE/refused") # error path, gatehouse
\`\`\`

nginx proxy config (the upstream nginx is the same \`http {}\` skeleton with
\`location / { return 200 "ok\\n"; }\`):

\`\`\`nginx
$(sed -e "s#$TMP#\$TMP#g" -e "s#\b$UPSTREAM_PORT\b#UPSTREAM#g" -e "s#\b$NGINX_PORT\b#NGINX#g" -e "s#\b$DEAD_PORT\b#DEAD#g" \
    "$TMP/nginx-proxy/nginx.conf")
\`\`\`

gatehouse config:

\`\`\`toml
$(sed -e "s#\b$UPSTREAM_PORT\b#UPSTREAM#g" -e "s#\b$GATEHOUSE_PORT\b#GATEHOUSE#g" -e "s#\b$DEAD_PORT\b#DEAD#g" "$GATEHOUSE_CONF")
\`\`\`
EOF
}

write_docs() {
    local doc="$ROOT/docs/benchmarks.md"
    mkdir -p "$(dirname "$doc")"
    # shellcheck disable=SC2016 # the backquotes are Markdown
    [[ -f "$doc" ]] || printf '# Benchmarks\n\nRun `scripts/bench.sh [--write]`; see the header of the script.\n' >"$doc"
    {
        printf '\n## %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
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
    build_gatehouse
    check_idle

    free_port UPSTREAM_PORT
    free_port NGINX_PORT
    free_port GATEHOUSE_PORT
    free_port DEAD_PORT # never listened on: connections to it are refused
    RESULTS="$TMP/results.txt"
    : >"$RESULTS"

    start_upstream
    start_nginx_proxy
    start_gatehouse
    log "upstream :$UPSTREAM_PORT (pid $UPSTREAM_PID), nginx :$NGINX_PORT (pid $NGINX_PROXY_PID)," \
        "gatehouse :$GATEHOUSE_PORT (pid $GATEHOUSE_PID), refused :$DEAD_PORT; temp dir $TMP"

    expect_status "http://127.0.0.1:$UPSTREAM_PORT/" 200
    expect_status "http://127.0.0.1:$NGINX_PORT/" 200
    expect_status "http://127.0.0.1:$GATEHOUSE_PORT/" 200
    expect_status "http://127.0.0.1:$NGINX_PORT/refused" 502
    expect_status "http://127.0.0.1:$GATEHOUSE_PORT/refused" 502

    bench_keepalive
    bench_refused

    GATEHOUSE_RSS="$(peak_rss_mib "$GATEHOUSE_PID")"
    # The nginx proxy's worker (child of the master we started) for comparison.
    local worker
    worker="$(pgrep -P "$NGINX_PROXY_PID" | head -1 || true)"
    NGINX_RSS="$( [[ -n "$worker" ]] && peak_rss_mib "$worker" || echo n/a)"

    print_tables >"$TMP/tables.md"
    echo
    cat "$TMP/tables.md"

    [[ "$PERF" == 1 ]] && profile_gatehouse
    [[ "$WRITE" == 1 ]] && write_docs
    return 0
}

main
