#!/usr/bin/env bash
# Fuzz every parser (scheme, CRM answer, call JSON, the JSON reader/writer) for a bounded time each (default 60 s): `fuzz/run.sh [SECONDS]`.
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`); a crash stops the
# run and leaves its input under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
for target in scheme answer call_json json; do
    echo "=== $target (${seconds}s)"
    cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 \
        | grep -E "^(#[0-9]+ +DONE|Done|==[0-9]+==|SUMMARY|thread)" || true
    if [ -n "$(ls -A "artifacts/$target" 2>/dev/null)" ]; then
        echo "FAIL: $target found a crash: $(ls "artifacts/$target")"; exit 1
    fi
done
echo "fuzzing: no crash in ${seconds}s per target"
