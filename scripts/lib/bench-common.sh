# shellcheck shell=bash
# ---------------------------------------------------------------------------------------------
# Sourced by the benchmark scripts (bench.sh, bench-cache.sh, bench-cost.sh, bench-tls.sh,
# failover.sh): free ports, waiting for a process to listen, nginx instances in a temp dir, CPU
# time, memory and open files of processes, the open-files limit, stopping one started process,
# medians, totals and ratios over rounds, the idle check, the gatehouse revision.
# failover.sh keeps its own median() (keyed by scenario and proxy, formatted by column) and
# polls wait_for_port every 0.05 s.
#
# The script sets, before calling any of these: TMP (its temp dir), STARTED_PIDS (an array,
# stopped by lib/cleanup.sh on exit), log() and die(); for the nginx helpers NGINX (the binary);
# for median() and total() RESULTS (a file of "label value value ..." lines).
# ---------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------
# Ports: a random port below the kernel's ephemeral range (so no client connection of the run
# can hold it), kept only if a connect to it is refused (nothing listens).
# ---------------------------------------------------------------------------------------------
read -r EPHEMERAL_LOW EPHEMERAL_HIGH </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null ||
    { EPHEMERAL_LOW=32768; EPHEMERAL_HIGH=60999; }
if ((EPHEMERAL_LOW > 12000)); then
    PORT_MIN=10000; PORT_SPAN=$((EPHEMERAL_LOW - 10000))
else
    PORT_MIN=$((EPHEMERAL_HIGH + 1)); PORT_SPAN=$((65535 - EPHEMERAL_HIGH))
fi
USED_PORTS=" "

port_is_free() {
    # bash's /dev/tcp connect succeeds only if something accepts on the port.
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Sets variable $1 to a free port not handed out before (no $(...): USED_PORTS must persist).
free_port() {
    local port
    for _ in $(seq 200); do
        port=$((PORT_MIN + RANDOM % PORT_SPAN))
        [[ "$USED_PORTS" == *" $port "* ]] && continue
        if port_is_free "$port"; then
            USED_PORTS+="$port "
            printf -v "$1" '%s' "$port"
            return 0
        fi
    done
    die "no free port found"
}

# Wait until port $2 accepts connections, checking 100 times every $4 seconds (default 0.1);
# fail early (with log file $3) if process $1 died.
wait_for_port() {
    local pid="$1" port="$2" logfile="$3" poll="${4:-0.1}"
    for _ in $(seq 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$logfile" >&2 || true
            die "process $pid exited before listening on $port (log: $logfile)"
        fi
        port_is_free "$port" || return 0
        sleep "$poll"
    done
    cat "$logfile" >&2 || true
    die "nothing listening on $port after $(awk -v p="$poll" 'BEGIN { printf "%g", 100 * p }') s (log: $logfile)"
}

# ---------------------------------------------------------------------------------------------
# nginx: one non-daemon master per instance with its own prefix dir, pid file and error log.
# ---------------------------------------------------------------------------------------------

# The main-context directives: prefix dir $1, $2 worker processes (default 1), $3
# worker_connections (default 4096) and, when given, $4 as worker_rlimit_nofile (the open files
# each worker may have: one per client connection, one per upstream connection).
nginx_main_conf() {
    local dir="$1" workers="${2:-1}" connections="${3:-4096}" nofile="${4:-}"
    # As root, nginx would drop its workers to `nobody`, which cannot enter the 0700 temp dir.
    [[ "$(id -u)" == 0 ]] && echo "user root;"
    cat <<EOF
worker_processes $workers;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
EOF
    [[ -z "$nofile" ]] || echo "worker_rlimit_nofile $nofile;"
    echo "events { worker_connections $connections; }"
}

# Temp paths inside the prefix, only for the modules this nginx build has (nginx-light lacks some).
nginx_temp_paths() {
    local dir="$1" v m
    v="$("$NGINX" -V 2>&1)"
    echo "    client_body_temp_path $dir/body;"
    echo "    proxy_temp_path $dir/proxy;"
    for m in fastcgi scgi uwsgi; do
        [[ "$v" == *"--without-http_${m}_module"* ]] || echo "    ${m}_temp_path $dir/$m;"
    done
}

# The nginx version as one comparable number: 1.22.1 -> 1022001.
nginx_version_number() {
    "$NGINX" -v 2>&1 | sed -n 's#^.*nginx/\([0-9]*\)\.\([0-9]*\)\.\([0-9]*\).*$#\1 \2 \3#p' |
        awk '{ printf "%d", $1 * 1000000 + $2 * 1000 + $3 }'
}

# Start nginx with config file $2 in prefix dir $1; sets NGINX_PID to its master.
# (Not via $(...): the master must be a child of this shell, so that cleanup can reap it.)
start_nginx() {
    local dir="$1" conf="$2"
    "$NGINX" -t -q -p "$dir" -e "$dir/error.log" -c "$conf" || die "nginx -t failed for $conf"
    "$NGINX" -p "$dir" -e "$dir/error.log" -c "$conf" >"$dir/stdout.log" 2>&1 &
    NGINX_PID=$!
    STARTED_PIDS+=("$NGINX_PID")
}

# The worker processes of nginx master $1 (not a cache manager or loader), space-separated.
nginx_workers() {
    local child workers=()
    for child in $(pgrep -P "$1" || true); do
        if tr '\0' ' ' <"/proc/$child/cmdline" 2>/dev/null | grep -q 'worker process'; then
            workers+=("$child")
        fi
    done
    ((${#workers[@]})) || die "no worker process under nginx master $1"
    echo "${workers[*]}"
}

# ---------------------------------------------------------------------------------------------
# Processes: CPU time and memory.
# ---------------------------------------------------------------------------------------------
CLK_TCK="$(getconf CLK_TCK)"

# CPU time (user + system, all threads) of the processes given, together, so far, in clock ticks.
cpu_ticks() {
    local pid sum=0 t
    for pid in "$@"; do
        # Fields after the "(comm)" field: state is $1, utime $12, stime $13.
        t="$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')"
        sum=$((sum + t))
    done
    echo "$sum"
}

# Microseconds of CPU per unit: $1 clock ticks over $2 units (requests, handshakes).
cpu_us_per() {
    awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { printf "%.1f", n ? t * 1e6 / hz / n : 0 }'
}

# Peak resident set (VmHWM) of the processes given, together, in MiB.
peak_rss_mib() {
    local pid kib=0 k
    for pid in "$@"; do
        k="$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)" || { echo "n/a"; return 0; }
        [[ -n "$k" ]] || { echo "n/a"; return 0; }
        kib=$((kib + k))
    done
    awk -v k="$kib" 'BEGIN { printf "%.1f", k / 1024 }'
}

# Resident set now (VmRSS) of process $1, in KiB.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# Peak resident set (VmHWM) of process $1, in KiB.
peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# Reset the peak resident set (VmHWM) of the processes given to their current RSS, so that a
# later VmHWM is the peak of what ran in between (Linux >= 4.0: `5` into /proc/PID/clear_refs,
# which needs the right to write there). Fails when the kernel refuses.
reset_peak_rss() {
    local pid
    for pid in "$@"; do
        { echo 5 >"/proc/$pid/clear_refs"; } 2>/dev/null || return 1
    done
}

# Open file descriptors of process $1 (sockets, listeners, log files, ...).
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# Raise this shell's soft limit on open files to $1 (or to the hard limit, if that is lower),
# so that the processes it starts from then on inherit it; sets NOFILE to the limit in force.
# (Not via $(...): the limit must change in this shell.)
raise_nofile() {
    local want="$1" hard
    hard="$(ulimit -Hn)"
    [[ "$hard" == unlimited ]] || ((want <= hard)) || want="$hard"
    ((want <= $(ulimit -Sn))) || ulimit -Sn "$want"
    # shellcheck disable=SC2034 # read by the script that calls this
    NOFILE="$(ulimit -Sn)"
}

# Stop one process this script started (TERM, then KILL after ~5 s), reap it and take it off
# STARTED_PIDS, so that the cleanup on exit never signals a PID that has been reused since.
stop_started() {
    local pid="$1" p kept=()
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${STARTED_PIDS[@]}"; do
        [[ "$p" == "$pid" ]] || kept+=("$p")
    done
    STARTED_PIDS=("${kept[@]}")
}

# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------

# Normalise a latency as wrk or h2load print it ("812.00us", "1.23ms", "1.02s", "2.00m") to
# milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n
    }'
}

# Median of column $2 for label $1 in $RESULTS (mean of the middle two for an even count).
median() {
    awk -v l="$1" -v c="$2" '$1 == l { print $c }' "$RESULTS" | sort -g |
        awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "n/a"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.2f", m
        }'
}

# Sum of column $2 for label $1 over all rounds.
total() { awk -v l="$1" -v c="$2" '$1 == l { s += $c } END { printf "%d", s }' "$RESULTS"; }

# $1 ÷ $2 as "0.85×"; n/a unless both are numbers and $2 is not 0.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        num = "^[0-9]+([.][0-9]*)?$"
        if (a !~ num || b !~ num || b + 0 == 0) print "n/a"
        else printf "%.2f×\n", a / b
    }'
}

# ---------------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------------

# How busy the CPUs are for one second, in percent (the load average would still count a
# previous benchmark run).
cpu_busy_percent() {
    local before after # (busy, idle) jiffies
    read -r -a before < <(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
    sleep 1
    read -r -a after < <(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
    awk -v busy=$((after[0] - before[0])) -v idle=$((after[1] - before[1])) \
        'BEGIN { t = busy + idle; printf "%.0f", t ? 100 * busy / t : 0 }'
}

# Other work running on the machine skews the results: measure, warn, and keep the figure in
# CPU_BUSY_BEFORE for the report.
check_idle() {
    CPU_BUSY_BEFORE="$(cpu_busy_percent)"
    if ((CPU_BUSY_BEFORE > 15)); then
        log "WARNING: the CPUs were ${CPU_BUSY_BEFORE}% busy before the run; other work will skew the numbers"
    fi
}

# The gatehouse revision in repository $1: short hash, marked when the tree has changes.
gatehouse_revision() {
    local rev
    rev="$(cd "$1" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    (cd "$1" && git diff --quiet HEAD 2>/dev/null) || rev+=" (with uncommitted changes)"
    echo "$rev"
}

# The version of crate $2 in Cargo.lock $1 (the first entry), or "unknown".
cargo_lock_version() {
    awk -v n="$2" '$0 == "name = \"" n "\"" { getline; gsub(/^version = "|"$/, ""); print; exit }' "$1" 2>/dev/null |
        grep . || echo unknown
}
