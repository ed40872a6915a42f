#!/usr/bin/env bash
# Fuzzing campaign: runs each cargo-fuzz target of fuzz/ for SECONDS_PER_TARGET (default 60)
# on its corpus fuzz/corpus/<target>, one target at a time, one libFuzzer process each; then
# minimises the corpus (cargo fuzz cmin) so the copy kept in the repo stays small; prints a
# summary; exits 1 when any target found a crash (also a timeout or out-of-memory), whose
# input is left in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh                          # every target, 60 s each
#   scripts/fuzz.sh 360                      # every target, 6 minutes each
#   scripts/fuzz.sh 30 config router         # two targets
#
# The toolchain is stable: cargo-fuzz is installed if missing, and RUSTC_BOOTSTRAP=1 lets it
# pass its nightly-only flags. FUZZ_SANITIZER=address builds with AddressSanitizer (default:
# none; the targets are safe Rust, and without it they run several times faster).
# The checks the targets run are in crates/fuzzcheck; `cargo test -p gatehouse-fuzzcheck`
# replays the kept corpus without libFuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for file in fuzz/fuzz_targets/*.rs; do
        name=$(basename "$file" .rs)
        targets+=("$name")
    done
fi
for target in "${targets[@]}"; do
    if [ ! -f "fuzz/fuzz_targets/$target.rs" ]; then
        echo "no fuzz target $target (fuzz/fuzz_targets/$target.rs)" >&2
        exit 2
    fi
done

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
sanitizer=${FUZZ_SANITIZER:-none}
build=(-s "$sanitizer")

echo "building ${#targets[@]} target(s), sanitizer $sanitizer" >&2
for target in "${targets[@]}"; do
    cargo fuzz build "${build[@]}" "$target"
done

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
rows=()
# A libFuzzer final statistic from a run's log.
stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }

for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus" "fuzz/artifacts/$target"
    before=$(find "$corpus" -type f | wc -l)
    log="$logs/$target.log"
    echo "== $target: ${seconds}s on $before input(s)" >&2
    started=$(date +%s)
    status=0
    cargo fuzz run "${build[@]}" "$target" "$corpus" -- \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=4096 \
        >"$log" 2>&1 || status=$?
    # The time libFuzzer ran for (cargo fuzz run may first rebuild).
    elapsed=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
    crashes=$(find "fuzz/artifacts/$target" -type f \( -name 'crash-*' -o -name 'timeout-*' \
        -o -name 'oom-*' -o -name 'leak-*' \) -newermt "@$started" | wc -l)
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1
    fi
    runs=$(stat number_of_executed_units "$log")
    rate=$(stat average_exec_per_sec "$log")
    if [ "$crashes" -gt 0 ]; then
        failed=1
        echo "!! $target failed (exit $status); the end of its log:" >&2
        grep -v '^#' "$log" | tail -n 40 >&2
        ls -1 "fuzz/artifacts/$target" >&2
    fi
    # Keep only the inputs that add coverage.
    if ! cargo fuzz cmin "${build[@]}" "$target" "$corpus" >"$logs/$target.cmin.log" 2>&1; then
        echo "!! $target: corpus minimisation failed:" >&2
        tail -n 20 "$logs/$target.cmin.log" >&2
        failed=1
    fi
    after=$(find "$corpus" -type f | wc -l)
    size=$(($(du -sb "$corpus" | cut -f1) / 1024))
    rows+=("$(printf '%-20s %7s %12s %9s %7s %9s %8s' "$target" "${elapsed:-?}" "${runs:-?}" \
        "${rate:-?}" "$after" "${size}K" "$crashes")")
done

printf '\n%-20s %7s %12s %9s %7s %9s %8s\n' target seconds runs execs/s corpus size crashes
printf '%s\n' "${rows[@]}"
if [ "$failed" -ne 0 ]; then
    echo "fuzzing found crashes: inputs in fuzz/artifacts/<target>/; replay one with" >&2
    echo "  RUSTC_BOOTSTRAP=1 cargo fuzz run -s $sanitizer <target> fuzz/artifacts/<target>/<file>" >&2
    exit 1
fi
