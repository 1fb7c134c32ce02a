#!/usr/bin/env bash
# Smoke test of `canopy bench`: every workload once, with tiny counts, against
# a Canopy started here on a free loopback port. Exits non-zero if any
# workload fails or fails to verify. Benchmark figures are not judged here.
#
#   scripts/bench-smoke.sh            # builds what is missing (debug)
#   CANOPY_BIN=... CANOPY_BENCH_BIN=... scripts/bench-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
CANOPY_BIN="${CANOPY_BIN:-$TARGET_DIR/debug/canopy}"
[ -x "$CANOPY_BIN" ] || cargo build -q -p canopy
# Prefer `canopy bench` once the binary has it; else the stand-alone tool.
if "$CANOPY_BIN" bench --help >/dev/null 2>&1; then
    BENCH=("$CANOPY_BIN" bench)
else
    BENCH_BIN="${CANOPY_BENCH_BIN:-$TARGET_DIR/debug/canopy-bench}"
    [ -x "$BENCH_BIN" ] || cargo build -q -p canopy-bench
    BENCH=("$BENCH_BIN")
fi

WORK="$(mktemp -d -t canopy-bench-smoke-XXXXXX)"
SERVER_PID=""
cleanup() {
    local status=$?
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT

# A short tick so that `expire` takes well under a second.
# No admin server (its default port is 8080) and no per-address cap: every
# bench session comes from 127.0.0.1.
"$CANOPY_BIN" serve --port 0 --bind 127.0.0.1 --data-dir "$WORK/data" --tick-time 200 \
    --admin-port 0 --max-client-cnxns 0 \
    2>"$WORK/server.log" &
SERVER_PID=$!
PORT=""
for _ in $(seq 100); do
    PORT="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/server.log" | head -1)"
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
    sleep 0.1
done
[ -n "$PORT" ] || { echo "canopy did not report its port"; cat "$WORK/server.log"; exit 1; }

echo "== bench smoke against Canopy on 127.0.0.1:$PORT"
timeout 300 "${BENCH[@]}" --server "127.0.0.1:$PORT" --server-pid "$SERVER_PID" \
    --no-progress --ops 300 --sessions 2 --outstanding 8 --keys 50 \
    --parents 2 --width 5 --multi-size 3 \
    --providers 20 --consumers 5 --interfaces 5 --subscriptions 2 \
    --expire-sessions 3 --session-timeout 400 --churn-seconds 1 --churn-hold-ms 100 \
    --io-timeout 20 \
    create get set mixed delete children multi register expire churn mem \
    >"$WORK/results.jsonl"
# register with providers that drop their connections once registered
# (--provider-detach); the longest timeout the tick allows (20 ticks).
timeout 300 "${BENCH[@]}" --server "127.0.0.1:$PORT" --server-pid "$SERVER_PID" \
    --no-progress --providers 20 --consumers 5 --interfaces 5 --subscriptions 2 \
    --provider-detach --provider-window 4 --session-timeout 4000 --io-timeout 20 \
    register >>"$WORK/results.jsonl"
grep -q '"mode":"detach"' "$WORK/results.jsonl" || { echo "no detached register run"; exit 1; }
echo "== all workloads verified ($(wc -l <"$WORK/results.jsonl") JSON lines)"
