#!/usr/bin/env bash
# Re-record the golden ZooKeeper wire vectors from scratch.
#
#   protocol/tests/golden/record.sh [scenario...]
#
# 1. starts a reference Apache ZooKeeper 3.8 server (tests/support/zkref.py,
#    tickTime 2000, loopback, free port),
# 2. compiles GoldenDriver.java into a temp dir against the Debian jars,
# 3. starts the recording proxy (record.py) in front of the server,
# 4. runs the driver through the proxy (all scenarios, or the ones named),
# 5. replaces protocol/tests/golden/frames/*.txt with the new recordings
#    (only when running all scenarios; otherwise the named scenarios' files
#    are added/overwritten).
#
# Needs: python3, java + javac (17), the Debian zookeeper packages.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
zkref="$root/tests/support/zkref.py"
frames="$here/frames"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/golden-record.XXXXXX")"
zk_pid=""
proxy_pid=""
cleanup() {
    [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
    [ -n "$zk_pid" ] && kill "$zk_pid" 2>/dev/null || true
    [ -n "$zk_pid" ] && wait "$zk_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

wait_for_file() { # path seconds
    local i=0
    while [ ! -s "$1" ]; do
        i=$((i + 1))
        if [ "$i" -gt $(($2 * 10)) ]; then
            echo "timed out waiting for $1" >&2
            return 1
        fi
        sleep 0.1
    done
}

cp="$(python3 "$zkref" --print-classpath)"

echo ">> compiling GoldenDriver.java"
mkdir -p "$tmp/classes"
javac -nowarn -d "$tmp/classes" -cp "$cp" "$here/GoldenDriver.java"

echo ">> starting reference ZooKeeper"
python3 "$zkref" --tick 2000 >"$tmp/zk.port" 2>"$tmp/zkref.err" &
zk_pid=$!
wait_for_file "$tmp/zk.port" 90
zk_port="$(head -n1 "$tmp/zk.port")"
echo "   server on 127.0.0.1:$zk_port"

echo ">> starting recording proxy"
python3 "$here/record.py" --upstream "127.0.0.1:$zk_port" --out "$tmp/frames" \
    --ports-file "$tmp/proxy.ports" >/dev/null 2>"$tmp/proxy.err" &
proxy_pid=$!
wait_for_file "$tmp/proxy.ports" 20
read -r proxy_port control_port <"$tmp/proxy.ports"
echo "   proxy on 127.0.0.1:$proxy_port (control $control_port)"

echo ">> running driver"
status=0
java -Dorg.slf4j.simpleLogger.defaultLogLevel=error -Xmx256m \
    -cp "$tmp/classes:$cp" GoldenDriver \
    "127.0.0.1:$proxy_port" "$control_port" "127.0.0.1:$zk_port" "$@" || status=$?

python3 - "$control_port" <<'EOF'
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as s:
    s.sendall(b"quit\n")
    s.recv(100)
EOF
wait "$proxy_pid" || true
proxy_pid=""

if [ -s "$tmp/proxy.err" ]; then
    echo ">> proxy stderr:" >&2
    cat "$tmp/proxy.err" >&2
fi

mkdir -p "$frames"
if [ "$#" -eq 0 ]; then
    rm -f "$frames"/*.txt
fi
cp "$tmp/frames"/*.txt "$frames"/
echo ">> wrote $(ls "$tmp/frames" | wc -l) files to $frames ($(du -sh "$frames" | cut -f1))"
if [ "$status" -ne 0 ]; then
    echo "!! driver exited with status $status" >&2
fi
exit "$status"
