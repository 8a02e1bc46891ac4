#!/bin/sh
# Fuzz smoke test for CI: builds every target in fuzz/ and runs each for FUZZ_SECONDS
# (default 60) from the seeds in fuzz/seeds/<target>. Fails when a target crashes, panics,
# leaks past the RSS limit or times out on one input; prints a summary either way.
# Installs what it needs: a nightly toolchain (rustup) and cargo-fuzz (crates.io).
#
#   fuzz/smoke.sh                   # every target, 60 s each
#   FUZZ_SECONDS=10 fuzz/smoke.sh workflow substitute
set -eu

cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=${*:-$(cargo +nightly fuzz list)}
for target in $targets; do
    cargo +nightly fuzz build "$target"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
summary=""
for target in $targets; do
    mkdir -p "$work/$target"
    log="$work/$target.log"
    # New inputs go to a scratch corpus; the committed seeds are only read.
    if cargo +nightly fuzz run "$target" "$work/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result=FAILED
        failed=1
        echo "== $target failed; the end of its log:"
        tail -n 40 "$log"
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    summary="$summary$(printf '%-12s %-7s %s runs in %s s' "$target" "$result" "${runs:-?}" "$seconds")
"
done

echo "== fuzz smoke summary (artifacts of failures in fuzz/artifacts/<target>/)"
printf '%s' "$summary"
exit "$failed"
