#!/usr/bin/env bash
# Runs every cargo-fuzz target briefly on the corpus kept in fuzz/corpus and
# fails on any crash, panic, leak or hang. A regression catcher, not a search:
# long runs are described in fuzz/README.md.
#
# Usage: scripts/fuzz-smoke.sh [target...]   (default: every target)
#   FUZZ_SMOKE_SECONDS  seconds per target (default 60)
#   FUZZ_SANITIZER      cargo-fuzz --sanitizer (default none: the build takes
#                       minutes less than with address, and the code under
#                       test is safe Rust; long runs use address)
#
# Needs cargo-fuzz (installed here if missing) and a compiler that accepts
# -Z flags: the nightly toolchain when rustup has one, otherwise the stable
# one with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${FUZZ_SMOKE_SECONDS:-60}"
SANITIZER="${FUZZ_SANITIZER:-none}"
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(frame_decoder request_decoder session_ops)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if command -v rustup >/dev/null && rustup toolchain list | grep -q '^nightly'; then
    FUZZ=(cargo +nightly fuzz)
else
    # Stable rustc refuses -Z flags unless told it is bootstrapping itself.
    echo "== no nightly toolchain: using stable with RUSTC_BOOTSTRAP=1"
    export RUSTC_BOOTSTRAP=1
    FUZZ=(cargo fuzz)
fi

# New inputs and crash files go to a scratch folder, never into the
# committed corpus.
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

cd fuzz
for target in "${TARGETS[@]}"; do
    echo "== fuzz smoke: $target for ${SECONDS_PER_TARGET}s"
    mkdir -p "$SCRATCH/$target" "corpus/$target"
    if ! "${FUZZ[@]}" run -O --sanitizer "$SANITIZER" "$target" "$SCRATCH/$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -timeout=20 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$SCRATCH/" 2>"$SCRATCH/$target.log"; then
        tail -n 60 "$SCRATCH/$target.log"
        for crash in "$SCRATCH"/crash-* "$SCRATCH"/leak-* "$SCRATCH"/timeout-* "$SCRATCH"/oom-*; do
            [ -e "$crash" ] || continue
            mkdir -p artifacts/"$target"
            cp "$crash" artifacts/"$target"/
            echo "!! $target failed; input kept in fuzz/artifacts/$target/$(basename "$crash")"
        done
        exit 1
    fi
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' \
        "$SCRATCH/$target.log" | sed "s/^/   $target /"
done
echo "== fuzz smoke: every target ran clean"
