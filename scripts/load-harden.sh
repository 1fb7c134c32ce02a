#!/usr/bin/env bash
# The full-size hardening load tests of issue 8, each against a fresh
# `canopy serve` on a free loopback port (release build):
#
#   baseline    the probe client alone on an idle server
#   idle        IDLE_CONNECTIONS idle sessions (default 19000: the hard limit
#               on open files here is 20000 per process, see `ulimit -Hn`)
#   hot-watch   10000 sessions x 10 watches, the hot node set 1000 times,
#               one client that reads nothing (held back at half the 8 MiB
#               bound; it never pings, so its session expires during the sets)
#   malformed   100000 connections, each sending one malformed frame
#
# Prints the probe's latency, the server's RSS and peak RSS for each, and
# the server's log lines about cut-off clients. Not part of scripts/test.sh
# (minutes, and tens of thousands of sockets); tests/harden.rs runs the same
# scenarios scaled down.
#
#   scripts/load-harden.sh                 # all scenarios
#   scripts/load-harden.sh hot-watch       # some of them
#   SMOKE=1 scripts/load-harden.sh         # debug build, tiny counts (test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
if [ -n "${SMOKE:-}" ]; then
    PROFILE=debug
    cargo build -q -p canopy -p canopy-bench
else
    PROFILE=release
    cargo build -q --release -p canopy -p canopy-bench
fi
CANOPY="$TARGET_DIR/$PROFILE/canopy"
HOSTILE="$TARGET_DIR/$PROFILE/canopy-hostile"

# Both processes hold one descriptor per connection.
ulimit -n "$(ulimit -Hn)"

SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(baseline idle hot-watch malformed)

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

WORK="$(mktemp -d -t canopy-load-harden-XXXXXX)"
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT

run() {
    local name="$1"; shift
    local port; port="$(free_port)"
    rm -rf "$WORK/data"
    # Every load client comes from 127.0.0.1: no per-address cap (ZooKeeper's
    # maxClientCnxns=0), and no admin server.
    "$CANOPY" serve --bind 127.0.0.1 --port "$port" --data-dir "$WORK/data" \
        --max-client-cnxns 0 --admin-port 0 \
        >"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$WORK/$name.log" && break
        sleep 0.1
    done
    echo "== $name"
    local status=0
    "$HOSTILE" --server "127.0.0.1:$port" --server-pid "$SERVER_PID" "$@" || status=$?
    grep -E "cutting off|open-file limit" "$WORK/$name.log" | sed 's/^/   server log: /' | head -5 || true
    echo "   server log: $(grep -c "closing connection" "$WORK/$name.log" || true) 'closing connection' lines"
    stop_server
    return $status
}

if [ -n "${SMOKE:-}" ]; then
    SECONDS_=1 IDLE=100 SESSIONS=20 SETS=10 FRAMES=300
else
    SECONDS_=10 IDLE="${IDLE_CONNECTIONS:-19000}" SESSIONS=10000 SETS=1000 FRAMES=100000
fi

failed=0
for scenario in "${SCENARIOS[@]}"; do
    case "$scenario" in
        baseline) run baseline baseline --seconds "$SECONDS_" || failed=1 ;;
        idle) run idle idle --connections "$IDLE" --hold-seconds "$SECONDS_" || failed=1 ;;
        hot-watch) run hot-watch hot-watch --sessions "$SESSIONS" --watches 10 --sets "$SETS" || failed=1 ;;
        malformed) run malformed malformed --frames "$FRAMES" --concurrency 8 || failed=1 ;;
        *) echo "unknown scenario $scenario"; exit 2 ;;
    esac
done
exit $failed
